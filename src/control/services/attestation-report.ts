/**
 * `vm attestation-report` (POST /v1/vms/{id}/attestation-report): a running SEV-SNP guest's signed attestation
 * report with the caller's REPORT_DATA, and the certificates an owner verifies it with — the chip's VCEK for the
 * report's REPORTED_TCB and the product's ASK/ARK, as AMD's KDS serves them (VCEK specification 57230, chapter 4)
 * and `snpguest certificates` / SNP_GET_EXT_REPORT hand them out. Raw facts, no verdict: the owner runs
 * `owner verify-report` (or Trustee) on their own machine.
 *
 * The host cannot mint a report: only the guest can ask its firmware for one, through MSG_REPORT_REQ sealed with a
 * VMPCK from its secrets page (SNP ABI 56860 section 7.3). The driver asks the guest's agent, as a guest agent or
 * Linux's configfs-tsm would be asked in production.
 */
import { decodeSnpTcb, parseSnpReport } from "../../certs/snp-report.ts";
import { CiphervisorError } from "../../errors.ts";
import { toHex } from "../../lib/bytes.ts";
import { vcekSplParams } from "../../sev/manufacturer/emulated-kds.ts";
import {
  isEmulatedSnpGeneration,
  SNP_KDS_PRODUCTS,
  SNP_PRODUCT_FACTS,
  snpHwId,
} from "../../sev/manufacturer/emulated-snp.ts";
import type { Actor, Host, Vm } from "../inventory/types.ts";
import { audit, emulatedKds } from "./attestation.ts";
import { type ControlContext, connect, getHost, getVm } from "./context.ts";

/** REPORT_DATA: 64 bytes the guest owner chooses (a nonce, a hash of a public key), bound into the signed report. */
export const REPORT_DATA_SIZE = 64;

export interface AttestationReportInfo {
  readonly vm: string;
  readonly hostId: string;
  readonly host: string;
  /** The report as the firmware signed it (0x4A0 bytes), base64. */
  readonly report: string;
  /** A few fields read from it, for people (the owner's check reads the report itself). */
  readonly fields: {
    readonly reportData: string;
    readonly measurement: string;
    readonly hostData: string;
    /** ID_KEY_DIGEST and AUTHOR_KEY_DIGEST: SHA-384 of the owner's keys that signed the ID block (zeros without). */
    readonly idKeyDigest: string;
    readonly authorKeyDigest: string;
    readonly policy: string;
    readonly vmpl: number;
    readonly chipId: string;
    readonly reportedTcb: { readonly raw: string } & Readonly<Record<string, number | string>>;
  };
  /**
   * The VCEK for the report's REPORTED_TCB (DER, base64) and the product's ASK then ARK (PEM), from the emulated KDS;
   * `vcekPath` is where the KDS serves the same VCEK. Absent on a host whose chips the emulated KDS does not know.
   */
  readonly certificates?: { readonly vcek: string; readonly vcekPath: string; readonly certChain: string };
}

/** The 64 bytes of `hex` (128 hex digits), or 64 zero bytes when omitted. INVALID_INPUT otherwise. */
export function parseReportData(hex: string | undefined): Uint8Array {
  if (hex === undefined) return new Uint8Array(REPORT_DATA_SIZE);
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== REPORT_DATA_SIZE * 2) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `reportData: must be ${REPORT_DATA_SIZE} bytes as ${REPORT_DATA_SIZE * 2} hex digits, got ${hex.length > 200 ? "a longer text" : `${hex.length} characters`}`,
      { details: { field: "reportData" } },
    );
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** The running SEV-SNP VM a report is asked of, and its host (CONFLICT for any other VM). */
export async function reportTarget(c: ControlContext, vmId: string): Promise<{ vm: Vm; host: Host }> {
  const vm = await getVm(c.inventory, vmId);
  if (vm.securityMode !== "sev-snp") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.securityMode === "none" ? "an ordinary VM" : `an ${vm.securityMode.toUpperCase()} VM`}; only SEV-SNP guests have signed attestation reports (SEV and SEV-ES: 'vm launch-measurement' while paused)`,
      { details: { vm: vm.id, mode: vm.securityMode } },
    );
  }
  if (vm.powerState !== "running" || vm.hostId === null) {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}; a report comes from the running guest, so power it on first`,
      { details: { vm: vm.id, powerState: vm.powerState } },
    );
  }
  return { vm, host: await getHost(c.inventory, vm.hostId) };
}

export async function attestationReport(
  c: ControlContext,
  actor: Actor,
  vmId: string,
  reportData: Uint8Array,
): Promise<AttestationReportInfo> {
  const { vm, host } = await reportTarget(c, vmId);
  const bytes = await (await connect(c, host)).attestationReport(vm.id, reportData);
  const r = parseSnpReport(bytes);
  await audit(c, actor, "vm.attestation-report.read", vm.id, "ok", { host: host.name });
  const generation = host.cpuGeneration;
  const layout = isEmulatedSnpGeneration(generation) ? SNP_PRODUCT_FACTS[generation].tcbLayout : "milan";
  const tcb = decodeSnpTcb(r.reportedTcb, layout);
  const info: AttestationReportInfo = {
    vm: vm.id,
    hostId: host.id,
    host: host.name,
    report: Buffer.from(bytes).toString("base64"),
    fields: {
      reportData: toHex(r.reportData),
      measurement: toHex(r.measurement),
      hostData: toHex(r.hostData),
      idKeyDigest: toHex(r.idKeyDigest),
      authorKeyDigest: toHex(r.authorKeyDigest),
      policy: `0x${r.policy.toString(16)}`,
      vmpl: r.vmpl,
      chipId: toHex(r.chipId),
      reportedTcb: { ...tcb, raw: `0x${r.reportedTcb.toString(16).padStart(16, "0")}` },
    },
  };
  if (host.driver !== "emulated" || !isEmulatedSnpGeneration(generation)) return info;
  const product = SNP_KDS_PRODUCTS[generation];
  const hwid = toHex(snpHwId(generation, r.chipId));
  const query: Record<string, string> = {};
  for (const [param, field] of Object.entries(vcekSplParams(generation))) query[param] = String(tcb[field]);
  const kds = emulatedKds(c);
  const search = new URLSearchParams(query).toString();
  return {
    ...info,
    certificates: {
      vcek: Buffer.from(kds.vcek(product, hwid, query)).toString("base64"),
      vcekPath: `/vcek/v1/${product}/${hwid}?${search}`,
      certChain: kds.vcekCertChain(product),
    },
  };
}
