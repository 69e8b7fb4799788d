/**
 * `ciphervisor operation list|get|watch`: the control plane's tasks (vCenter's "Recent Tasks"). `watch` follows
 * one to its end with a progress bar and exits like the operation ended: 0 succeeded, 3 partly failed, the failure's
 * code when it failed, 130 when cancelled or interrupted.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseChoice, parseIntFlag } from "../args.ts";
import { listAll } from "../client/lookup.ts";
import { allItems, follow, isFinal } from "../client/operations.ts";
import { baseCode } from "../client/remote-error.ts";
import type { ApiItem, ApiOperation } from "../client/types.ts";
import { ExitCode, exitCodeFor } from "../exit-codes.ts";
import { watchInterrupt } from "../interrupt.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor, progressFor } from "../options.ts";
import { json } from "../output/format.ts";
import { fields, table } from "../output/table.ts";

const STATUSES = ["pending", "running", "succeeded", "partially-failed", "failed", "cancelled"] as const;
const ID = /^op_[0-9a-z]{26}$/;

function opTable(ops: readonly ApiOperation[]): string {
  return table(
    [
      { header: "ID", value: (o: ApiOperation) => o.id },
      { header: "KIND", value: (o: ApiOperation) => o.kind },
      { header: "STATUS", value: (o: ApiOperation) => o.status },
      { header: "DONE", value: (o: ApiOperation) => `${o.progress.done}/${o.progress.total}`, right: true },
      { header: "FAILED", value: (o: ApiOperation) => o.progress.failed, right: true },
      { header: "ACTOR", value: (o: ApiOperation) => o.actor.name },
      { header: "CREATED", value: (o: ApiOperation) => o.createdAt },
    ],
    ops,
  );
}

function itemTable(items: readonly ApiItem[]): string {
  return table(
    [
      { header: "TARGET", value: (i: ApiItem) => i.target },
      { header: "OUTCOME", value: (i: ApiItem) => i.outcome },
      { header: "CODE", value: (i: ApiItem) => i.code ?? "" },
      { header: "REASON", value: (i: ApiItem) => i.reason ?? "" },
    ],
    items,
  );
}

function checkId(id: string): string {
  if (!ID.test(id)) throw new CiphervisorError("INVALID_INPUT", `'${id}' is not an operation id (op_…)`);
  return id;
}

/** The exit code an operation's end maps to. */
export function operationExitCode(op: ApiOperation): number {
  switch (op.status) {
    case "succeeded":
      return ExitCode.OK;
    case "partially-failed":
      return ExitCode.PARTIAL;
    case "cancelled":
      return ExitCode.INTERRUPTED;
    case "failed":
      return op.progress.total > 1 && op.progress.failed > 0
        ? ExitCode.PARTIAL
        : exitCodeFor(baseCode(op.error?.code ?? "INTERNAL", 409));
    default:
      return ExitCode.OK;
  }
}

/**
 * The status as a person reads it: a resuming operation says when it will be taken over, so a wait after a crash
 * does not look like a hang.
 */
export function shownStatus(op: ApiOperation, now = Date.now()): string {
  if (op.status !== "resuming" || op.takeoverAt === undefined) return op.status;
  const s = Math.max(0, Math.ceil((Date.parse(op.takeoverAt) - now) / 1000));
  const when = `${op.takeoverAt}${s > 0 ? `, in ${s} s` : ", now"}`;
  // A store outage is not a lost node: the same node tries again after a backoff.
  if (op.resumeReason === "store-outage")
    return `resuming (the store went away under it; retried at ${when})`;
  return `resuming (its node is gone; taken over at ${when})`;
}

function summary(op: ApiOperation): string {
  const p = op.progress;
  return `operation ${op.id} (${op.kind}) ${op.status}: ${p.done}/${p.total} done, ${p.ok} ok, ${p.failed} failed${op.error ? `; ${op.error.code}: ${op.error.message}` : ""}\n`;
}

export function registerOperation(program: Command, io: CliIo): void {
  const operation = program.command("operation").description("operations (tasks): list, get, watch");

  apiCommand(
    operation
      .command("list")
      .description("the latest operations (oldest of them first)")
      .option("--status <status>", STATUSES.join("|"))
      .option("--kind <kind>", "e.g. vm.bulk-update, host.enter-maintenance")
      .option("--limit <n>", "at most this many", "100"),
    { name: true },
  ).action(async (flags: CommonFlags & { status?: string; kind?: string; limit: string }) => {
    const mode = modeFor(flags, true);
    const limit = parseIntFlag(flags.limit, "--limit", 1, 5000);
    const status = flags.status === undefined ? undefined : parseChoice(flags.status, "--status", STATUSES);
    // The API lists oldest first; people want the latest, so read to the end and keep the last --limit.
    const all = await listAll<ApiOperation>(apiFor(io, flags), "/v1/operations", {
      status,
      kind: flags.kind,
    });
    const page = { items: all.slice(-limit) };
    if (mode === "name") io.out(page.items.map((o) => `${o.id}\n`).join(""));
    else if (mode === "json") io.out(json(page.items));
    else io.out(opTable(page.items));
  });

  apiCommand(
    operation
      .command("get")
      .argument("<id>", "operation id")
      .description("show an operation and its per-item results")
      .option("--failed", "only the failed items"),
  ).action(async (id: string, flags: CommonFlags & { failed?: boolean }) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const op = await api.get<ApiOperation>(`/v1/operations/${checkId(id)}`);
    const items = await allItems(api, op.id, flags.failed ? "failed" : undefined);
    if (mode === "json") {
      io.out(json({ operation: op, items }));
      return;
    }
    io.out(
      fields([
        ["id", op.id],
        ["kind", op.kind],
        ["status", shownStatus(op)],
        [
          "progress",
          `${op.progress.done}/${op.progress.total} (${op.progress.ok} ok, ${op.progress.failed} failed)`,
        ],
        ["actor", op.actor.name],
        ["created", op.createdAt],
        ["finished", op.finishedAt ?? "-"],
        ["error", op.error ? `${op.error.code}: ${op.error.message}` : "-"],
      ]),
    );
    if (items.length > 0) io.out(itemTable(items));
  });

  apiCommand(
    operation.command("watch").argument("<id>", "operation id").description("follow an operation to its end"),
  ).action(async (id: string, flags: CommonFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    let op = await api.get<ApiOperation>(`/v1/operations/${checkId(id)}`);
    const interrupt = watchInterrupt(io);
    const bar = await progressFor(io, flags);
    let resumingSaid = false;
    bar.start(op.progress.total, op.kind);
    try {
      if (!isFinal(op)) {
        op = await follow(api, op.id, {
          signal: interrupt.stop,
          onUpdate: (o) => {
            // Once per takeover: the bar alone would sit still until the lease expires.
            if (o.status === "resuming" && !resumingSaid && mode !== "json") {
              resumingSaid = true;
              io.err(`operation ${o.id} ${shownStatus(o)}\n`);
            }
            bar.update(o.progress.done, { ok: o.progress.ok, failed: o.progress.failed }, o.progress.total);
          },
        });
      }
    } finally {
      bar.stop();
      interrupt.dispose();
    }
    io.out(mode === "json" ? json(op) : summary(op));
    const code = interrupt.requested && !isFinal(op) ? ExitCode.INTERRUPTED : operationExitCode(op);
    if (code !== ExitCode.OK) io.exitCode = code;
  });
}
