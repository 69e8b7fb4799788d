/**
 * Identifiers for inventory objects: a type prefix, then 48 bits of creation time and 80 random bits in Crockford
 * base32 (lower case). Ids created later sort later, so ordering by id — the order every list and cursor uses — is
 * creation order without a second sort column, and ids from several control-plane nodes never collide in practice.
 *
 * Within one millisecond (a bulk create makes thousands) a process's ids count up from the first one's random
 * bits instead of drawing new ones, as ULID's monotonic mode does: they still sort in creation order, so rows a
 * bulk create inserted one after another also lie one after another in the id order a bulk change pages through
 * (with random bits they scattered each page of 1,000 VMs over every page of the table SQLite had written for
 * that create). Ids name objects and grant nothing, so that the next one is guessable costs nothing.
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

/** The last id's time and random part: the next id in the same millisecond (or earlier) counts up from them. */
let lastMs = -1;
let lastRandom = 0n;
const RANDOM_LIMIT = 1n << 80n;

/**
 * A new id such as `vm_01j8x2c9fq7w3k5m8n2p4r6t`, greater than every id this process made before it.
 *
 * @example
 * ```ts
 * const id = newId("vm", Date.now());
 * ```
 */
export function newId(kind: IdKind, nowMs: number): string {
  let ms = Math.max(0, Math.floor(nowMs));
  let r: bigint;
  if (ms <= lastMs) {
    // Same millisecond, or the clock stepped back: keep the last time and count up (its 80 bits cannot run out
    // in practice; if they did, the time moves on by one millisecond).
    ms = lastMs;
    r = lastRandom + 1n;
    if (r >= RANDOM_LIMIT) {
      ms += 1;
      r = 0n;
    }
  } else {
    r = 0n;
    for (const b of randomChunk(10)) r = (r << 8n) | BigInt(b);
  }
  lastMs = ms;
  lastRandom = r;
  return `${kind}_${base32(BigInt(ms), 10)}${base32(r, 16)}`;
}
