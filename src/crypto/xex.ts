/**
 * The memory-encryption cipher of SEV and SEV-ES (sev-interface.md §13.2): AES-128 per 16-byte block with a tweak
 * taken from the **system physical address**:
 *
 * ```
 * T(pa) = XOR of t_i over every set bit i ≥ 4 of pa
 * XEX (Rome and later): C = AES_K(P ⊕ T(pa)) ⊕ T(pa)
 * XE  (Naples):         C = AES_K(P ⊕ T(pa))
 * ```
 *
 * Deterministic per (key, address) on purpose: that is what real hardware does, and what makes the ciphertext
 * side channels, replay and block moves of threat-model.md reproducible.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { RandomSource } from "./random.ts";

export type MemoryCipherMode = "xe" | "xex";

/** Number of address bits that feed the tweak (bits 4..51 of a 52-bit physical address). */
export const TWEAK_ADDRESS_BITS = 52;

/** The per-bit tweak constants t_4 … t_51, 16 bytes each. */
export type TweakConstants = Uint8Array[];

/** Fresh random tweak constants (XEX draws them at every platform boot). */
export function randomTweakConstants(rng: RandomSource): TweakConstants {
  const t: Uint8Array[] = [];
  for (let i = 0; i < TWEAK_ADDRESS_BITS; i++) t.push(i < 4 ? new Uint8Array(16) : rng.bytes(16));
  return t;
}

/**
 * Fixed XE constants. The real Naples constants are not public; these are fixed, documented stand-ins with the
 * same property the published attacks use: linear in the address bits and identical across boots.
 */
export function fixedXeTweakConstants(): TweakConstants {
  const t: Uint8Array[] = [];
  for (let i = 0; i < TWEAK_ADDRESS_BITS; i++) {
    const c = new Uint8Array(16);
    if (i >= 4) for (let j = 0; j < 16; j++) c[j] = (i * 0x9d + j * 0x3b + ((i * j) & 0xff)) & 0xff;
    t.push(c);
  }
  return t;
}

/** T(pa) for the 16-byte block at `pa` (pa must be 16-byte aligned). */
export function tweak(constants: TweakConstants, pa: number): Uint8Array {
  const out = new Uint8Array(16);
  let a = Math.floor(pa / 16);
  for (let bit = 4; a > 0 && bit < TWEAK_ADDRESS_BITS; bit++, a = Math.floor(a / 2)) {
    if (a % 2 === 1) {
      const c = constants[bit]!;
      for (let j = 0; j < 16; j++) out[j]! ^= c[j]!;
    }
  }
  return out;
}

/**
 * One key's cipher. Whole buffers go through a single AES call: the tweak stream for a range is computed first
 * (cached per 4 KiB page offset pattern), XORed in, encrypted as ECB, and XORed again for XEX.
 */
export class MemoryCipher {
  readonly #key: Uint8Array;
  readonly #constants: TweakConstants;
  readonly mode: MemoryCipherMode;
  /** Tweaks of the 256 blocks inside a page for page offset bits only (bits 4..11), reused for every page. */
  readonly #inPage: Uint8Array;

  constructor(key: Uint8Array, constants: TweakConstants, mode: MemoryCipherMode) {
    if (key.length !== 16) throw new RangeError("AES-128 key must be 16 bytes");
    this.#key = key.slice();
    this.#constants = constants;
    this.mode = mode;
    this.#inPage = new Uint8Array(4096);
    for (let off = 0; off < 4096; off += 16) this.#inPage.set(tweak(constants, off), off);
  }

  /** The tweak stream for `length` bytes starting at `pa`: in-page tweaks XOR the page-number tweak. */
  #tweakStream(pa: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let o = 0;
    while (o < length) {
      const addr = pa + o;
      const pageBase = addr - (addr % 4096);
      const pageTweak = tweak(this.#constants, pageBase);
      const start = addr - pageBase;
      const n = Math.min(4096 - start, length - o);
      for (let i = 0; i < n; i++) out[o + i] = this.#inPage[start + i]! ^ pageTweak[(start + i) & 15]!;
      o += n;
    }
    return out;
  }

  #check(pa: number, data: Uint8Array): void {
    if (pa % 16 !== 0 || data.length % 16 !== 0)
      throw new RangeError("memory cipher works on aligned 16-byte blocks");
  }

  encrypt(pa: number, plaintext: Uint8Array): Uint8Array {
    this.#check(pa, plaintext);
    const t = this.#tweakStream(pa, plaintext.length);
    const x = new Uint8Array(plaintext.length);
    for (let i = 0; i < x.length; i++) x[i] = plaintext[i]! ^ t[i]!;
    const c = createCipheriv("aes-128-ecb", this.#key, null).setAutoPadding(false);
    const out = new Uint8Array(c.update(x));
    if (this.mode === "xex") for (let i = 0; i < out.length; i++) out[i]! ^= t[i]!;
    return out;
  }

  decrypt(pa: number, ciphertext: Uint8Array): Uint8Array {
    this.#check(pa, ciphertext);
    const t = this.#tweakStream(pa, ciphertext.length);
    const x = ciphertext.slice();
    if (this.mode === "xex") for (let i = 0; i < x.length; i++) x[i]! ^= t[i]!;
    const d = createDecipheriv("aes-128-ecb", this.#key, null).setAutoPadding(false);
    const out = new Uint8Array(d.update(x));
    for (let i = 0; i < out.length; i++) out[i]! ^= t[i]!;
    return out;
  }
}
