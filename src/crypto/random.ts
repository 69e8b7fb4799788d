/**
 * Injected randomness. Pure layers (sev/, machine/, crypto/, certs/) never call a global RNG: they take a
 * `RandomSource`, so an emulated platform is reproducible from a seed and tests are repeatable.
 */
import { createCipheriv, createHash, randomBytes } from "node:crypto";

export interface RandomSource {
  /** `n` fresh bytes. */
  bytes(n: number): Uint8Array;
}

/** The operating system's CSPRNG, for guest-owner tools where keys must be unpredictable. */
export const systemRandom: RandomSource = {
  bytes: (n) => new Uint8Array(randomBytes(n)),
};

/**
 * A deterministic stream: AES-128-CTR keyed by SHA-256(seed), so the same seed always yields the same bytes.
 * For emulated platforms and tests only — never for a guest owner's real keys.
 *
 * @example
 * ```ts
 * const rng = seededRandom("platform-1");
 * const nonce = rng.bytes(16);
 * ```
 */
export function seededRandom(seed: string | number | Uint8Array): RandomSource {
  const material = typeof seed === "string" || typeof seed === "number" ? Buffer.from(String(seed)) : seed;
  const h = createHash("sha256").update("ciphervisor-seeded-random\0").update(material).digest();
  const ctr = createCipheriv("aes-128-ctr", h.subarray(0, 16), h.subarray(16, 32));
  return {
    bytes: (n) => new Uint8Array(ctr.update(Buffer.alloc(n))),
  };
}

/** A child stream whose bytes do not depend on how much the parent is used later. */
export function forkRandom(parent: RandomSource, label: string): RandomSource {
  const seed = parent.bytes(32);
  return seededRandom(Buffer.concat([Buffer.from(`${label}\0`), seed]));
}
