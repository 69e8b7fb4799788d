/**
 * DRAM as stored: what is written reads back, whatever the alignment; never-written bytes read as zero; a write
 * of whole fresh frames (one copy shared by the frames) behaves like per-page writes — later writes to one frame
 * leave its neighbours alone, and the caller's buffer is copied, never kept; `view` hands out the stored bytes only
 * where they are one piece.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Dram, PAGE_SIZE } from "./dram.ts";

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

describe("Dram", () => {
  it("reads back unaligned writes spanning fresh and existing frames, zero elsewhere", () => {
    const d = new Dram(64 * PAGE_SIZE);
    d.write(PAGE_SIZE + 100, pattern(10, 1)); // frame 1 exists, partly written
    const big = pattern(5 * PAGE_SIZE + 17, 2);
    d.write(100, big); // head of frame 0, frame 1 (existing), frames 2..4 whole and fresh, a tail in frame 5
    assert.deepEqual(d.read(100, big.length), big);
    assert.deepEqual(d.read(0, 100), new Uint8Array(100));
    assert.deepEqual(d.read(100 + big.length, 64), new Uint8Array(64));
    assert.deepEqual(
      d.frameAddresses(),
      [0, 1, 2, 3, 4, 5].map((f) => f * PAGE_SIZE),
    );
  });

  it("keeps frames written in one piece independent, and copies the caller's bytes (a Buffer too)", () => {
    const d = new Dram(64 * PAGE_SIZE);
    const src = Buffer.from(pattern(8 * PAGE_SIZE, 3));
    d.write(8 * PAGE_SIZE, src);
    src.fill(0xee); // the caller reuses its buffer: DRAM must not change
    const want = pattern(8 * PAGE_SIZE, 3);
    assert.deepEqual(d.read(8 * PAGE_SIZE, want.length), want);
    d.write(10 * PAGE_SIZE + 5, Uint8Array.of(1, 2, 3));
    want.set([1, 2, 3], 2 * PAGE_SIZE + 5);
    assert.deepEqual(d.read(8 * PAGE_SIZE, want.length), want, "only the written bytes of frame 10 changed");
    d.write(8 * PAGE_SIZE, new Uint8Array(8 * PAGE_SIZE).fill(9)); // rewriting existing frames in place
    assert.deepEqual(d.read(8 * PAGE_SIZE, 8 * PAGE_SIZE), new Uint8Array(8 * PAGE_SIZE).fill(9));
    assert.equal(d.framesInUse, 8);
  });

  it("gives a live view of bytes stored in one piece, and none across frames written apart or never written", () => {
    const d = new Dram(64 * PAGE_SIZE);
    d.write(4 * PAGE_SIZE, pattern(4 * PAGE_SIZE, 4)); // frames 4..7 in one piece
    d.write(9 * PAGE_SIZE, pattern(PAGE_SIZE, 5)); // frame 9 alone
    d.write(8 * PAGE_SIZE, pattern(PAGE_SIZE, 6)); // frame 8 alone
    const v = d.view(4 * PAGE_SIZE + 10, 3 * PAGE_SIZE);
    assert.ok(v);
    assert.deepEqual(v, d.read(4 * PAGE_SIZE + 10, 3 * PAGE_SIZE));
    v.fill(0xab); // a view writes memory
    assert.deepEqual(d.read(4 * PAGE_SIZE + 10, 3 * PAGE_SIZE), new Uint8Array(3 * PAGE_SIZE).fill(0xab));
    assert.equal(d.view(7 * PAGE_SIZE, 2 * PAGE_SIZE), undefined, "frames 7 and 8 were written apart");
    assert.equal(d.view(8 * PAGE_SIZE, 2 * PAGE_SIZE), undefined, "frames 8 and 9 were written apart");
    assert.ok(d.view(9 * PAGE_SIZE + 1, PAGE_SIZE - 1), "within one frame");
    assert.equal(d.view(20 * PAGE_SIZE, 16), undefined, "never written");
    assert.equal(d.view(0, 0), undefined);
  });

  it("refuses ranges outside DRAM", () => {
    const d = new Dram(4 * PAGE_SIZE);
    assert.throws(() => d.write(3 * PAGE_SIZE, new Uint8Array(PAGE_SIZE + 1)), RangeError);
    assert.throws(() => d.read(-1, 1), RangeError);
  });
});
