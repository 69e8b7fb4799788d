/**
 * The memory controller's key slots, one per ASID (docs/sev-interface.md §13). The firmware programs a guest's VEK into
 * its ASID's slot on ACTIVATE and clears it on DEACTIVATE; the machine encrypts and decrypts through this object by
 * ASID and never sees a key. The key bytes live in a private field of a class that never exports them.
 */
import type { RandomSource } from "../crypto/random.ts";
import {
  fixedXeTweakConstants,
  MemoryCipher,
  type MemoryCipherMode,
  randomTweakConstants,
  type TweakConstants,
} from "../crypto/xex.ts";
import { CiphervisorError } from "../errors.ts";

/** What the machine may do with key slots: use them by ASID, never read them. */
export interface MemoryKeySlots {
  readonly mode: MemoryCipherMode;
  isProgrammed(asid: number): boolean;
  /** Ciphertext of `plaintext` as stored in DRAM at system physical address `pa` for `asid`. */
  encrypt(asid: number, pa: number, plaintext: Uint8Array): Uint8Array;
  decrypt(asid: number, pa: number, ciphertext: Uint8Array): Uint8Array;
  /**
   * The same bytes written into `out` (the input's length; it may be the input itself). The memory path's own
   * copies of a page are transformed in place: a fresh 4 KiB result per page costs about twice the AES-NI pass.
   */
  encryptInto(asid: number, pa: number, plaintext: Uint8Array, out: Uint8Array): void;
  decryptInto(asid: number, pa: number, ciphertext: Uint8Array, out: Uint8Array): void;
}

/** The firmware-side view: programming and clearing slots. Only sev/ holds this. */
export class KeySlotTable implements MemoryKeySlots {
  readonly mode: MemoryCipherMode;
  readonly #constants: TweakConstants;
  readonly #slots = new Map<number, MemoryCipher>();

  /** XEX draws fresh tweak constants at every boot; XE uses the fixed ones (§13.2). */
  constructor(mode: MemoryCipherMode, rng: RandomSource) {
    this.mode = mode;
    this.#constants = mode === "xex" ? randomTweakConstants(rng) : fixedXeTweakConstants();
  }

  program(asid: number, vek: Uint8Array): void {
    this.#slots.set(asid, new MemoryCipher(vek, this.#constants, this.mode));
  }

  clear(asid: number): void {
    this.#slots.delete(asid);
  }

  isProgrammed(asid: number): boolean {
    return this.#slots.has(asid);
  }

  #slot(asid: number): MemoryCipher {
    const s = this.#slots.get(asid);
    if (!s) throw new CiphervisorError("INTERNAL", `no memory-encryption key is programmed for ASID ${asid}`);
    return s;
  }

  encrypt(asid: number, pa: number, plaintext: Uint8Array): Uint8Array {
    return this.#slot(asid).encrypt(pa, plaintext);
  }

  decrypt(asid: number, pa: number, ciphertext: Uint8Array): Uint8Array {
    return this.#slot(asid).decrypt(pa, ciphertext);
  }

  encryptInto(asid: number, pa: number, plaintext: Uint8Array, out: Uint8Array): void {
    this.#slot(asid).encryptInto(pa, plaintext, out);
  }

  decryptInto(asid: number, pa: number, ciphertext: Uint8Array, out: Uint8Array): void {
    this.#slot(asid).decryptInto(pa, ciphertext, out);
  }
}
