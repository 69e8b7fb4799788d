import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { canonicalJson } from "./json.ts";

describe("canonicalJson", () => {
  it("sorts keys at every level, drops undefined members and has no whitespace", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [true, null, "x"], c: undefined, b: -0.5 }, é: 2, A: 3 }),
      '{"A":3,"a":{"b":-0.5,"d":[true,null,"x"]},"b":1,"é":2}',
    );
  });

  it("writes empty and nested containers, and skips a leading undefined member without a stray comma", () => {
    assert.equal(canonicalJson({}), "{}");
    assert.equal(canonicalJson([]), "[]");
    assert.equal(canonicalJson({ a: undefined, b: [[], [{}], [1, [2]]] }), '{"b":[[],[{}],[1,[2]]]}');
    assert.equal(canonicalJson([null, "s", false, { y: 1, x: [] }]), '[null,"s",false,{"x":[],"y":1}]');
  });

  it("round-trips through JSON.parse to the same text", () => {
    const v = { z: [1, 2.5, 1e21, '\u2028\n"q"'], y: { x: false } };
    const text = canonicalJson(v);
    assert.equal(canonicalJson(JSON.parse(text)), text);
  });

  it("rejects non-finite numbers instead of writing null", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => canonicalJson({ n: bad }),
        (e) => isCiphervisorError(e, "INVALID_INPUT"),
      );
    }
  });
});
