import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { count } from "./format.ts";

describe("count", () => {
  it("writes integers as toLocaleString('en-US') does, without loading ICU", () => {
    const values = [
      0, 1, 7, 999, 1000, 10_000, 123_456, 1_000_000, 9_007_199_254_740_991, -1, -1000, -12_345_678,
    ];
    for (let n = 1; n < 1e15; n = n * 7 + 3) values.push(n);
    for (const n of values) assert.equal(count(n), n.toLocaleString("en-US"), String(n));
  });

  it("leaves what is not a safe integer as String() writes it", () => {
    assert.equal(count(1.5), "1.5");
    assert.equal(count(Number.NaN), "NaN");
    assert.equal(count(2 ** 60), String(2 ** 60));
  });
});
