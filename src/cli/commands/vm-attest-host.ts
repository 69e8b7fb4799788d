/**
 * `host sev-info NAME [--out DIR]`: what `virsh nodesevinfo` shows, and with `--out` the whole chain as `sevctl
 * export --full` writes it (ark.cert, ask.cert, cek.cert, oca.cert, pek.cert, pdh.cert), ready for `owner
 * verify-chain --dir DIR` against the root the owner chooses. Like sevctl, the CEK is not the platform's own
 * (PDH_CERT_EXPORT's is not signed by the ASK): it is fetched by cpu0 id from the KDS the server names — its own
 * emulated KDS for an emulated host, AMD's for a real one — with the generation's ASK ‖ ARK
 * (docs/sev-interface.md §11.3, §11.5).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import type { ApiClient } from "../client/http.ts";
import { findHost } from "../client/lookup.ts";
import type { ApiSevInfo } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor } from "../options.ts";
import { json } from "../output/format.ts";
import { fields } from "../output/table.ts";
import { hex } from "../output/vm-table.ts";

type SevInfo = ApiSevInfo;

/** The files `sevctl export --full` writes, from the root down. */
const CERT_FILES = ["ark", "ask", "cek", "oca", "pek", "pdh"] as const;
type CertFile = (typeof CERT_FILES)[number];

/** The chain a guest owner verifies: the platform's PDH, PEK and OCA, and from the KDS the CEK, ASK and ARK. */
async function fullChain(api: ApiClient, info: SevInfo): Promise<Record<CertFile, Uint8Array>> {
  const kds = info.kds;
  if (kds === undefined) {
    throw new CiphervisorError(
      "NOT_FOUND",
      `host ${info.host} reported no cpu0 id, so its ASK-signed CEK cannot be fetched from a KDS`,
    );
  }
  // Loaded only for --out, so that `host list` and friends start without the certificate codecs.
  const { splitAskArk } = await import("../../certs/chain.ts");
  const { SEV_CERT_SIZE } = await import("../../certs/sev-cert.ts");
  const cek = await api.getBytes(kds.cek);
  if (cek.length !== SEV_CERT_SIZE) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `GET ${kds.cek}: a CEK is ${SEV_CERT_SIZE} bytes, got ${cek.length}`,
    );
  }
  const { ask, ark } = splitAskArk(await api.getBytes(kds.askArk), `GET ${kds.askArk}`);
  const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
  return { ark, ask, cek, oca: b64(info.oca), pek: b64(info.pek), pdh: b64(info.pdh) };
}

/** A KDS location as a URL one can fetch: paths are on the server the CLI talks to. */
function absolute(api: ApiClient, location: string): string {
  return location.startsWith("/") ? `${api.server}${location}` : location;
}

function writeCerts(dir: string, chain: Record<CertFile, Uint8Array>): string[] {
  try {
    mkdirSync(dir, { recursive: true });
    return CERT_FILES.map((k) => {
      const path = join(dir, `${k}.cert`);
      writeFileSync(path, chain[k]);
      return path;
    });
  } catch (e) {
    throw new CiphervisorError("IO", `--out ${dir}: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
}

export function registerHostSevInfo(host: Command, io: CliIo): void {
  apiCommand(
    host
      .command("sev-info")
      .argument("<host>", "host name or id")
      .option(
        "--out <dir>",
        "write ark.cert ask.cert cek.cert oca.cert pek.cert pdh.cert there (like sevctl export --full; the ASK-signed CEK, ASK and ARK come from the KDS)",
      )
      .description("the host's PDH, certificate chain, cpu0 id and firmware (virsh nodesevinfo)"),
  ).action(async (name: string, flags: CommonFlags & { out?: string }) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const h = await findHost(api, name);
    const info = await api.get<SevInfo>(`/v1/hosts/${h.id}/sev-info`);
    const written = flags.out === undefined ? [] : writeCerts(flags.out, await fullChain(api, info));
    if (mode === "json") {
      io.out(json({ ...info, ...(written.length > 0 ? { files: written } : {}) }));
      return;
    }
    io.out(
      fields([
        ["host", info.host],
        ["generation", info.generation],
        ["sev state", info.sevState],
        ["firmware", `${info.firmware.apiMajor}.${info.firmware.apiMinor} build ${info.firmware.build}`],
        ["cpu0-id", info.cpu0Id],
        ["vmm-profile", info.vmmProfile],
        ...(info.guestCpu === undefined
          ? []
          : ([
              ["vcpu-type", info.guestCpu.type],
              [
                "vcpu-sig",
                `${hex(info.guestCpu.signature)} (family ${info.guestCpu.family}, model ${info.guestCpu.model}, stepping ${info.guestCpu.stepping})`,
              ],
            ] as const)),
        ...(info.kds === undefined ? [] : [["kds-cek", absolute(api, info.kds.cek)] as const]),
        ["cbitpos", info.cBit],
        ["reduced-phys-bits", info.reducedPhysBits],
        ["max-guests", info.maxSevGuests],
        ["max-es-guests", info.maxSevEsGuests],
        ["pdh", info.pdh],
        ["cert-chain", info.certChain],
      ]),
    );
    for (const p of written) io.err(`wrote ${p}\n`);
  });
}
