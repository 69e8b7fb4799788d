/**
 * The operations engine: bounded concurrency, failures finished with their code, a store outage that hands the
 * operation back to be resumed instead, a shutdown that hands unfinished work back (lease released) for another
 * worker to resume, and watchers that see every change up to the end.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CiphervisorError } from "../../errors.ts";
import type { Inventory } from "../inventory/inventory.ts";
import { sqliteDatabase, TEST_ACTOR } from "../testing/control-fixture.ts";
import { OperationEngine } from "./engine.ts";
import { mapLimit } from "./limit.ts";
import { OUTAGE_BACKOFF_MS, outageBackoffMs } from "./outage.ts";
import type { Runner } from "./types.ts";

async function withInventory<T>(fn: (inv: Inventory) => Promise<T>): Promise<T> {
  const db = sqliteDatabase();
  const inv = await db.open();
  try {
    return await fn(inv);
  } finally {
    await inv.close();
    await db.dispose();
  }
}

const submit = (inv: Inventory, kind: string) =>
  inv.operations.create({ kind, actor: TEST_ACTOR, params: {} });

describe("operations engine", () => {
  it("runs at most `concurrency` operations at once and finishes each by its items or its error", () =>
    withInventory(async (inv) => {
      let inFlight = 0;
      let peak = 0;
      const slow: Runner = async (run) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 20));
        await inv.operations.recordItems(run.op.id, [{ target: "t", outcome: "ok" }]);
        inFlight--;
        return undefined;
      };
      const failing: Runner = async () => {
        throw new CiphervisorError("CONFLICT", "nope");
      };
      const crashing: Runner = async () => {
        throw new TypeError("undefined is not a function");
      };
      const engine = new OperationEngine({
        inventory: inv,
        runners: { slow, failing, crashing },
        worker: "w",
        concurrency: 3,
        pollMs: 10,
      });
      const ids = [];
      for (let i = 0; i < 9; i++) ids.push((await submit(inv, "slow")).operation.id);
      const bad = (await submit(inv, "failing")).operation.id;
      const crash = (await submit(inv, "crashing")).operation.id;
      const foreign = (await submit(inv, "not-mine")).operation.id;
      engine.start();
      const done = await Promise.all([...ids, bad, crash].map((id) => engine.waitFor(id, 30_000)));
      await engine.stop();
      assert.ok(peak <= 3 && peak >= 2, `peak ${peak}`);
      assert.ok(done.slice(0, 9).every((o) => o.status === "succeeded"));
      assert.deepEqual(done[9]?.error, { code: "CONFLICT", message: "nope" });
      assert.equal(done[10]?.status, "failed");
      assert.deepEqual(done[10]?.error?.code, "INTERNAL");
      assert.equal((await inv.operations.get(foreign))?.status, "pending", "kinds it cannot run stay queued");
    }));

  // Before the fix the outage's operation ended `failed` with STORE_UNREACHABLE: the "mark failed" write reached the
  // store (here it never left) that the run's write had missed, and nothing resumed it.
  it("hands an operation back to be resumed when the store went away under its run; other failures stay final", () =>
    withInventory(async (inv) => {
      const runs: string[] = [];
      const outage: Runner = async (run) => {
        runs.push(`outage#${run.op.attempts}`);
        const recorded = await run.recordedTargets();
        if (!recorded.has("a")) await inv.operations.recordItems(run.op.id, [{ target: "a", outcome: "ok" }]);
        if (run.op.attempts === 1)
          throw new CiphervisorError("STORE_UNREACHABLE", "the PostgreSQL inventory does not answer");
        await inv.operations.recordItems(run.op.id, [{ target: "b", outcome: "ok" }]);
        return undefined;
      };
      // A disk that fails under SQLite is a failure of the run, reported with its code (the I/O-fault suite).
      const disk: Runner = async (run) => {
        runs.push(`disk#${run.op.attempts}`);
        throw new CiphervisorError("IO", "the inventory database could not write", {
          details: { retryable: true },
        });
      };
      // The default 30 s lease: only a release with the short backoff lets the resumption come within the wait.
      const engine = new OperationEngine({
        inventory: inv,
        runners: { outage, disk },
        worker: "w",
        pollMs: 10,
      });
      const out = (await submit(inv, "outage")).operation.id;
      const io = (await submit(inv, "disk")).operation.id;
      engine.start();
      const [resumed, failed] = await Promise.all([engine.waitFor(out, 15_000), engine.waitFor(io, 15_000)]);
      await engine.stop();
      assert.deepEqual(
        [resumed.status, resumed.attempts, resumed.error, resumed.done, resumed.okCount],
        ["succeeded", 2, null, 2, 2],
        JSON.stringify(resumed),
      );
      assert.deepEqual([failed.status, failed.attempts, failed.error?.code], ["failed", 1, "IO"]);
      assert.deepEqual(runs.sort(), ["disk#1", "outage#1", "outage#2"]);
    }));

  it("shows an operation it handed back after a store outage as resuming because of the outage", () =>
    withInventory(async (inv) => {
      let handedBack!: () => void;
      const thrown = new Promise<void>((resolve) => {
        handedBack = resolve;
      });
      const outage: Runner = async (run) => {
        if (run.op.attempts === 1) {
          handedBack();
          throw new CiphervisorError("STORE_UNREACHABLE", "the PostgreSQL inventory does not answer");
        }
        return undefined;
      };
      const engine = new OperationEngine({ inventory: inv, runners: { outage }, worker: "w", pollMs: 10 });
      const id = (await submit(inv, "outage")).operation.id;
      engine.start();
      await thrown;
      while (engine.busy > 0) await new Promise((r) => setImmediate(r));
      const op = await inv.operations.get(id);
      assert.ok(op && op.status === "running" && op.claimedBy === "w", JSON.stringify(op));
      // The reason comes from what this node did, not from the clock: the same operation read with a lease still
      // far ahead (the backoff is 250 ms) is resuming because of the outage, not "holder-restarted".
      const ahead = { ...op, leaseUntil: new Date(Date.now() + 60_000).toISOString() };
      assert.equal(engine.resumption(ahead)?.reason, "store-outage");
      const done = await engine.waitFor(id, 15_000);
      await engine.stop();
      assert.equal(done.status, "succeeded");
      // Finished here: nothing of the outage is left to report.
      assert.equal(engine.resumption({ ...ahead, status: "running" })?.reason, "holder-restarted");
    }));

  it("backs off after store outages in a row: doubling, never beyond one lease", () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => outageBackoffMs(n, 30_000)),
      [1, 2, 4, 8].map((k) => k * OUTAGE_BACKOFF_MS),
    );
    assert.equal(outageBackoffMs(50, 30_000), 30_000);
    assert.equal(outageBackoffMs(1, 100), 100, "a lease shorter than the first backoff caps it");
    assert.equal(outageBackoffMs(0, 30_000), OUTAGE_BACKOFF_MS, "counts below one read as the first");
  });

  // Before the fix the stalled node started the operation again and the two runs never settled: a timeout, not a hang.
  it(
    "never claims an operation it still runs, even when its event loop stalled past the lease",
    { timeout: 20_000 },
    () =>
      withInventory(async (inv) => {
        let starts = 0;
        const stalling: Runner = async (run) => {
          starts++;
          // A synchronous stall (a large JSON.parse, a GC pause) longer than the lease, then more work.
          const until = Date.now() + 300;
          while (Date.now() < until) {}
          await new Promise((r) => setTimeout(r, 150));
          await inv.operations.recordItems(run.op.id, [{ target: "t", outcome: "ok" }]);
          return undefined;
        };
        const engine = new OperationEngine({
          inventory: inv,
          runners: { stalling },
          worker: "w",
          leaseMs: 60,
          pollMs: 5,
        });
        const id = (await submit(inv, "stalling")).operation.id;
        engine.start();
        const done = await engine.waitFor(id, 30_000);
        await engine.stop();
        assert.equal(done.status, "succeeded");
        assert.equal(starts, 1, "the stalled node did not start its own operation a second time");
        assert.equal(done.attempts, 1);
      }),
  );

  it("hands unfinished work back on shutdown, and another worker resumes it", () =>
    withInventory(async (inv) => {
      const seen: string[] = [];
      const patient: Runner = async (run) => {
        seen.push(`${run.worker}#${run.op.attempts}`);
        if (run.worker === "first") {
          await new Promise<void>((resolve) => run.signal.addEventListener("abort", () => resolve()));
          throw new CiphervisorError("INTERRUPTED", "stopped");
        }
        await inv.operations.recordItems(run.op.id, [{ target: "t", outcome: "ok" }]);
        return undefined;
      };
      const first = new OperationEngine({
        inventory: inv,
        runners: { patient },
        worker: "first",
        pollMs: 10,
      });
      const { operation } = await submit(inv, "patient");
      first.start();
      while ((await inv.operations.get(operation.id))?.status !== "running")
        await new Promise((r) => setTimeout(r, 5));
      await first.stop(50);
      const handedBack = await inv.operations.get(operation.id);
      assert.equal(handedBack?.status, "running");
      // Released: the lease ends now rather than a lease length (30 s) later.
      assert.ok(Date.parse(handedBack?.leaseUntil ?? "") < Date.now() + 1000, "its lease was released");
      const second = new OperationEngine({
        inventory: inv,
        runners: { patient },
        worker: "second",
        pollMs: 10,
      });
      second.start();
      const done = await second.waitFor(operation.id, 30_000);
      await second.stop();
      assert.deepEqual([done.status, done.claimedBy, done.attempts], ["succeeded", "second", 2]);
      assert.deepEqual(seen, ["first#1", "second#2"]);
    }));

  it("lets watchers follow progress to the final state, and waitFor return the latest state on timeout", () =>
    withInventory(async (inv) => {
      let release = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const stepper: Runner = async (run) => {
        for (let i = 0; i < 3; i++) {
          await inv.operations.recordItems(run.op.id, [{ target: `t${i}`, outcome: "ok" }]);
          run.progress();
        }
        await gate;
        return undefined;
      };
      const engine = new OperationEngine({ inventory: inv, runners: { stepper }, worker: "w", pollMs: 10 });
      const { operation } = await inv.operations.create({
        kind: "stepper",
        actor: TEST_ACTOR,
        params: {},
        total: 3,
      });
      engine.start();
      const early = await engine.waitFor(operation.id, 100);
      assert.notEqual(early.status, "succeeded");
      const snapshots: string[] = [];
      const watching = (async () => {
        for await (const op of engine.watch(operation.id)) snapshots.push(`${op.status}:${op.done}`);
      })();
      release();
      await watching;
      await engine.stop();
      assert.equal(snapshots.at(-1), "succeeded:3");
      await assert.rejects(engine.watch("op_missing").next(), /not found/);
    }));

  it("mapLimit keeps order, bounds concurrency and stops on the first failure", async () => {
    let active = 0;
    let peak = 0;
    const out = await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return x * 2;
    });
    assert.deepEqual(out, [2, 4, 6, 8, 10, 12, 14]);
    assert.equal(peak, 3);
    const started: number[] = [];
    await assert.rejects(
      mapLimit([1, 2, 3, 4, 5], 1, async (x) => {
        started.push(x);
        if (x === 2) throw new Error("boom");
      }),
      /boom/,
    );
    assert.deepEqual(started, [1, 2]);
  });
});
