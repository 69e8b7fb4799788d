/**
 * `vm attestation-report NAME [--report-data HEX] [--out DIR]`: a running SEV-SNP guest's signed report with the
 * owner's REPORT_DATA (POST /v1/vms/{id}/attestation-report), and with `--out` the files `owner verify-report`
 * takes — report.bin, vcek.der, cert_chain.pem — as `snpguest report` and `snpguest certificates` write them. The
 * CLI verifies nothing: the command it prints does, on the owner's machine.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { findVm } from "../client/lookup.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor } from "../options.ts";
import { json } from "../output/format.ts";
import { fields } from "../output/table.ts";

/** What the route answers (src/api/schemas/attestation.ts `AttestationReportSchema`). */
interface AttestationReport {
  vm: string;
  host: string;
  report: string;
  fields: {
    reportData: string;
    measurement: string;
    hostData: string;
    idKeyDigest: string;
    authorKeyDigest: string;
    policy: string;
    vmpl: number;
    chipId: string;
    reportedTcb: Record<string, number | string>;
  };
  certificates?: { vcek: string; vcekPath: string; certChain: string };
}

const REPORT_DATA = /^[0-9a-fA-F]{128}$/;

function writeFiles(dir: string, r: AttestationReport): Record<string, string> {
  const files: [string, Uint8Array | string][] = [["report.bin", Buffer.from(r.report, "base64")]];
  if (r.certificates) {
    files.push(["vcek.der", Buffer.from(r.certificates.vcek, "base64")]);
    files.push(["cert_chain.pem", r.certificates.certChain]);
  }
  try {
    mkdirSync(dir, { recursive: true });
    const out: Record<string, string> = {};
    for (const [name, data] of files) {
      const path = join(dir, name);
      writeFileSync(path, data);
      out[name] = path;
    }
    return out;
  } catch (e) {
    throw new CiphervisorError("IO", `--out ${dir}: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
}

export function registerVmAttestationReport(vm: Command, io: CliIo): void {
  apiCommand(
    vm
      .command("attestation-report")
      .argument("<name>", "VM name or id (a running SEV-SNP VM)")
      .option("--report-data <hex>", "REPORT_DATA: 64 bytes as 128 hex digits (a nonce); default all zero")
      .option("--out <dir>", "write report.bin, vcek.der and cert_chain.pem there, for `owner verify-report`")
      .description("the guest's signed SEV-SNP attestation report, with the VCEK and ASK/ARK to verify it"),
  ).action(async (name: string, flags: CommonFlags & { reportData?: string; out?: string }) => {
    const mode = modeFor(flags);
    if (flags.reportData !== undefined && !REPORT_DATA.test(flags.reportData)) {
      throw new CiphervisorError("INVALID_INPUT", "--report-data: must be 64 bytes as 128 hex digits", {
        details: { field: "reportData" },
      });
    }
    const api = apiFor(io, flags);
    const v = await findVm(api, name);
    const body = flags.reportData === undefined ? {} : { reportData: flags.reportData.toLowerCase() };
    const r = await api.post<AttestationReport>(`/v1/vms/${v.id}/attestation-report`, body);
    const written = flags.out === undefined ? undefined : writeFiles(flags.out, r);
    if (mode === "json") {
      io.out(json({ ...r, ...(written ? { files: written } : {}) }));
      return;
    }
    const tcb = Object.entries(r.fields.reportedTcb)
      .filter(([k]) => k !== "raw")
      .map(([k, n]) => `${k}=${n}`)
      .join(",");
    io.out(
      fields([
        ["vm", v.name],
        ["host", r.host],
        ["measurement", r.fields.measurement],
        ["report-data", r.fields.reportData],
        ["host-data", r.fields.hostData],
        ["id-key-digest", r.fields.idKeyDigest],
        ["author-key-digest", r.fields.authorKeyDigest],
        ["policy", r.fields.policy],
        ["vmpl", r.fields.vmpl],
        ["reported-tcb", `${r.fields.reportedTcb.raw} (${tcb})`],
        ...(r.certificates ? [["kds-vcek", r.certificates.vcekPath] as const] : []),
      ]),
    );
    if (written && flags.quiet !== true) {
      const chain = written["cert_chain.pem"] ? ` --chain ${written["cert_chain.pem"]} --trust emulated` : "";
      io.err(
        `written: ${Object.values(written).join(", ")}\nverify it on your machine: ciphervisor owner verify-report --report ${written["report.bin"]} --vcek ${written["vcek.der"] ?? "VCEK"}${chain} --measurement ${r.fields.measurement} --min-tcb …\n`,
      );
    }
  });
}
