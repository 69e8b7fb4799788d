import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { canonicalJson, type JsonObject, type JsonValue } from "./json.ts";

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

describe("canonicalJson's two paths", () => {
  /** A random JSON value: objects with keys in random order, integer-like keys, nesting, undefined members. */
  function randomValue(rand: () => number, depth: number): JsonValue {
    const r = rand();
    if (depth === 0 || r < 0.3) {
      const leaves: JsonValue[] = [null, true, false, 0, -0, 1.5, -1e21, 42, "", 'a\u2028"', "é"];
      return leaves[Math.floor(rand() * leaves.length)] as JsonValue;
    }
    if (r < 0.5) return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth - 1));
    const keys = ["b", "a", "10", "9", "A", "é", "ab", "_"];
    const o: JsonObject = {};
    for (const k of keys) if (rand() < 0.5) o[k] = rand() < 0.15 ? undefined : randomValue(rand, depth - 1);
    return o;
  }

  /** The same value with every object's keys inserted in reverse sorted order, so none is in canonical order. */
  function reversed(v: JsonValue): JsonValue {
    if (Array.isArray(v)) return v.map(reversed);
    if (v === null || typeof v !== "object") return v;
    const o: JsonObject = {};
    for (const k of Object.keys(v).sort().reverse()) {
      const m = v[k];
      o[k] = m === undefined ? undefined : reversed(m);
    }
    return o;
  }

  /** The same value with every object's keys inserted in sorted order (integer-like keys still enumerate first). */
  function sorted(v: JsonValue): JsonValue {
    if (Array.isArray(v)) return v.map(sorted);
    if (v === null || typeof v !== "object") return v;
    const o: JsonObject = {};
    for (const k of Object.keys(v).sort()) {
      const m = v[k];
      o[k] = m === undefined ? undefined : sorted(m);
    }
    return o;
  }

  it("writes the same text whatever order an object's keys were inserted in (fast path or not)", () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let i = 0; i < 2000; i++) {
      const v = randomValue(rand, 4);
      const text = canonicalJson(reversed(v));
      assert.equal(canonicalJson(v), text);
      assert.equal(canonicalJson(sorted(v)), text);
      assert.equal(canonicalJson(JSON.parse(text) as JsonValue), text);
    }
  });

  it("does not take JSON.stringify's word for integer-like keys, Dates or class instances", () => {
    // JSON.stringify would write {"9":1,"10":2} (integer keys enumerate first) and a Date's ISO string.
    assert.equal(canonicalJson({ "9": 1, "10": 2 }), '{"10":2,"9":1}');
    assert.equal(canonicalJson({ d: new Date(0) as unknown as JsonValue }), '{"d":{}}');
    class Point {
      y = 1;
      x = 2;
    }
    assert.equal(canonicalJson(new Point() as unknown as JsonValue), '{"x":2,"y":1}');
    assert.throws(
      () => canonicalJson([1, undefined as unknown as JsonValue]),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
  });
});
