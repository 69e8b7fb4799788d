import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { renderOperationRules } from "./operation-rules-doc.ts";

describe("docs/operation-rules.md", () => {
  it("is generated from the operation table (run `npm run docs` after changing the table)", () => {
    const doc = readFileSync(new URL("../../docs/operation-rules.md", import.meta.url), "utf8");
    assert.equal(doc, renderOperationRules());
  });
});
