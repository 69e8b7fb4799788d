/**
 * Strict parsing of flag values and input files for every command: a bad value becomes one clear line with code
 * INVALID_INPUT (exit 2) or IO (exit 1), never a stack trace.
 */
import { readFileSync } from "node:fs";
import { CiphervisorError } from "../errors.ts";
import { fromHex } from "../lib/bytes.ts";

/** A non-negative integer in decimal or 0x-hex, within [min, max]. */
export function parseIntFlag(value: string, flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const t = value.trim();
  const ok = /^(0x[0-9a-f]+|\d+)$/i.test(t);
  const n = ok ? Number(t) : Number.NaN;
  if (!ok || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${flag} must be an integer in ${min}..${max}, got '${value}'`,
    );
  }
  return n;
}

export function parseHexFlag(value: string, flag: string, length?: number): Uint8Array {
  return fromHex(value, flag, length);
}

export function parseBase64Flag(value: string, flag: string, length?: number): Uint8Array {
  const t = value.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) {
    throw new CiphervisorError("INVALID_INPUT", `${flag} is not base64`);
  }
  const b = new Uint8Array(Buffer.from(t, "base64"));
  if (length !== undefined && b.length !== length) {
    throw new CiphervisorError("INVALID_INPUT", `${flag} must decode to ${length} bytes, got ${b.length}`);
  }
  return b;
}

/** Reads a whole file, or fails with code IO naming the flag and the path. */
export function readInputFile(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
    throw new CiphervisorError("IO", `${flag} ${path}: ${reason}`, { cause: e });
  }
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${flag} must be one of ${choices.join(", ")}, got '${value}'`,
    );
  }
  return value as T;
}
