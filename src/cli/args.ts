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

/** `on` or `off` → boolean. */
export function parseOnOff(value: string, flag: string): boolean {
  return parseChoice(value, flag, ["on", "off"] as const) === "on";
}

const POLICY_FLAGS: Readonly<Record<string, number>> = {
  NODBG: 0x1,
  NOKS: 0x2,
  ES: 0x4,
  NOSEND: 0x8,
  DOMAIN: 0x10,
  SEV: 0x20,
};

/**
 * A 32-bit SEV guest policy: a number (`0x5`, `7`) or flag names (`NODBG,ES` or `NODBG|NOKS|ES`). The server checks
 * that it fits the mode (the ES bit, reserved bits).
 */
export function parsePolicy(value: string, flag = "--policy"): number {
  const t = value.trim();
  if (/^[A-Za-z_|,\s]+$/.test(t)) {
    let p = 0;
    for (const name of t.split(/[|,\s]+/).filter((x) => x !== "")) {
      const bit = POLICY_FLAGS[name.toUpperCase()];
      if (bit === undefined) {
        throw new CiphervisorError(
          "INVALID_INPUT",
          `${flag}: unknown policy flag '${name}' (flags: ${Object.keys(POLICY_FLAGS).join(", ")})`,
        );
      }
      p |= bit;
    }
    return p;
  }
  return parseIntFlag(value, flag, 0, 0xffffffff);
}

/** Repeated `--label key=value` flags → a label map. */
export function parseLabels(values: readonly string[], flag = "--label"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i <= 0) throw new CiphervisorError("INVALID_INPUT", `${flag} must be key=value, got '${v}'`);
    const key = v.slice(0, i);
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/.test(key)) {
      throw new CiphervisorError("INVALID_INPUT", `${flag}: '${key}' is not a label key`);
    }
    out[key] = v.slice(i + 1);
  }
  return out;
}

/** Commander collector for repeatable flags. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
