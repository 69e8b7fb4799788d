/** How `operation show` / `operation list` word a resuming operation: a lost node, or a store outage being retried. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ApiOperation } from "../client/types.ts";
import { shownStatus } from "./operation.ts";

const NOW = Date.parse("2026-01-01T00:00:00.000Z");

function op(over: Partial<ApiOperation>): ApiOperation {
  return {
    id: "op_1",
    kind: "vm.bulk-update",
    status: "running",
    actor: { id: null, name: "t" },
    params: {},
    progress: { done: 0, total: 1, ok: 0, failed: 0 },
    ...over,
  } as ApiOperation;
}

describe("shownStatus", () => {
  it("says a lost node is taken over, and when", () => {
    const s = shownStatus(
      op({ status: "resuming", takeoverAt: "2026-01-01T00:00:05.000Z", resumeReason: "holder-exited" }),
      NOW,
    );
    assert.equal(s, "resuming (its node is gone; taken over at 2026-01-01T00:00:05.000Z, in 5 s)");
  });

  it("says a store outage is retried, not that its node is gone", () => {
    const s = shownStatus(
      op({ status: "resuming", takeoverAt: "2026-01-01T00:00:01.000Z", resumeReason: "store-outage" }),
      NOW,
    );
    assert.equal(s, "resuming (the store went away under it; retried at 2026-01-01T00:00:01.000Z, in 1 s)");
  });

  it("leaves every other status as it is", () => {
    assert.equal(shownStatus(op({ status: "succeeded" }), NOW), "succeeded");
  });
});
