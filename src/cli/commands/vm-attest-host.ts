/**
 * `host sev-info NAME [--out DIR]`: what `virsh nodesevinfo` shows, and with `--out` the certificates as
 * `sevctl export` writes them (pdh.cert, pek.cert, oca.cert, cek.cert), ready for `owner verify-chain` with the
 * ASK-signed CEK the owner fetches from the KDS by cpu0 id, against the root the owner chooses.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { findHost } from "../client/lookup.ts";
import type { ApiSevInfo } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor } from "../options.ts";
import { json } from "../output/format.ts";
import { fields } from "../output/table.ts";

type SevInfo = ApiSevInfo;

/** The files `sevctl export` writes, in order. */
const CERT_FILES = ["pdh", "pek", "oca", "cek"] as const;

function writeCerts(dir: string, info: SevInfo): string[] {
  try {
    mkdirSync(dir, { recursive: true });
    return CERT_FILES.map((k) => {
      const path = join(dir, `${k}.cert`);
      writeFileSync(path, Buffer.from(info[k], "base64"));
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
      .option("--out <dir>", "write pdh.cert, pek.cert, oca.cert and cek.cert there (like sevctl export)")
      .description("the host's PDH, certificate chain, cpu0 id and firmware (virsh nodesevinfo)"),
  ).action(async (name: string, flags: CommonFlags & { out?: string }) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const h = await findHost(api, name);
    const info = await api.get<SevInfo>(`/v1/hosts/${h.id}/sev-info`);
    const written = flags.out === undefined ? [] : writeCerts(flags.out, info);
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
