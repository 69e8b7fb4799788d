import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { seededRandom } from "./random.ts";
import { referenceXex as reference } from "./testing/xex-reference.ts";
import { fixedXeTweakConstants, MemoryCipher, randomTweakConstants, tweak } from "./xex.ts";

const MAX_PA = 2 ** 52 - 2 ** 20;

describe("MemoryCipher (docs/sev-interface.md §13.2) against the per-block reference", () => {
  for (const mode of ["xex", "xe"] as const) {
    it(`${mode}: encrypt and decrypt equal the formula for any key, address and length`, () => {
      const constants =
        mode === "xex" ? randomTweakConstants(seededRandom("xex-ref")) : fixedXeTweakConstants();
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
          fc.integer({ min: 0, max: MAX_PA / 16 }),
          fc.integer({ min: 0, max: 600 }),
          fc.integer({ min: 0, max: 2 ** 31 }),
          (key, block, blocks, fill) => {
            const pa = block * 16;
            const data = seededRandom(fill).bytes(blocks * 16);
            const c = new MemoryCipher(key, constants, mode);
            const ct = c.encrypt(pa, data);
            assert.deepEqual(ct, reference(mode, "enc", key, constants, pa, data));
            assert.deepEqual(c.decrypt(pa, ct), data);
            assert.deepEqual(c.decrypt(pa, data), reference(mode, "dec", key, constants, pa, data));
          },
        ),
        { numRuns: 150, seed: 13 },
      );
    });
  }

  it("handles inputs that are unaligned views, span pages, and exceed the first scratch size", () => {
    const constants = randomTweakConstants(seededRandom(5));
    const key = seededRandom(6).bytes(16);
    const c = new MemoryCipher(key, constants, "xex");
    const backing = seededRandom(7).bytes(200_000 + 3);
    const view = backing.subarray(3, 3 + 160_000); // byteOffset 3: not word aligned; 39+ pages; > 64 KiB of wasm
    const pa = 0x7_ffff_f000; // crosses 2^35
    const ct = c.encrypt(pa, view);
    assert.deepEqual(ct, reference("xex", "enc", key, constants, pa, view));
    assert.deepEqual(c.decrypt(pa, ct), view);
  });

  it("returns arrays that callers own: later calls and the shared scratch never change them", () => {
    const constants = randomTweakConstants(seededRandom(8));
    const a = new MemoryCipher(seededRandom(9).bytes(16), constants, "xex");
    const b = new MemoryCipher(seededRandom(10).bytes(16), constants, "xex");
    const p = seededRandom(11).bytes(4096);
    const first = a.encrypt(0x1000, p);
    const copy = first.slice();
    b.encrypt(0x2000, seededRandom(12).bytes(8192));
    a.decrypt(0x3000, p);
    assert.deepEqual(first, copy);
    assert.equal(Object.getPrototypeOf(first), Uint8Array.prototype);
    assert.equal(first.buffer.byteLength, first.length);
  });

  it("is deterministic per (key, address) and differs across addresses and keys", () => {
    const constants = randomTweakConstants(seededRandom(14));
    const k1 = new MemoryCipher(seededRandom(15).bytes(16), constants, "xex");
    const k2 = new MemoryCipher(seededRandom(16).bytes(16), constants, "xex");
    const p = new Uint8Array(16).fill(0x5a);
    assert.deepEqual(k1.encrypt(0x4000, p), k1.encrypt(0x4000, p));
    assert.notDeepEqual(k1.encrypt(0x4000, p), k1.encrypt(0x4010, p));
    assert.notDeepEqual(k1.encrypt(0x4000, p), k2.encrypt(0x4000, p));
  });

  it("XE: a ciphertext block moved from a to b decrypts to P ⊕ T(a) ⊕ T(b) (Du et al. 2017)", () => {
    const constants = fixedXeTweakConstants();
    const c = new MemoryCipher(seededRandom(17).bytes(16), constants, "xe");
    const p = seededRandom(18).bytes(16);
    const a = 0x12340;
    const b = 0x98760;
    const moved = c.decrypt(b, c.encrypt(a, p));
    const ta = tweak(constants, a);
    const tb = tweak(constants, b);
    assert.deepEqual(
      moved,
      p.map((x, i) => x ^ ta[i]! ^ tb[i]!),
    );
  });

  it("refuses misaligned addresses and partial blocks", () => {
    const c = new MemoryCipher(new Uint8Array(16), fixedXeTweakConstants(), "xex");
    assert.throws(() => c.encrypt(8, new Uint8Array(16)), RangeError);
    assert.throws(() => c.encrypt(0, new Uint8Array(15)), RangeError);
    assert.throws(() => c.decrypt(-16, new Uint8Array(16)), RangeError);
    assert.throws(() => new MemoryCipher(new Uint8Array(15), fixedXeTweakConstants(), "xe"), RangeError);
  });
});
