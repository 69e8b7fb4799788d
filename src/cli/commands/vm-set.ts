/**
 * `vm set … --sev-es on|off | --sev on|off | --policy P [--restart]`: turn SEV or SEV-ES on or off, or change the
 * guest policy, for one VM or ten thousand (DESIGN.md, "Turn SEV-ES on for 10,000 VMs").
 *
 * - The change itself is ONE `vms:bulk-update` operation: the server checks each VM (power state, host CPU
 *   generation and ES pool, guest OS, firmware, hardware version, the caller's permission for that VM's change)
 *   and changes it completely, with its audit record, or leaves it untouched with a failed result and a reason.
 * - Like PowerCLI, the change applies to powered-off VMs. `--restart` also takes running VMs: each is powered off,
 *   changed and started again, at most `--parallel` at a time, and only as many per host as its pool has free key
 *   slots — the server's plan (`vms:bulk-update-plan`) admits them, so a VM that could not come back is never
 *   powered off.
 * - `--what-if` prints that plan — per VM what would change or be refused and why, and the capacity impact per host
 *   and pool — and changes nothing. It is the real runner's verdict (run in a rolled-back transaction), so the real
 *   run then does exactly what it said, unless the inventory changes in between.
 * - Turning protection off (`--sev-es off`, `--sev off`) and `--all` need `--yes`; the server also requires the
 *   `vm.security.downgrade` permission for each VM whose protection is weakened.
 * - Ctrl-C: the operation already sent finishes on the server (each VM whole or not at all); restarts in flight
 *   finish (the VM is started again); nothing new starts; a summary is printed; exit 130.
 */
import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseIntFlag, parseOnOff, parsePolicy } from "../args.ts";
import type { ApiClient } from "../client/http.ts";
import { listAll } from "../client/lookup.ts";
import { allItems, follow, isFinal, type OperationSummary, summary } from "../client/operations.ts";
import type {
  ApiBulkSet,
  ApiOperation,
  ApiSelector,
  ApiVm,
  BulkPlan,
  OperationAnswer,
  SecurityMode,
} from "../client/types.ts";
import { type Interrupt, watchInterrupt } from "../interrupt.ts";
import type { CliIo } from "../io.ts";
import {
  apiCommand,
  apiFor,
  type MutatingFlags,
  modeFor,
  mutatingOptions,
  progressFor,
  type TargetFlags,
  targetOptions,
} from "../options.ts";
import { type BulkFailure, failureOf, finishBulk } from "../output/bulk.ts";
import { json, type OutputMode } from "../output/format.ts";
import type { Progress } from "../output/progress.ts";
import { hex } from "../output/vm-table.ts";
import { printWhatIf, type WhatIfItem } from "../output/what-if.ts";
import { runOperation } from "../run-operation.ts";
import { resolveTargets, type Targets, targetSpec } from "../selectors.ts";
import { requireYes } from "./vm-each.ts";

/** The API takes at most this many ids per selector. */
const MAX_IDS = 10_000;

type SetFlags = MutatingFlags &
  TargetFlags & { sevEs?: string; sev?: string; policy?: string; restart?: boolean; parallel: string };

/** What `--sev-es`, `--sev` and `--policy` ask for. */
export function bulkSetOf(flags: { sevEs?: string; sev?: string; policy?: string }): ApiBulkSet {
  const es = flags.sevEs === undefined ? undefined : parseOnOff(flags.sevEs, "--sev-es");
  const sev = flags.sev === undefined ? undefined : parseOnOff(flags.sev, "--sev");
  if (es === true && sev === false)
    throw new CiphervisorError("USAGE", "SEV-ES builds on SEV: --sev-es on contradicts --sev off");
  let securityMode: SecurityMode | undefined;
  if (es === true) securityMode = "sev-es";
  else if (sev === true) securityMode = "sev";
  else if (es === false || sev === false) securityMode = "none";
  const policy = flags.policy === undefined ? undefined : parsePolicy(flags.policy);
  if (securityMode === undefined && policy === undefined) {
    throw new CiphervisorError("USAGE", "say what to set: --sev-es on|off, --sev on|off and/or --policy P");
  }
  return {
    ...(securityMode === undefined ? {} : { securityMode }),
    ...(policy === undefined ? {} : { policy }),
  };
}

function describeSet(set: ApiBulkSet): string {
  const parts: string[] = [];
  if (set.securityMode !== undefined)
    parts.push(set.securityMode === "none" ? "protection off" : set.securityMode);
  if (set.policy !== undefined) parts.push(`policy ${hex(set.policy)}`);
  return parts.join(", ");
}

/** Selectors of at most MAX_IDS ids (the API's limit); other selectors as they are. */
function chunks(selector: ApiSelector): ApiSelector[] {
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
        // Deleted since: its id is all there is to show.
      }
    }
  }
  return (id) => map.get(id) ?? id;
}

interface Tally {
  ok: number;
  changed: number;
  unchanged: number;
  failed: BulkFailure[];
  operations: string[];
}

/** Adds a finished operation's outcome to the tally. */
async function tallySummary(
  api: ApiClient,
  t: Tally,
  sum: OperationSummary,
  known: readonly ApiVm[] | undefined,
): Promise<void> {
  t.ok += sum.ok;
  t.changed += sum.changed;
  t.unchanged += sum.unchanged;
  if (sum.failures.length === 0) return;
  const name = await namer(
    api,
    known,
    sum.failures.map((i) => i.target),
  );
  for (const i of sum.failures)
    t.failed.push({ vm: name(i.target), code: i.code ?? "INTERNAL", message: i.reason ?? "" });
}

/**
 * Runs one bulk update to its end with progress. The first Ctrl-C cancels it if it has not started; once it runs,
 * the server finishes it (every VM whole or not at all). A second Ctrl-C stops waiting.
 */
async function bulkUpdate(
  api: ApiClient,
  selector: ApiSelector,
  set: ApiBulkSet,
  bar: Progress,
  interrupt: Interrupt,
  offset: { done: number; ok: number; failed: number; total: number },
): Promise<ApiOperation> {
  const answer = await api.post<OperationAnswer>(
    "/v1/vms:bulk-update",
    { selector, set },
    { headers: { "idempotency-key": `cli-${randomUUID()}` }, signal: interrupt.abort },
  );
  let op = answer.operation;
  const show = (o: ApiOperation) =>
    bar.update(
      offset.done + o.progress.done,
      { ok: offset.ok + o.progress.ok, failed: offset.failed + o.progress.failed },
      offset.total + o.progress.total,
    );
  show(op);
  const onStop = () => {
    // Not started yet: take it back. Running: it finishes on the server; we keep following it.
    api.post(`/v1/operations/${op.id}/cancel`, {}).catch(() => undefined);
  };
  interrupt.stop.addEventListener("abort", onStop, { once: true });
  try {
    if (!isFinal(op)) op = await follow(api, op.id, { onUpdate: show, signal: interrupt.abort });
  } finally {
    interrupt.stop.removeEventListener("abort", onStop);
  }
  return op;
}

/** The plan as a what-if report. */
function planReport(
  plan: BulkPlan,
  set: ApiBulkSet,
  command: string,
): { command: string; items: WhatIfItem[]; capacity: BulkPlan["capacity"] } {
  const action = (i: BulkPlan["items"][number]) => {
    const a = i.after;
    const to = a
      ? `${a.securityMode}${a.securityMode === "none" ? "" : ` ${hex(a.policy)}`}`
      : describeSet(set);
    return i.restart ? `restart → ${to}` : to;
  };
  return {
    command,
    items: plan.items.map((i) => ({
      vm: i.vm,
      outcome: i.outcome,
      host: i.host,
      ...(i.outcome === "change" ? { action: action(i) } : {}),
      ...(i.code === undefined ? {} : { code: i.code }),
      ...(i.reason === undefined ? {} : { reason: i.reason }),
    })),
    capacity: plan.capacity.filter((c) => c.vms !== c.vmsAfter || c.used !== c.usedAfter),
  };
}

function plan(api: ApiClient, selector: ApiSelector, set: ApiBulkSet, restart: boolean): Promise<BulkPlan> {
  return api.post<BulkPlan>("/v1/vms:bulk-update-plan", {
    selector,
    set,
    ...(restart ? { restart: true } : {}),
  });
}

/** Merges plans of several id chunks. */
async function planAll(
  api: ApiClient,
  selector: ApiSelector,
  set: ApiBulkSet,
  restart: boolean,
): Promise<BulkPlan> {
  const parts = await Promise.all(chunks(selector).map((s) => plan(api, s, set, restart)));
  if (parts.length === 1 && parts[0]) return parts[0];
  return {
    total: parts.reduce((n, p) => n + p.total, 0),
    change: parts.reduce((n, p) => n + p.change, 0),
    unchanged: parts.reduce((n, p) => n + p.unchanged, 0),
    refused: parts.reduce((n, p) => n + p.refused, 0),
    restart: parts.reduce((n, p) => n + p.restart, 0),
    items: parts.flatMap((p) => p.items),
    capacity: parts[0]?.capacity ?? [],
  };
}

/** Power off, change, power on: one running VM of a `--restart`. Failures after the power-off still restart it. */
async function restartOne(
  api: ApiClient,
  v: BulkPlan["items"][number],
  set: ApiBulkSet,
  t: Tally,
  signal: AbortSignal,
): Promise<void> {
  try {
    t.operations.push((await runOperation(api, `/v1/vms/${v.vmId}/power-off`, { signal })).operation.id);
  } catch (e) {
    t.failed.push(failureOf(v.vm, e));
    return;
  }
  let changeFailure: BulkFailure | undefined;
  try {
    const answer = await api.post<OperationAnswer>(
      "/v1/vms:bulk-update",
      { selector: { ids: [v.vmId] }, set },
      { headers: { "idempotency-key": `cli-${randomUUID()}` }, signal },
    );
    const op = isFinal(answer.operation)
      ? answer.operation
      : await follow(api, answer.operation.id, { signal });
    t.operations.push(op.id);
    const item = (await allItems(api, op.id))[0];
    if (item?.outcome !== "ok") {
      changeFailure = {
        vm: v.vm,
        code: item?.code ?? op.error?.code ?? "INTERNAL",
        message: item?.reason ?? op.error?.message ?? "not changed",
      };
    }
  } catch (e) {
    changeFailure = failureOf(v.vm, e);
  }
  try {
    // Started again whether or not the change went through: --restart never leaves a VM off.
    t.operations.push((await runOperation(api, `/v1/vms/${v.vmId}/power-on`, { signal })).operation.id);
  } catch (e) {
    const f = failureOf(v.vm, e);
    t.failed.push(changeFailure ?? { ...f, message: `changed, but it did not start again: ${f.message}` });
    return;
  }
  if (changeFailure)
    t.failed.push({ ...changeFailure, message: `${changeFailure.message} (restarted unchanged)` });
  else {
    t.ok++;
    t.changed++;
  }
}

async function realRun(
  io: CliIo,
  api: ApiClient,
  targets: Targets,
  set: ApiBulkSet,
  flags: SetFlags,
  mode: OutputMode,
): Promise<void> {
  const restart = flags.restart === true;
  const parallel = parseIntFlag(flags.parallel, "--parallel", 1, 64);
  const interrupt = watchInterrupt(
    io,
    restart ? "VM changes and restarts" : "bulk update",
    flags.quiet === true || mode === "json",
  );
  const bar = progressFor(io, flags);
  const t: Tally = { ok: 0, changed: 0, unchanged: 0, failed: [], operations: [] };
  let notStarted = 0;
  try {
    // With --restart the server's plan decides which running VMs are restarted (within their hosts' free slots);
    // the others are sent as they are and the server records each one's result.
    let direct: ApiSelector[] = chunks(targets.selector);
    let restarts: BulkPlan["items"] = [];
    let known = targets.vms;
    if (restart) {
      const p = await planAll(api, targets.selector, set, true);
      restarts = p.items.filter((i) => i.restart);
      for (const i of p.items) {
        if (i.powerState === "running" && !i.restart)
          t.failed.push({ vm: i.vm, code: i.code ?? "INTERNAL", message: i.reason ?? "" });
      }
      const rest = p.items.filter((i) => i.powerState !== "running").map((i) => i.vmId);
      direct = rest.length === 0 ? [] : chunks({ ids: rest });
      known = p.items.map((i) => ({ id: i.vmId, name: i.vm }) as ApiVm);
    }
    bar.start(0, "vm set");
    const offset = { done: 0, ok: 0, failed: 0, total: restarts.length };
    for (const selector of direct) {
      if (interrupt.stop.aborted) break;
      const op = await bulkUpdate(api, selector, set, bar, interrupt, offset);
      t.operations.push(op.id);
      if (isFinal(op)) await tallySummary(api, t, await summary(api, op.id), known);
      else {
        // Stopped waiting (second Ctrl-C): the server finishes the operation; say where to follow it.
        t.ok += op.progress.ok;
        notStarted += op.progress.total - op.progress.done;
        if (flags.quiet !== true) {
          io.err(
            `ciphervisor: operation ${op.id} goes on on the server; follow it with 'ciphervisor operation watch ${op.id}'\n`,
          );
        }
      }
      offset.done += op.progress.done;
      offset.ok += op.progress.ok;
      offset.failed += op.progress.failed;
      offset.total += op.progress.total;
      if (op.status === "cancelled") notStarted += op.progress.total;
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!interrupt.stop.aborted) {
        const v = restarts[next++];
        if (!v) return;
        await restartOne(api, v, set, t, interrupt.abort);
        bar.update(offset.done + t.ok + t.failed.length, { ok: t.ok, failed: t.failed.length });
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, Math.max(1, restarts.length)) }, worker));
    notStarted += Math.max(0, restarts.length - next);
  } finally {
    bar.stop();
    interrupt.dispose();
  }
  const total = t.ok + t.failed.length + notStarted;
  finishBulk(
    io,
    mode,
    {
      ok: t.ok,
      changed: t.changed,
      unchanged: t.unchanged,
      failed: t.failed,
      operation: t.operations[0] ?? null,
      ...(t.operations.length > 1 ? { operations: t.operations } : {}),
      ...(interrupt.requested ? { interrupted: true, notStarted } : {}),
    },
    "changed",
    targets.vms?.length ?? total,
  );
}

export function registerVmSet(vm: Command, io: CliIo): void {
  mutatingOptions(
    apiCommand(
      targetOptions(
        vm
          .command("set")
          .argument("[names...]", "VM names or ids")
          .description(
            "turn SEV / SEV-ES on or off, or change the guest policy (powered-off VMs; --restart for running ones)",
          )
          .option("--sev-es <on|off>", "SEV-ES: memory and CPU register state encrypted")
          .option("--sev <on|off>", "SEV: memory encrypted")
          .option("--policy <policy>", "SEV guest policy: 0x5, or flags such as NODBG,NOKS,ES")
          .option(
            "--restart",
            "also change running VMs: power off, change, start again (within key-slot capacity)",
          )
          .option("--parallel <n>", "VMs restarted at a time", "4"),
      ),
      { name: true },
    ),
    "confirm turning protection off, or acting on --all",
  ).action(async (names: string[], flags: SetFlags) => {
    const mode = modeFor(flags, true);
    const set = bulkSetOf(flags);
    parseIntFlag(flags.parallel, "--parallel", 1, 64);
    const spec = await targetSpec(io, names, flags);
    const api = apiFor(io, flags);
    const targets = await resolveTargets(api, spec, false);
    if (targets.vms !== undefined && targets.vms.length === 0) {
      if (flags.quiet !== true) io.err("ciphervisor: no VMs match; nothing to change\n");
      if (mode === "json")
        io.out(
          json(
            flags.whatIf ? { whatIf: true, items: [], capacity: [] } : { ok: 0, failed: [], operation: null },
          ),
        );
      return;
    }
    if (flags.whatIf) {
      const p = await planAll(api, targets.selector, set, flags.restart === true);
      printWhatIf(
        io,
        mode,
        planReport(p, set, `vm set ${describeSet(set)}${flags.restart ? " --restart" : ""}`),
      );
      return;
    }
    const weakening = set.securityMode === "none" || flags.sevEs === "off" || flags.sev === "off";
    requireYes(
      flags.yes,
      weakening || spec.kind === "all",
      weakening
        ? `turning protection off (${describeSet(set)}) for ${targets.description} exposes their memory${set.securityMode === "none" ? "" : " or registers"} to the host`
        : `changing every VM (${describeSet(set)})`,
    );
    await realRun(io, api, targets, set, flags, mode);
  });
}
