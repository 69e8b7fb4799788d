/**
 * The memory cipher's formulas (docs/sev-interface.md §13.2) one 16-byte block at a time: T from the bit-by-bit
 * `tweak()`, a fresh AES-128-ECB call per block. The slow, obvious reference both engines' tests compare against.
 */
import { aes128EcbDecrypt, aes128EcbEncrypt } from "../aes.ts";
import { type MemoryCipherMode, type TweakConstants, tweak } from "../xex.ts";

export function referenceXex(
  mode: MemoryCipherMode,
  dir: "enc" | "dec",
  key: Uint8Array,
  constants: TweakConstants,
  pa: number,
  data: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 16) {
    const t = tweak(constants, pa + o);
    const x = data.slice(o, o + 16);
    if (dir === "enc") {
      // XE: C = E(P ⊕ T). XEX: C = E(P ⊕ T) ⊕ T.
      for (let j = 0; j < 16; j++) x[j]! ^= t[j]!;
      const c = aes128EcbEncrypt(key, x);
      if (mode === "xex") for (let j = 0; j < 16; j++) c[j]! ^= t[j]!;
      out.set(c, o);
    } else {
      // XE: P = D(C) ⊕ T. XEX: P = D(C ⊕ T) ⊕ T.
      if (mode === "xex") for (let j = 0; j < 16; j++) x[j]! ^= t[j]!;
      const p = aes128EcbDecrypt(key, x);
      for (let j = 0; j < 16; j++) p[j]! ^= t[j]!;
      out.set(p, o);
    }
  }
  return out;
}
