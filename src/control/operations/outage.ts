/**
 * What the engine does when a run fails because the store went away (PostgreSQL stopped, restarted, cut off)
 * rather than because the operation failed. Such a failure says nothing about the operation: the failed
 * transaction was rolled back, every result recorded before it is kept, and runners are idempotent (a resumed run
 * skips what has a result). Marking the operation `failed` would turn a few seconds of outage into an operation
 * the caller must inspect and submit again — and it only happened when the "mark failed" write reached the store
 * that the run's writes had just missed. So the operation is handed back to be resumed, after a backoff, by this
 * node or any other; every other failure stays final.
 */
import { isCiphervisorError } from "../../errors.ts";

/** True for a failure that is the store's absence, not the operation's: STORE_UNREACHABLE. */
export function isStoreOutage(e: unknown): boolean {
  // Not IO: a full or failing disk under SQLite is reported, final, with its code (the I/O-fault suite's contract).
  return isCiphervisorError(e, "STORE_UNREACHABLE");
}

/** The first backoff after an outage; it doubles with each outage in a row. */
export const OUTAGE_BACKOFF_MS = 250;

/**
 * How long an operation rests after its `n`-th outage in a row (n ≥ 1) before a node may claim it again: doubling
 * from OUTAGE_BACKOFF_MS, at most one lease (what a crashed node would have cost anyway), so a store that comes and
 * goes is not hammered by claims that fail at once.
 *
 * @example
 * ```ts
 * outageBackoffMs(1, 30_000); // 250
 * outageBackoffMs(3, 30_000); // 1000
 * outageBackoffMs(9, 1_000); // 1000
 * ```
 */
export function outageBackoffMs(n: number, leaseMs: number): number {
  const k = Math.max(1, Math.floor(n));
  return Math.min(leaseMs, OUTAGE_BACKOFF_MS * 2 ** Math.min(k - 1, 20));
}
