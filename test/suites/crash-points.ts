/**
 * Where the crash-consistency suites kill a node: a seeded schedule of kill points spread over the whole operation,
 * and the loop that kills a node at one of them by watching the store behind its back.
 *
 * The points are watched in the store (the SQLite file read-only, or the PostgreSQL schema over its own
 * connection), not through the API: a restarted node takes an operation over while it is still starting — its
 * claim loop runs before the API is built — and has done several 1,000-VM batches by the time it listens. Only the
 * store shows the claim and each committed batch as they happen.
 *
 * Two kinds of point, seeded (`rng`), printed, replayed by the seed:
 *  - `startup`: `afterMs` after the node was spawned — while it opens the store, restores its emulated hosts
 *    (power-off records for the VMs that were running) or waits for the dead node's lease — or, when it claims the
 *    operation sooner, `jitterMs` after the claim. A kill before the claim leaves the operation as the last node
 *    left it ("before start").
 *  - `progress`: once this node holds the operation and the stored progress has reached `atDone`, `jitterMs`
 *    later — inside the batch after it. The thresholds are sorted and spread evenly at random over
 *    [0, total − step], so the kills walk through the operation from its first batch to its last; a threshold the
 *    progress already passed kills right after the takeover (while the resumed run reads what is done).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { FINAL, killChild, sleep } from "./crash-support.ts";

export type KillPoint =
  | { readonly kind: "startup"; readonly afterMs: number; readonly jitterMs: number }
  | { readonly kind: "progress"; readonly atDone: number; readonly jitterMs: number };

export interface ScheduleOptions {
  /** Points, the first of them on the node that accepted the operation (always `progress`). */
  readonly count: number;
  /** Items of the operation. */
  readonly total: number;
  /** Items committed at once (a bulk update's batch): the last threshold leaves at least one step to do. */
  readonly step: number;
  /** Share of points (after the first) that are `startup` points. */
  readonly startupShare: number;
  /** `startup` delays are drawn from [0, startupMs). */
  readonly startupMs: number;
  /** Jitters are drawn from [0, jitterMs). */
  readonly jitterMs: number;
}

/** The seeded kill points of one run, in order. */
export function killSchedule(random: () => number, o: ScheduleOptions): KillPoint[] {
  const kinds = Array.from({ length: o.count }, (_, i) =>
    i > 0 && random() < o.startupShare ? "startup" : "progress",
  );
  const span = Math.max(0, o.total - o.step);
  const thresholds = kinds
    .filter((k) => k === "progress")
    .map(() => Math.floor(random() * (span + 1)))
    .sort((a, b) => a - b);
  return kinds.map((kind) => {
    const jitterMs = Math.floor(random() * o.jitterMs);
    return kind === "startup"
      ? { kind, afterMs: Math.floor(random() * o.startupMs), jitterMs }
      : { kind, atDone: thresholds.shift() ?? 0, jitterMs };
  });
}

export function describePoint(p: KillPoint): string {
  return p.kind === "startup"
    ? `startup +${p.afterMs} ms (claim +${p.jitterMs} ms)`
    : `at ${p.atDone} done +${p.jitterMs} ms`;
}

/** The operation's row as the store holds it. */
export interface OpRow {
  readonly status: string;
  readonly attempts: number;
  readonly done: number;
  readonly total: number;
  readonly claimedBy: string | null;
}

/** What happened at one point: when the node claimed, what the store showed last before the kill. */
export interface KillOutcome {
  /** The last row seen unfinished before the kill (the operation may have moved on in the jitter). */
  readonly seen: OpRow | undefined;
  /** Milliseconds from the spawn (or the submission) to this node's claim, when it claimed before the kill. */
  readonly claimMs: number | undefined;
  /** Milliseconds from the spawn (or the submission) to the kill. */
  readonly killMs: number;
}

const POLL_MS = 5;

/**
 * Kills `child` (worker name `worker`, started at `since`) at `point`, polling `probe` for the operation's row.
 * Fails after `waitMs`, or when the node exits by itself, with `where` and its stderr.
 */
export async function killAtPoint(
  point: KillPoint,
  node: { readonly child: ChildProcess; readonly worker: string; stderr(): string },
  since: number,
  probe: () => Promise<OpRow> | OpRow,
  waitMs: number,
  where: () => string,
): Promise<KillOutcome> {
  let claimAt: number | undefined;
  let seen: OpRow | undefined;
  for (;;) {
    const exited = node.child.exitCode !== null || node.child.signalCode !== null;
    assert.ok(!exited, `the node exited by itself (${node.child.exitCode}) ${where()}: ${node.stderr()}`);
    const row = await probe();
    const final = FINAL.includes(row.status);
    if (!final) seen = row;
    const mine = row.status === "running" && row.claimedBy === node.worker;
    if (mine && claimAt === undefined) claimAt = Date.now();
    const elapsed = Date.now() - since;
    const due =
      final ||
      (point.kind === "startup" ? mine || elapsed >= point.afterMs : mine && row.done >= point.atDone);
    if (due) {
      if (mine && !final) await sleep(point.jitterMs);
      const killMs = Date.now() - since;
      await killChild(node.child);
      return { seen, claimMs: claimAt === undefined ? undefined : claimAt - since, killMs };
    }
    assert.ok(
      elapsed < waitMs,
      `kill point ${describePoint(point)} not reached in ${waitMs} ms; last ${JSON.stringify(row)} ${where()}: ${node.stderr()}`,
    );
    await sleep(POLL_MS);
  }
}

/** The median of `xs` (0 for none): per-cycle costs printed and recorded by the suites. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

/** What the store held right after a kill: the operation's row and its stored results (target → outcome, time). */
export interface Stored extends OpRow {
  readonly items: ReadonlyMap<string, { outcome: string; recordedAt: string }>;
}

/** Before the first kill: nothing claimed, nothing stored. */
export const NOTHING_YET: Stored = {
  status: "pending",
  attempts: 0,
  done: 0,
  total: 0,
  claimedBy: null,
  items: new Map(),
};

/**
 * One kill (of the node named `worker`), checked against the one before: nothing stored earlier lost or
 * rewritten, one claim per node that claimed, and finished only when the kill was decided (`seen`) with at most
 * one `step` of the `total` left.
 */
export function checkKill(
  prev: Stored,
  crash: Stored,
  worker: string,
  seen: OpRow | undefined,
  total: number,
  step: number,
  where: string,
): void {
  assert.ok(crash.done >= prev.done, `done went back from ${prev.done} to ${crash.done} ${where}`);
  for (const [target, was] of prev.items) {
    const now = crash.items.get(target);
    // Not assert.ok(cond, message): the message would be built for each of 10,000 results at every kill.
    if (now === undefined || now.outcome !== was.outcome || now.recordedAt !== was.recordedAt)
      assert.fail(
        `result of ${target} stored before this kill ${JSON.stringify(was)} is now ${JSON.stringify(now)} ${where}`,
      );
  }
  if (crash.claimedBy === worker) {
    assert.equal(crash.attempts, prev.attempts + 1, `the killed node claimed once ${where}`);
  } else {
    assert.equal(crash.attempts, prev.attempts, `claimed by nobody new ${where}`);
    assert.equal(crash.claimedBy, prev.claimedBy, `holder unchanged ${where}`);
  }
  if (FINAL.includes(crash.status)) {
    assert.ok(
      seen !== undefined && seen.done >= total - step,
      `finished before its kill point (last seen ${JSON.stringify(seen)}) ${where}`,
    );
  }
}
