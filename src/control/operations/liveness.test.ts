/**
 * The rules that read a running operation as `resuming`: each on its own, and the cases that must stay `running`
 * (this node runs it; a live holder that renews on time). The process test is serve-crash-resume.test.ts.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { describe, it } from "node:test";
import type { Operation } from "../inventory/types.ts";
import { type LivenessFacts, localHolderAlive, resumption } from "./liveness.ts";

const NOW = Date.parse("2026-01-01T00:00:30.000Z");
const LEASE = 30_000;

function running(claimedBy: string, leaseUntilMs: number): Operation {
  return {
    id: "op_1",
    kind: "vm.bulk-power",
    status: "running",
    idempotencyKey: null,
    actor: { id: null, name: "t" },
    params: {},
    total: 10,
    done: 3,
    okCount: 3,
    failedCount: 0,
    error: null,
    claimedBy,
    leaseUntil: new Date(leaseUntilMs).toISOString(),
    attempts: 1,
    createdAt: "2026-01-01T00:00:00.000Z",
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: null,
    updatedAt: "2026-01-01T00:00:20.000Z",
  };
}

function facts(over: Partial<LivenessFacts> = {}): LivenessFacts {
  return {
    now: NOW,
    worker: "me/1",
    runsHere: () => false,
    restsAfterOutage: () => false,
    holderAlive: () => undefined,
    leaseMs: LEASE,
    ...over,
  };
}

describe("an operation's resumption", () => {
  it("a lapsed lease: resuming now, at the lease's expiry", () => {
    const op = running("other/2", NOW - 1);
    assert.deepEqual(resumption(op, facts()), { takeoverAt: op.leaseUntil, reason: "lease-expired" });
  });

  it("a holder process that no longer exists: resuming at once, taken over when the lease expires", () => {
    const op = running("this-host/2", NOW + 25_000);
    const r = resumption(op, facts({ holderAlive: (w) => (w === "this-host/2" ? false : undefined) }));
    assert.deepEqual(r, { takeoverAt: op.leaseUntil, reason: "holder-exited" });
  });

  it("this node's own worker name, not running here: a restart with --worker", () => {
    assert.equal(resumption(running("me/1", NOW + 25_000), facts())?.reason, "holder-restarted");
    assert.equal(resumption(running("me/1", NOW + 25_000), facts({ runsHere: () => true })), undefined);
  });

  it("this node's own worker name, handed back after a store outage: resuming with the outage as the reason", () => {
    const op = running("me/1", NOW + 1_000);
    const rests = facts({ restsAfterOutage: (id) => id === op.id });
    assert.deepEqual(resumption(op, rests), { takeoverAt: op.leaseUntil, reason: "store-outage" });
    // Running here again after its backoff: running; once the backoff's lease lapsed: any node may claim it.
    assert.equal(resumption(op, { ...rests, runsHere: () => true }), undefined);
    assert.equal(resumption(running("me/1", NOW - 1), rests)?.reason, "lease-expired");
  });

  it("a holder half a renewal interval late: resuming; on time: running", () => {
    // Renewed 5 s ago (lease until +25 s): on time. Renewed 16 s ago (until +14 s): late by more than 5 s.
    assert.equal(resumption(running("far/away", NOW + 25_000), facts()), undefined);
    assert.equal(resumption(running("far/away", NOW + 14_000), facts())?.reason, "renewal-missed");
    assert.equal(
      resumption(running("far/away", NOW + 14_000), facts({ holderAlive: () => true }))?.reason,
      "renewal-missed",
    );
  });

  it("only running operations resume", () => {
    for (const status of ["pending", "succeeded", "failed", "cancelled"] as const) {
      assert.equal(resumption({ ...running("x/1", NOW - 1), status }, facts()), undefined);
    }
  });

  it("the default worker name host/pid is checked on its own host only", () => {
    assert.equal(localHolderAlive(hostname(), `${hostname()}/${process.pid}`), true);
    // Pid 2^22 + 1 is above Linux's pid_max limit: no such process.
    assert.equal(localHolderAlive(hostname(), `${hostname()}/4194305`), false);
    assert.equal(localHolderAlive(hostname(), "elsewhere/1"), undefined);
    assert.equal(localHolderAlive(hostname(), "custom-worker"), undefined);
  });
});
