/**
 * The SEV key-derivation function: NIST SP 800-108 in counter mode with HMAC-SHA256 as PRF and
 * **little-endian** counters (docs/sev-interface.md §9.2, §15 pitfall 5).
 *
 * `K(i) = HMAC-SHA256(Kin, u32le(i) ‖ label ‖ 0x00 ‖ context ‖ u32le(L_bits))`
 */
import { concat, u32le } from "../lib/bytes.ts";
import { hmacSha256 } from "./hash.ts";

const NUL = new Uint8Array([0]);

/**
 * @example
 * ```ts
 * const master = sevKdf(z, "sev-master-secret", nonce, 128);
 * const kek = sevKdf(master, "sev-kek", new Uint8Array(), 128);
 * ```
 */
export function sevKdf(kin: Uint8Array, label: string, context: Uint8Array, bits = 128): Uint8Array {
  const bytes = bits / 8;
  const labelBytes = new TextEncoder().encode(label);
  const out = new Uint8Array(Math.ceil(bytes / 32) * 32);
  for (let i = 1, o = 0; o < bytes; i++, o += 32) {
    out.set(hmacSha256(kin, concat(u32le(i), labelBytes, NUL, context, u32le(bits))), o);
  }
  return out.slice(0, bytes);
}

/** The three session derivations of §9.2: master secret from Z and the session nonce, then KEK and KIK. */
export function deriveSessionKeys(z: Uint8Array, nonce: Uint8Array): { kek: Uint8Array; kik: Uint8Array } {
  const master = sevKdf(z, "sev-master-secret", nonce);
  return {
    kek: sevKdf(master, "sev-kek", new Uint8Array()),
    kik: sevKdf(master, "sev-kik", new Uint8Array()),
  };
}
