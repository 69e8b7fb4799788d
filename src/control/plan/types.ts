/**
 * What a dry run answers (`?dryRun=true` on every mutating route, like `kubectl --dry-run=server`): per object
 * what the real request would do — change it, leave it as it is, or refuse it with a stable code and reason — and
 * the capacity impact per host and key-slot pool. A plan is computed by the same checks the real request runs and
 * changes nothing.
 */
import type { PowerState, SecurityMode } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";

/** `change`: the request would change it; `unchanged`: already as asked; `refused`: it would fail with `code`. */
export const PLAN_OUTCOMES = ["change", "unchanged", "refused"] as const;
export type PlanOutcome = (typeof PLAN_OUTCOMES)[number];

/** What a plan item is about. */
export const PLAN_KINDS = ["vm", "host", "token", "operation", "image"] as const;
export type PlanKind = (typeof PLAN_KINDS)[number];

/** A VM's protection: its mode and guest policy. */
export interface Protection {
  readonly securityMode: SecurityMode;
  readonly policy: number;
}

/** One object of a plan. */
export interface PlanItem {
  /** The object's id; for an object the request would create, its name. */
  readonly target: string;
  readonly name: string;
  readonly kind: PlanKind;
  readonly outcome: PlanOutcome;
  /** What would be done, in words ("power-on", "restart → sev-es 0x5", "live-migrate"); on `change` items. */
  readonly action?: string;
  /** Where the VM runs, or would run or be registered once the request is done. */
  readonly hostId?: string | null;
  readonly host?: string | null;
  readonly powerState?: PowerState;
  /** True when a running VM would be powered off, changed and started again. */
  readonly restart?: boolean;
  readonly before?: Protection;
  readonly after?: Protection;
  /** On `refused` items: the code and reason the real request would give. */
  readonly code?: string;
  readonly reason?: string;
  readonly details?: JsonObject;
}

/** One key-slot pool of one host, before and after the plan. */
export interface PoolImpact {
  readonly hostId: string;
  readonly host: string;
  readonly pool: "sev" | "sev-es" | "sev-snp";
  /** Slots in the pool (read from the platform). */
  readonly size: number;
  /** Slots taken now (powered-on VMs of the pool's mode), and once the plan is done. */
  readonly used: number;
  readonly usedAfter: number;
  /** VMs of the pool's mode registered on the host, whatever their power state: the demand if all ran. */
  readonly vms: number;
  readonly vmsAfter: number;
}

export interface Plan {
  /** The route's audit action (`vm.power-on`, `vm.bulk-update`, …). */
  readonly action: string;
  readonly total: number;
  readonly change: number;
  readonly unchanged: number;
  readonly refused: number;
  /** Items that would restart a running VM. */
  readonly restart: number;
  readonly items: PlanItem[];
  /** Pools of the hosts the plan touches (both pools of each). */
  readonly capacity: PoolImpact[];
}

/** A plan from its items and capacity rows, with the counts. */
export function planOf(action: string, items: PlanItem[], capacity: PoolImpact[] = []): Plan {
  let change = 0;
  let unchanged = 0;
  let refused = 0;
  let restart = 0;
  for (const i of items) {
    if (i.outcome === "change") change++;
    else if (i.outcome === "unchanged") unchanged++;
    else refused++;
    if (i.restart === true) restart++;
  }
  return { action, total: items.length, change, unchanged, refused, restart, items, capacity };
}
