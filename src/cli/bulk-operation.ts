/**
 * A server-side bulk operation from the command line (`vms:bulk-update`, `vms:bulk-power`): send it, show its
 * progress from the operation's event stream, and report what the SERVER recorded — the summary and exit code
 * come from the operation's final state, never from what the CLI saw on the way:
 * - the operation failed (a database error, a drain that could not finish): exit 1, its error on stderr;
 * - some items failed: exit 3, each listed with its code and reason (one VM asked for: that VM's own exit code);
 * - Ctrl-C, or a second one: the CLI stops following and exits 130; the operation goes on on the server
 *   (`ciphervisor operation watch ID` reattaches).
 * Selections of more than 10,000 ids (the API's limit per request) go as several operations, one after another.
 */
import { randomUUID } from "node:crypto";
import type { ApiClient } from "./client/http.ts";
import { listAll } from "./client/lookup.ts";
import { follow, isFinal, summary } from "./client/operations.ts";
import { RemoteError } from "./client/remote-error.ts";
import type { ApiOperation, ApiSelector, ApiVm, OperationAnswer } from "./client/types.ts";
import { ExitCode } from "./exit-codes.ts";
import { watchInterrupt } from "./interrupt.ts";
import type { CliIo } from "./io.ts";
import { type BulkFailure, finishBulk } from "./output/bulk.ts";
import { json, type OutputMode } from "./output/format.ts";
import type { Progress } from "./output/progress.ts";

/** The API takes at most this many ids per selector. */
export const MAX_IDS = 10_000;

/** Selectors of at most MAX_IDS ids; other selectors as they are. */
export function chunks(selector: ApiSelector): ApiSelector[] {
  const ids = selector.ids;
  if (ids === undefined || ids.length <= MAX_IDS) return [selector];
  const out: ApiSelector[] = [];
  for (let i = 0; i < ids.length; i += MAX_IDS) out.push({ ids: ids.slice(i, i + MAX_IDS) });
  return out;
}

/** Names for item targets (VM ids): from the VMs already listed, else read from the API. */
async function namer(
  api: ApiClient,
  known: readonly ApiVm[] | undefined,
  ids: readonly string[],
): Promise<(id: string) => string> {
  const map = new Map((known ?? []).map((v) => [v.id, v.name]));
  const missing = ids.filter((id) => !map.has(id));
  if (missing.length > 50) {
    for (const v of await listAll<ApiVm>(api, "/v1/vms")) map.set(v.id, v.name);
  } else {
    for (const id of missing) {
      try {
        map.set(id, (await api.get<ApiVm>(`/v1/vms/${id}`)).name);
      } catch {
        // Deleted since (a bulk delete, say): its id is all there is to show.
      }
    }
  }
  return (id) => map.get(id) ?? id;
}

export interface BulkRequest {
  /** `/v1/vms:bulk-update`, `/v1/vms:bulk-power`, `/v1/hosts/ID/enter-maintenance`. */
  readonly path: string;
  /** The request bodies, sent one after another (one per chunk of a selector: `chunks`). */
  readonly bodies: readonly unknown[];
  /** The VMs, when the CLI listed them to resolve names (their names label the results). */
  readonly vms?: readonly ApiVm[];
  /** How many VMs were asked for (1 makes a failure read like any single-VM failure). */
  readonly targets: number;
  /** The progress bar's label, and the summary's verb ("changed", "started"). */
  readonly label: string;
  readonly verb: string;
}

interface Tally {
  ok: number;
  changed: number;
  unchanged: number;
  failed: BulkFailure[];
  operations: string[];
  /** The first operation that failed as a whole. */
  error?: { readonly operation: string; readonly code: string; readonly message: string };
  detached?: ApiOperation;
}

/** Sends the request(s), follows them and reports (see the module comment). */
export async function runBulk(
  io: CliIo,
  api: ApiClient,
  r: BulkRequest,
  mode: OutputMode,
  bar: Progress,
  quiet: boolean,
): Promise<void> {
  const interrupt = watchInterrupt(io);
  const t: Tally = { ok: 0, changed: 0, unchanged: 0, failed: [], operations: [] };
  const offset = { done: 0, ok: 0, failed: 0, total: 0 };
  bar.start(0, r.label);
  try {
    for (const body of r.bodies) {
      if (interrupt.stop.aborted) break;
      const answer = await api.post<OperationAnswer>(r.path, body, {
        headers: { "idempotency-key": `cli-${randomUUID()}` },
      });
      let op = answer.operation;
      t.operations.push(op.id);
      const show = (o: ApiOperation) =>
        bar.update(
          offset.done + o.progress.done,
          { ok: offset.ok + o.progress.ok, failed: offset.failed + o.progress.failed },
          offset.total + o.progress.total,
        );
      show(op);
      // The first Ctrl-C stops following: the operation is the server's now.
      if (!isFinal(op)) op = await follow(api, op.id, { onUpdate: show, signal: interrupt.stop });
      offset.done += op.progress.done;
      offset.ok += op.progress.ok;
      offset.failed += op.progress.failed;
      offset.total += op.progress.total;
      if (!isFinal(op)) {
        t.detached = op;
        break;
      }
      const sum = await summary(api, op.id);
      t.ok += sum.ok;
      t.changed += sum.changed;
      t.unchanged += sum.unchanged;
      if (sum.failures.length > 0) {
        const name = await namer(
          api,
          r.vms,
          sum.failures.map((i) => i.target),
        );
        for (const i of sum.failures)
          t.failed.push({ vm: name(i.target), code: i.code ?? "INTERNAL", message: i.reason ?? "" });
      }
      if (op.status === "failed" && op.error && !t.error) t.error = { operation: op.id, ...op.error };
    }
  } finally {
    bar.stop();
    interrupt.dispose();
  }
  if (t.detached && !quiet) {
    io.err(
      `ciphervisor: operation ${t.detached.id} goes on on the server; follow it with 'ciphervisor operation watch ${t.detached.id}'\n`,
    );
  }
  const result = {
    ok: t.ok,
    changed: t.changed,
    unchanged: t.unchanged,
    failed: t.failed,
    operation: t.operations[0] ?? null,
    ...(t.operations.length > 1 ? { operations: t.operations } : {}),
    ...(interrupt.requested || t.detached
      ? {
          interrupted: true,
          notStarted: t.detached ? t.detached.progress.total - t.detached.progress.done : 0,
        }
      : {}),
  };
  if (t.error) {
    // The operation as a whole failed: whatever its items say, the command did not do what was asked.
    if (mode === "json") io.out(json({ ...result, status: "failed", error: t.error }));
    else if (mode !== "name") finishBulk(io, mode, result, r.verb, Number.POSITIVE_INFINITY);
    throw new RemoteError(t.error.code, 0, `operation ${t.error.operation} failed: ${t.error.message}`, {
      base: "INTERNAL",
    });
  }
  finishBulk(io, mode, result, r.verb, r.targets);
  if (t.detached) io.exitCode = ExitCode.INTERRUPTED;
}
