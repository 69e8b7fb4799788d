import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newId } from "./ids.ts";

const ID = /^vm_[0-9a-hjkmnp-tv-z]{26}$/;

describe("newId", () => {
  it("makes ids that sort in creation order, also many within one millisecond and when the clock steps back", () => {
    const t = Date.now() + 10_000;
    const ids = [
      ...Array.from({ length: 5000 }, () => newId("vm", t)),
      newId("vm", t - 5),
      newId("vm", t + 1),
      ...Array.from({ length: 100 }, () => newId("vm", t + 1)),
    ];
    for (const id of ids) assert.match(id, ID);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
    assert.equal(new Set(ids).size, ids.length);
  });

  it("counts up within a millisecond but draws fresh random bits in the next one", () => {
    const t = Date.now() + 20_000;
    const [a, b] = [newId("vm", t), newId("vm", t)];
    const c = newId("vm", t + 1);
    const decode = (s: string) =>
      [...s].reduce((v, ch) => v * 32n + BigInt("0123456789abcdefghjkmnpqrstvwxyz".indexOf(ch)), 0n);
    // Same time part, and b's random part is a's plus one.
    assert.equal(a.slice(0, 13), b.slice(0, 13));
    assert.equal(decode(b.slice(13)), decode(a.slice(13)) + 1n);
    // The next millisecond: its own time part, read back, and random bits not counted on from b's.
    assert.equal(decode(c.slice(3, 13)), BigInt(t + 1));
    assert.notEqual(decode(c.slice(13)), decode(b.slice(13)) + 1n);
  });
});
