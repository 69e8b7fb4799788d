/**
 * Reading a SEV certificate chain from disk in the shapes guest owners have (docs/sev-interface.md §11.3):
 * - a directory as `sevctl export --full` writes it: `ark.cert ask.cert cek.cert oca.cert pek.cert pdh.cert`
 *   (ARK and ASK optional: the trusted root's are used when absent);
 * - sevctl's concatenated chain file: PDH ‖ PEK ‖ OCA ‖ CEK [‖ ASK ‖ ARK];
 * - AMD's `ask_ark_<generation>.cert` bundle: ASK ‖ ARK.
 *
 * Decoding lives in `certs/chain.ts` (pure); this module only reads files, with one-line IO errors.
 *
 * @example
 * ```ts
 * const chain = parseSevChain(...Object.values(readSevChainDir("/tmp/chain")));
 * ```
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  SEV_CHAIN_FILE_NAMES,
  type SevChainBytes,
  type SevChainRole,
  splitAskArk,
  splitSevctlChain,
} from "../certs/chain.ts";
import { CiphervisorError } from "../errors.ts";

/** Reads one file or fails with code IO naming `label` and the path. */
export function readChainFile(path: string, label: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (e as Error).message;
    throw new CiphervisorError("IO", `${label} ${path}: ${reason}`, { cause: e });
  }
}

/** A chain's files with the names they were read from (for error messages). */
export interface SevChainFiles {
  bytes: SevChainBytes;
  names: Partial<Record<SevChainRole, string>>;
}

/**
 * Reads a chain directory. CEK, OCA, PEK and PDH are required; ARK and ASK are read when present.
 * @throws CiphervisorError IO for a missing directory or required file.
 */
export function readSevChainDir(dir: string): SevChainFiles {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CiphervisorError("IO", `--dir ${dir}: no such directory`);
  const names: Partial<Record<SevChainRole, string>> = {};
  const read = (role: SevChainRole): Uint8Array => {
    const path = join(dir, SEV_CHAIN_FILE_NAMES[role]);
    names[role] = path;
    return readChainFile(path, "--dir");
  };
  const optional = (role: "ark" | "ask") =>
    existsSync(join(dir, SEV_CHAIN_FILE_NAMES[role])) ? { [role]: read(role) } : {};
  const bytes: SevChainBytes = {
    ...optional("ark"),
    ...optional("ask"),
    cek: read("cek"),
    oca: read("oca"),
    pek: read("pek"),
    pdh: read("pdh"),
  };
  return { bytes, names };
}

/** Reads sevctl's concatenated chain file (PDH ‖ PEK ‖ OCA ‖ CEK [‖ ASK ‖ ARK]). */
export function readSevctlChainFile(path: string): SevChainFiles {
  const bytes = splitSevctlChain(readChainFile(path, "--chain"), path);
  const names: Partial<Record<SevChainRole, string>> = {};
  for (const role of Object.keys(SEV_CHAIN_FILE_NAMES) as SevChainRole[]) {
    names[role] = `${path} (${role.toUpperCase()})`;
  }
  return { bytes, names };
}

/** Reads AMD's ASK ‖ ARK bundle. */
export function readAskArkFile(path: string): { ask: Uint8Array; ark: Uint8Array } {
  return splitAskArk(readChainFile(path, "--ca"), path);
}
