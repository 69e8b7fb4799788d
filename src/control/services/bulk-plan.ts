/**
 * The what-if of `vms:bulk-update`: what the real run would do to each VM, and what it does to each host's ASID
 * pools — changing nothing.
 *
 * It does not re-implement the checks. It runs the bulk-update runner itself (`bulkUpdateRunner`, the code the
 * real operation runs) inside ONE inventory transaction that is always rolled back, and captures the per-VM
 * results the runner records. So the report is, by construction, what a real run started now would record; the
 * rollback guarantees the inventory and the audit chain are untouched (the audit head lives in the same database).
 *
 * With `restart`, running VMs are evaluated as the CLI's `--restart` drives them: powered off, changed, powered on
 * again on their host. Inside the rolled-back transaction they are first marked powered off, so the runner's
 * checks see exactly what they will see after the real power-off; then each one that would change is admitted
 * only while its host has a free slot in the pool its new mode draws from (no over-commit; product-behaviour.md
 * §5). The others are refused here with ASID_POOL_EXHAUSTED, and the CLI leaves them running untouched.
 */
import { CiphervisorError } from "../../errors.ts";
import { allHosts, summarizeUsage } from "../capacity.ts";
import { poolOf } from "../compat.ts";
import type { Inventory, InventoryScope, OperationStore } from "../inventory/inventory.ts";
import type {
  Actor,
  Host,
  Operation,
  OperationItemResult,
  PowerState,
  SecurityMode,
  Vm,
} from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import type { RunContext } from "../operations/types.ts";
import { can } from "../rbac.ts";
import {
  type BulkSet,
  bulkParams,
  bulkUpdateRunner,
  requestPermissions,
  selectorFilter,
  type VmSelector,
} from "./bulk-update.ts";
import type { ControlContext } from "./context.ts";

/** What the real run would record for one VM, with the facts a person needs to read it. */
export interface PlannedVm {
  readonly vmId: string;
  readonly vm: string;
  readonly hostId: string | null;
  readonly host: string | null;
  readonly powerState: PowerState;
  /** `change`: would be changed; `unchanged`: already as asked; `refused`: would fail with `code`. */
  readonly outcome: "change" | "unchanged" | "refused";
  /** True when the VM runs and `restart` would power it off, change it and start it again. */
  readonly restart: boolean;
  readonly before: { readonly securityMode: SecurityMode; readonly policy: number };
  readonly after?: { readonly securityMode: SecurityMode; readonly policy: number };
  readonly code?: string;
  readonly reason?: string;
  readonly details?: JsonObject;
}

/** One ASID pool of one host, before and after the planned change. */
export interface PoolImpact {
  readonly hostId: string;
  readonly host: string;
  readonly pool: "sev" | "sev-es";
  /** Slots in the pool (read from the platform). */
  readonly size: number;
  /** Slots taken now (powered-on VMs of that mode). */
  readonly used: number;
  /** Slots taken once the planned restarts are done. */
  readonly usedAfter: number;
  /** VMs of that mode registered on the host, whatever their power state: the demand if all were powered on. */
  readonly vms: number;
  readonly vmsAfter: number;
}

export interface BulkPlan {
  readonly total: number;
  readonly change: number;
  readonly unchanged: number;
  readonly refused: number;
  readonly restart: number;
  readonly items: PlannedVm[];
  readonly capacity: PoolImpact[];
}

const ROLLBACK = Symbol("bulk-plan rollback");

class Rollback extends Error {
  readonly marker = ROLLBACK;
}

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
  const scope: InventoryScope = { ...pick(tx), operations };
  return {
    ...scope,
    dialect,
    transaction: (fn) => fn(scope),
    migrate: async () => undefined,
    close: async () => undefined,
  };
}

function pick(tx: InventoryScope): InventoryScope {
  return {
    clusters: tx.clusters,
    hosts: tx.hosts,
    vms: tx.vms,
    operations: tx.operations,
    tokens: tx.tokens,
    audit: tx.audit,
  };
}

async function listAll(scope: Pick<InventoryScope, "vms">, selector: VmSelector): Promise<Vm[]> {
  const filter = selectorFilter(selector);
  const out: Vm[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Vm[]; nextCursor: string | null } = await scope.vms.list(filter, {
      limit: 5000,
      cursor,
    });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

const RESTARTABLE: readonly PowerState[] = ["running"];

/** Mutable per-host pool accounting while admitting restarts. */
type Slots = { sev: number; sevEs: number };
interface PoolState {
  size: Slots;
  used: Slots;
  usedAfter: Slots;
  vms: Slots;
  vmsAfter: Slots;
}

function key(mode: SecurityMode): keyof Slots | undefined {
  return poolOf(mode);
}

export interface PlanRequest {
  readonly selector: VmSelector;
  readonly set: BulkSet;
  /** The requester's roles: each VM's change is checked against them, as in the real run. */
  readonly roles: readonly string[];
  readonly actor: Actor;
  /** Evaluate running VMs as `--restart` drives them (power off, change, power on within capacity). */
  readonly restart?: boolean;
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
export async function planBulkUpdate(c: ControlContext, req: PlanRequest): Promise<BulkPlan> {
  selectorFilter(req.selector);
  requestPermissions(req.set);
  const params = bulkParams(req.selector, req.set, req.roles);
  const op = dryOperation(req.actor, params);
  const captured: OperationItemResult[] = [];
  let snapshot:
    | { vms: Vm[]; hosts: Host[]; usage: Awaited<ReturnType<InventoryScope["vms"]["usage"]>> }
    | undefined;
  try {
    await c.inventory.transaction(async (tx) => {
      const vms = await listAll(tx, req.selector);
      const hosts = await allHosts(tx);
      snapshot = { vms, hosts, usage: await tx.vms.usage() };
      const restartIds = req.restart
        ? vms.filter((v) => RESTARTABLE.includes(v.powerState)).map((v) => v.id)
        : [];
      if (restartIds.length > 0) {
        // What the CLI's power-off does first; the runner then sees these VMs exactly as it will after it.
        await tx.vms.updateMany(restartIds.map((id) => ({ id, patch: { powerState: "off" as const } })));
      }
      const inventory = sandbox(tx, c.inventory.dialect, op, captured);
      const ctx: ControlContext = { ...c, inventory };
      const run: RunContext = {
        op,
        worker: "dry-run",
        signal: new AbortController().signal,
        recordedTargets: async () => new Set<string>(),
        progress: () => undefined,
      };
      if (restartIds.length > 0) {
        // The power-off above may take VMs out of a power-state selector: evaluate the VMs matched before it.
        const ids = vms.map((v) => v.id);
        for (let i = 0; i < ids.length; i += 5000) {
          const part = ids.slice(i, i + 5000);
          await bulkUpdateRunner(ctx)({
            ...run,
            op: { ...op, params: { ...params, selector: { ids: part } } },
          });
        }
      } else {
        await bulkUpdateRunner(ctx)(run);
      }
      throw new Rollback("dry run");
    });
  } catch (e) {
    if (!(e instanceof Rollback)) throw e;
  }
  if (!snapshot) throw new CiphervisorError("INTERNAL", "the dry run did not read the inventory");
  return assemble(
    snapshot.vms,
    snapshot.hosts,
    snapshot.usage,
    captured,
    req.restart === true,
    can(req.roles, "vm.power"),
  );
}

function assemble(
  vms: readonly Vm[],
  hosts: readonly Host[],
  usage: Awaited<ReturnType<InventoryScope["vms"]["usage"]>>,
  results: readonly OperationItemResult[],
  restart: boolean,
  mayPower: boolean,
): BulkPlan {
  const byId = new Map(results.map((r) => [r.target, r]));
  const hostById = new Map(hosts.map((h) => [h.id, h]));
  const use = summarizeUsage(usage);
  const pools = new Map<string, PoolState>();
  const poolState = (host: Host): PoolState => {
    let s = pools.get(host.id);
    if (!s) {
      const used = use.get(host.id)?.used ?? { sev: 0, sevEs: 0 };
      const vmsOn = { sev: 0, sevEs: 0 };
      for (const u of usage) {
        if (u.hostId !== host.id) continue;
        const k = key(u.securityMode);
        if (k) vmsOn[k] += u.count;
      }
      s = {
        size: { sev: host.sevAsids, sevEs: host.esAsids },
        used: { ...used },
        usedAfter: { ...used },
        vms: { ...vmsOn },
        vmsAfter: { ...vmsOn },
      };
      pools.set(host.id, s);
    }
    return s;
  };
  const items: PlannedVm[] = [];
  for (const vm of vms) {
    const host = vm.hostId === null ? undefined : hostById.get(vm.hostId);
    const r = byId.get(vm.id);
    const base = {
      vmId: vm.id,
      vm: vm.name,
      hostId: vm.hostId,
      host: host?.name ?? null,
      powerState: vm.powerState,
      before: { securityMode: vm.securityMode, policy: vm.policy },
    };
    const state = host ? poolState(host) : undefined;
    if (!r) {
      items.push({
        ...base,
        outcome: "refused",
        restart: false,
        code: "NOT_FOUND",
        reason: `VM '${vm.name}' was not evaluated`,
      });
      continue;
    }
    if (r.outcome === "failed") {
      items.push({
        ...base,
        outcome: "refused",
        restart: false,
        code: r.code ?? "INTERNAL",
        reason: r.reason ?? "",
        ...(r.details ? { details: r.details } : {}),
      });
      continue;
    }
    const d = r.details ?? {};
    if (d.unchanged === true) {
      items.push({ ...base, outcome: "unchanged", restart: false });
      continue;
    }
    const after = d.after as { securityMode: SecurityMode; policy: number } | undefined;
    if (!after) {
      items.push({ ...base, outcome: "unchanged", restart: false });
      continue;
    }
    const running = RESTARTABLE.includes(vm.powerState);
    const from = key(vm.securityMode);
    const to = key(after.securityMode);
    if (restart && running && !mayPower) {
      items.push({
        ...base,
        outcome: "refused",
        restart: false,
        code: "FORBIDDEN",
        reason: `restarting VM '${vm.name}' to change it needs the 'vm.power' permission; it stays running unchanged`,
        details: { permissions: ["vm.power"] },
      });
      continue;
    }
    if (restart && running && state && host) {
      // A restart takes a slot in the new mode's pool on this host; slots it frees are not lent to others, so
      // the admission holds whatever order the restarts finish in.
      if (to !== undefined && state.size[to] - state.usedAfter[to] < 1) {
        const poolName = to === "sevEs" ? "SEV-ES" : "SEV";
        items.push({
          ...base,
          outcome: "refused",
          restart: false,
          code: "ASID_POOL_EXHAUSTED",
          reason: `host ${host.name} has no free ${poolName} key slot for VM '${vm.name}' (${state.usedAfter[to]} of ${state.size[to]} taken once the earlier restarts are done); it stays running unchanged`,
          details: {
            pool: to === "sevEs" ? "sev-es" : "sev",
            size: state.size[to],
            used: state.usedAfter[to],
          },
        });
        continue;
      }
      if (to !== undefined) state.usedAfter[to] += 1;
      if (from !== undefined) state.usedAfter[from] -= 1;
    }
    if (state) {
      if (from !== undefined) state.vmsAfter[from] -= 1;
      if (to !== undefined) state.vmsAfter[to] += 1;
    }
    items.push({ ...base, outcome: "change", restart: restart && running, after });
  }
  const capacity: PoolImpact[] = [];
  for (const host of [...hosts].sort((a, b) => a.name.localeCompare(b.name))) {
    const s = pools.get(host.id);
    if (!s) continue;
    for (const [k, pool] of [
      ["sevEs", "sev-es"],
      ["sev", "sev"],
    ] as const) {
      capacity.push({
        hostId: host.id,
        host: host.name,
        pool,
        size: s.size[k],
        used: s.used[k],
        usedAfter: s.usedAfter[k],
        vms: s.vms[k],
        vmsAfter: s.vmsAfter[k],
      });
    }
  }
  const count = (o: PlannedVm["outcome"]) => items.filter((i) => i.outcome === o).length;
  return {
    total: items.length,
    change: count("change"),
    unchanged: count("unchanged"),
    refused: count("refused"),
    restart: items.filter((i) => i.restart).length,
    items,
    capacity,
  };
}
