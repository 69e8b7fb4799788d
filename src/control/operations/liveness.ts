/**
 * Whether a `running` operation is really running, or its node is gone and it waits to be taken over.
 *
 * A node that crashes leaves its claim behind: the operation stays `running` with no progress until the lease
 * expires (up to `leaseMs`, 30 s by default) and a node's claim loop takes it over. Shown as `running`, that looks
 * like a hang. So the API shows `resuming` — with the time of the takeover, the lease's expiry — as soon as one of
 * these says the holder is gone:
 *  - the lease already lapsed (any node may claim it at its next poll);
 *  - the holder's worker name is `host/pid` of this machine and that process does not exist (the default worker
 *    name, so a restarted single node knows at once);
 *  - the holder is this node's own worker name, but this node does not run it: either this node handed it back
 *    after a store outage and its backoff runs (`outage.ts`; reason `store-outage`), or the node restarted with
 *    `--worker`;
 *  - the holder is half a renewal interval late with its renewal (it renews every `leaseMs / 3`): a node on another
 *    machine, or a worker name that is not `host/pid`.
 * Stored state is never changed by this: it is a reading, and the takeover still waits for the lease.
 */
import type { Operation } from "../inventory/types.ts";

/** Why a running operation is shown as resuming. */
export type ResumeReason =
  | "lease-expired"
  | "holder-exited"
  | "holder-restarted"
  | "renewal-missed"
  | "store-outage";

export interface Resumption {
  /** When a node's claim loop can take it over: the lease's expiry (ISO 8601). */
  readonly takeoverAt: string;
  readonly reason: ResumeReason;
}

/** What the judge needs to know about the world, injected so the rules are testable without processes. */
export interface LivenessFacts {
  readonly now: number;
  /** This node's worker name. */
  readonly worker: string;
  /** True when this node runs the operation now. */
  runsHere(id: string): boolean;
  /** True when this node handed the operation back after a store outage (`outage.ts`) and has not run it since. */
  restsAfterOutage(id: string): boolean;
  /** Whether the worker named `worker` is a live process: true, false, or undefined when it cannot be told. */
  holderAlive(worker: string): boolean | undefined;
  /** The lease length every node uses (they renew every third of it). */
  readonly leaseMs: number;
}

/** How late a renewal may be, in renewal intervals (a slow event loop, a GC pause), before its holder counts as gone. */
const RENEWAL_SLACK = 0.5;

/**
 * The resumption of `op`, or undefined when it is not running or its holder looks alive.
 *
 * @example
 * ```ts
 * const r = resumption(op, facts); // { takeoverAt: "2026-…Z", reason: "holder-exited" }
 * ```
 */
export function resumption(op: Operation, facts: LivenessFacts): Resumption | undefined {
  if (op.status !== "running" || op.claimedBy === null || op.leaseUntil === null) return undefined;
  const until = Date.parse(op.leaseUntil);
  const at = { takeoverAt: op.leaseUntil };
  if (until <= facts.now) return { ...at, reason: "lease-expired" };
  if (op.claimedBy === facts.worker) {
    if (facts.runsHere(op.id)) return undefined;
    return { ...at, reason: facts.restsAfterOutage(op.id) ? "store-outage" : "holder-restarted" };
  }
  if (facts.holderAlive(op.claimedBy) === false) return { ...at, reason: "holder-exited" };
  // The last renewal set the lease to renewal time + leaseMs.
  const lastRenewal = until - facts.leaseMs;
  if (facts.now - lastRenewal > (1 + RENEWAL_SLACK) * (facts.leaseMs / 3))
    return { ...at, reason: "renewal-missed" };
  return undefined;
}

/**
 * Whether the default worker name `host/pid` names a live process: known only on `host` itself. A pid reused by
 * another process reads as alive, which only delays the `resuming` reading to the renewals rule.
 */
export function localHolderAlive(hostname: string, worker: string): boolean | undefined {
  const m = /^(.+)\/(\d+)$/.exec(worker);
  if (!m || m[1] !== hostname) return undefined;
  try {
    process.kill(Number(m[2]), 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
