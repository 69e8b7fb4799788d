/**
 * Identifiers for inventory objects: a type prefix, then 48 bits of creation time and 80 random bits in Crockford
 * base32 (lower case). Ids created later sort later (to the millisecond), so ordering by id — the order every list
 * and cursor uses — is close to creation order without a second sort column, and ids from several control-plane
 * nodes never collide in practice.
 */
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** Object kinds that get generated ids; the prefix tells a reader what an id names. */
export type IdKind = "cl" | "host" | "vm" | "op" | "tok" | "img";

// Random bytes drawn from a pooled buffer: one CSPRNG call per 409 ids instead of one per id (bulk creates).
let pool = Buffer.alloc(0);
let poolOffset = 0;

function randomChunk(n: number): Buffer {
  if (poolOffset + n > pool.length) {
    pool = randomBytes(4096);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

function base32(value: bigint, chars: number): string {
  let out = "";
  let v = value;
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[Number(v & 31n)] + out;
    v >>= 5n;
  }
  return out;
}

/**
 * A new id such as `vm_01j8x2c9fq7w3k5m8n2p4r6t`.
 *
 * @example
 * ```ts
 * const id = newId("vm", Date.now());
 * ```
 */
export function newId(kind: IdKind, nowMs: number): string {
  let r = 0n;
  for (const b of randomChunk(10)) r = (r << 8n) | BigInt(b);
  return `${kind}_${base32(BigInt(Math.max(0, Math.floor(nowMs))), 10)}${base32(r, 16)}`;
}
