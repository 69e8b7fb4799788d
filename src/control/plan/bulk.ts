/**
 * The dry run of `vms:bulk-update`: what the real run would do to each VM, and to each host's key-slot pools —
 * changing nothing.
 *
 * It does not re-implement the checks. It runs the bulk-update runner itself (`bulkUpdateRunner`, the code the
 * real operation runs) inside ONE inventory transaction that is always rolled back, and captures the per-VM
 * results the runner records. So the plan is, by construction, what a real run started now would record; the
 * rollback guarantees the inventory and the audit chain are untouched (the audit head lives in the same database).
 *
 * With `restart`, the runner admits running VMs exactly as in a real run (its capacity ledger); only the restart
 * itself — power off, change, power on through the host's driver — is replaced by recording that it would happen.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Inventory, InventoryScope, OperationStore } from "../inventory/inventory.ts";
import type { Actor, Operation, OperationItemResult, Vm } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import type { RunContext } from "../operations/types.ts";
import {
  type BulkSet,
  bulkParams,
  bulkUpdateRunner,
  type Restarter,
  type RestartOptions,
  requestPermissions,
  selectedVms,
  selectorFilter,
  type VmSelector,
} from "../services/bulk-update.ts";
import type { ControlContext } from "../services/context.ts";
import type { CapacityLedger } from "./ledger.ts";
import { type Plan, type PlanItem, type Protection, planOf } from "./types.ts";

class Rollback extends Error {}

/** The runner's operation for a dry run: never stored, never claimed. */
function dryOperation(actor: Actor, params: JsonObject): Operation {
  const now = new Date().toISOString();
  return {
    id: "op_dry_run",
    kind: "vm.bulk-update",
    status: "running",
    idempotencyKey: null,
    actor,
    params,
    total: 0,
    done: 0,
    okCount: 0,
    failedCount: 0,
    error: null,
    claimedBy: "dry-run",
    leaseUntil: null,
    attempts: 1,
    createdAt: now,
    startedAt: now,
    finishedAt: null,
    updatedAt: now,
  };
}

/**
 * The one transaction's stores, presented as an Inventory to the runner: its own `transaction()` calls run
 * inline in the outer transaction, and the results it records are captured instead of stored.
 */
function sandbox(
  tx: InventoryScope,
  dialect: Inventory["dialect"],
  op: Operation,
  captured: OperationItemResult[],
): Inventory {
  const operations = new Proxy(tx.operations, {
    get(target, prop, receiver) {
      if (prop === "setTotal") return async () => op;
      if (prop === "recordItems") {
        return async (_id: string, results: readonly OperationItemResult[]) => {
          captured.push(...results);
          return op;
        };
      }
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  }) as OperationStore;
  const scope: InventoryScope = {
    clusters: tx.clusters,
    hosts: tx.hosts,
    vms: tx.vms,
    operations,
    tokens: tx.tokens,
    audit: tx.audit,
    images: tx.images,
  };
  return {
    ...scope,
    dialect,
    transaction: (fn) => fn(scope),
    migrate: async () => undefined,
    // A plan runs inside a real transaction, which already met the store's health.
    damage: undefined,
    check: async () => undefined,
    // Inside a transaction that is always rolled back: nothing it reads may be cached.
    changeToken: () => undefined,
    close: async () => undefined,
  };
}

export interface BulkPlanRequest extends RestartOptions {
  readonly selector: VmSelector;
  readonly set: BulkSet;
  /** The requester's roles: each VM's change is checked against them, as in the real run. */
  readonly roles: readonly string[];
  readonly actor: Actor;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function describe(after: Protection, restart: boolean): string {
  const to = `${after.securityMode}${after.securityMode === "none" ? "" : ` ${hex(after.policy)}`}`;
  return restart ? `restart → ${to}` : to;
}

/** The plan item of one VM from the result the runner recorded for it. */
function itemOf(vm: Vm, host: string | null, r: OperationItemResult | undefined): PlanItem {
  const base = {
    target: vm.id,
    name: vm.name,
    kind: "vm" as const,
    hostId: vm.hostId,
    host,
    powerState: vm.powerState,
    before: { securityMode: vm.securityMode, policy: vm.policy },
  };
  if (!r)
    return { ...base, outcome: "refused", code: "NOT_FOUND", reason: `VM '${vm.name}' was not evaluated` };
  if (r.outcome === "failed") {
    return {
      ...base,
      outcome: "refused",
      code: r.code ?? "INTERNAL",
      reason: r.reason ?? "",
      ...(r.details ? { details: r.details } : {}),
    };
  }
  const d = r.details ?? {};
  const after = d.after as Protection | undefined;
  if (d.unchanged === true || !after) return { ...base, outcome: "unchanged" };
  const restart = d.restarted === true;
  return { ...base, outcome: "change", action: describe(after, restart), restart, after };
}

/**
 * What `vms:bulk-update` with `selector` and `set` would do now, per VM and per host pool. Writes nothing.
 *
 * @example
 * ```ts
 * const plan = await planBulkUpdate(cp.context, { selector: { all: true }, set: { securityMode: "sev-es" }, roles, actor });
 * plan.items.filter((i) => i.outcome === "refused"); // what the real run would refuse, and why
 * ```
 */
export async function planBulkUpdate(c: ControlContext, req: BulkPlanRequest): Promise<Plan> {
  selectorFilter(req.selector);
  requestPermissions(req.set);
  const params = bulkParams(req.selector, req.set, req.roles, req);
  const op = dryOperation(req.actor, params);
  const captured: OperationItemResult[] = [];
  let vms: Vm[] | undefined;
  let ledger: CapacityLedger | undefined;
  try {
    await c.inventory.transaction(async (tx) => {
      vms = await selectedVms(tx, req.selector);
      const inventory = sandbox(tx, c.inventory.dialect, op, captured);
      const run: RunContext = {
        op,
        worker: "dry-run",
        signal: new AbortController().signal,
        recordedTargets: async () => new Set<string>(),
        progress: () => undefined,
      };
      const restarter: Restarter = async (_run, { vm, decision }) => {
        captured.push({
          target: vm.id,
          outcome: "ok",
          details: {
            before: decision.before,
            ...(decision.after ? { after: decision.after } : {}),
            restarted: true,
          },
        });
      };
      await bulkUpdateRunner({ ...c, inventory }, restarter, (l) => {
        ledger = l;
      })(run);
      throw new Rollback("dry run");
    });
  } catch (e) {
    if (!(e instanceof Rollback)) throw e;
  }
  if (!vms || !ledger) throw new CiphervisorError("INTERNAL", "the dry run did not read the inventory");
  const byId = new Map(captured.map((r) => [r.target, r]));
  const l = ledger;
  const items = vms.map((vm) => itemOf(vm, l.host(vm.hostId)?.name ?? null, byId.get(vm.id)));
  return planOf("vm.bulk-update", items, l.rows());
}
