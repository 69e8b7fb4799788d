/**
 * Problems from validation failures stay small whatever was sent (issue 13, found by test/fuzz/api.test.ts): Ajv
 * reports every failed field and an unknown key's error names the key, so a body of many long unknown keys came
 * back whole in the answer. At most MAX_FIELD_ERRORS are listed, each pointer cut, and the detail counts the rest.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_FIELD_ERRORS, toProblem } from "./problem.ts";

/** What fastify throws when Ajv refuses a body: one `additionalProperties` error per unknown key. */
function unknownKeys(keys: readonly string[]) {
  return Object.assign(new Error("body validation failed"), {
    statusCode: 400,
    validationContext: "body",
    validation: keys.map((k) => ({
      instancePath: "/selector",
      keyword: "additionalProperties",
      params: { additionalProperty: k },
      message: "must NOT have additional properties",
    })),
  });
}

describe("problems: field errors are bounded", () => {
  it("lists the first MAX_FIELD_ERRORS of 500 unknown keys and counts the rest in the detail", () => {
    const keys = Array.from({ length: 500 }, (_, i) => `key_${i}_`.padEnd(60, "x"));
    const p = toProblem(unknownKeys(keys), "/v1/vms:bulk-update");
    assert.equal(p.status, 400);
    assert.equal(p.code, "INVALID_INPUT");
    assert.equal(p.errors?.length, MAX_FIELD_ERRORS);
    assert.equal(p.errors?.[0]?.path, `/selector/${keys[0]}`);
    assert.match(p.detail, new RegExp(`\\(and ${500 - MAX_FIELD_ERRORS} more\\)$`));
    assert.ok(JSON.stringify(p).length < 4096, `${JSON.stringify(p).length} bytes`);
  });

  it("cuts a field pointer naming a huge key", () => {
    const p = toProblem(unknownKeys(["k".repeat(100_000)]));
    const path = p.errors?.[0]?.path ?? "";
    assert.ok(path.startsWith("/selector/kkk") && path.endsWith("…"), path.slice(0, 40));
    assert.ok(path.length <= 201, `${path.length}`);
    assert.ok(JSON.stringify(p).length < 1024, `${JSON.stringify(p).length} bytes`);
    assert.doesNotMatch(p.detail, /more\)$/);
  });
});
