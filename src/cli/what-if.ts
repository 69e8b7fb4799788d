/**
 * `--what-if` for the commands that act on one VM at a time (start, stop, restart, delete, migrate, snapshot,
 * clone, create). Nothing is sent that changes anything: the VMs and hosts are read from the API, and the checks
 * the server runs before queuing — the operation table (`hypervisor/operation-rules.ts`), the power-state checks
 * and placement over the hosts' key-slot pools (`control/placement.ts`) — are the same functions, run here on what
 * was read. So a refusal in the report carries the code and reason the real request would get.
 *
 * (`vm set` has a server-side what-if instead, `vms:bulk-update-plan`, because its checks depend on permissions and
 * host facts per VM.)
 */
import type { PoolUse } from "../control/compat.ts";
import type { Host, Vm, VmDevice } from "../control/inventory/types.ts";
import { choosePlacement, type HostView, noValidHost } from "../control/placement.ts";
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import type { ApiHost, ApiVm } from "./client/types.ts";

/** The inventory shape of an API VM (what the server-side checks take). */
export function vmFromApi(v: ApiVm): Vm {
  const { devices, ...spec } = v.spec;
  return {
    id: v.id,
    name: v.name,
    clusterId: v.clusterId,
    hostId: v.hostId,
    spec: {
      ...spec,
      ...(devices === undefined ? {} : { devices: devices.map((d) => ({ ...d }) as VmDevice) }),
    },
    powerState: v.powerState,
    securityMode: v.securityMode,
    policy: v.policy,
    attestationState: v.attestationState as Vm["attestationState"],
    labels: v.labels,
    createdAt: v.createdAt,
    updatedAt: v.updatedAt,
    version: v.version,
  };
}

/** The inventory shape of an API host. */
export function hostFromApi(h: ApiHost): Host {
  return {
    id: h.id,
    name: h.name,
    clusterId: h.clusterId,
    driver: h.driver as Host["driver"],
    address: h.address,
    cpuGeneration: h.cpuGeneration as Host["cpuGeneration"],
    sevState: h.sevState as Host["sevState"],
    esMode: h.esMode as Host["esMode"],
    sevAsids: h.pools.sev.size,
    esAsids: h.pools.sevEs.size,
    maintenance: h.maintenance as Host["maintenance"],
    connection: h.connection as Host["connection"],
    createdAt: h.createdAt,
    updatedAt: h.updatedAt,
    version: h.version,
  };
}

/** Placement's view of the hosts, with the slots the API reports as used. */
export function viewsFromApi(hosts: readonly ApiHost[]): HostView[] {
  return hosts.map((h) => ({
    host: hostFromApi(h),
    used: { sev: h.pools.sev.used, sevEs: h.pools.sevEs.used },
    active: h.activeVms,
  }));
}

/** The stable code of a refusal: the operation table's own code, else the error's. */
export function refusalCode(e: CiphervisorError): string {
  const refusal = e.details?.refusal;
  return e.code === "OPERATION_REFUSED" && typeof refusal === "string" ? refusal : e.code;
}

/** One VM's line of a what-if report. */
export interface Verdict {
  readonly vm: string;
  readonly outcome: "change" | "unchanged" | "refused";
  readonly code?: string;
  readonly reason: string;
  /** Where the VM would run or move to. */
  readonly host?: string;
}

/** Runs a server-side check; a CiphervisorError becomes a refused verdict with its stable code. */
export function check(vm: string, fn: () => void): Verdict | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isCiphervisorError(e)) throw e;
    return { vm, outcome: "refused", code: refusalCode(e), reason: e.message };
  }
}

/** Slots per host and pool, mutable while a what-if takes them one by one. */
export interface SlotLedger {
  readonly views: HostView[];
  readonly before: Map<string, PoolUse>;
}

export function ledger(hosts: readonly ApiHost[]): SlotLedger {
  const views = viewsFromApi(hosts);
  return { views, before: new Map(views.map((v) => [v.host.id, { ...v.used }])) };
}

/**
 * Where `vm` would be powered on, given the slots already taken in `l` (and takes one there); a refused verdict
 * with NO_VALID_HOST and a reason per host when nowhere fits.
 */
export function placeOn(l: SlotLedger, vm: Vm): { host: Host } | { refused: Verdict } {
  const decision = choosePlacement(vm, l.views, { prefer: vm.hostId });
  const chosen = decision.chosen;
  if (!chosen) {
    const e = noValidHost(vm, decision.verdicts);
    return { refused: { vm: vm.name, outcome: "refused", code: e.code, reason: e.message } };
  }
  const i = l.views.indexOf(chosen);
  const used = { ...chosen.used };
  if (vm.securityMode === "sev") used.sev += 1;
  if (vm.securityMode === "sev-es") used.sevEs += 1;
  l.views[i] = { ...chosen, used, active: chosen.active + 1 };
  return { host: chosen.host };
}

/** Frees the slot a running `vm` holds on its host (a stop in the plan). */
export function release(l: SlotLedger, vm: Vm): void {
  const i = l.views.findIndex((v) => v.host.id === vm.hostId);
  const view = l.views[i];
  if (!view) return;
  const used = { ...view.used };
  if (vm.securityMode === "sev") used.sev = Math.max(0, used.sev - 1);
  if (vm.securityMode === "sev-es") used.sevEs = Math.max(0, used.sevEs - 1);
  l.views[i] = { ...view, used, active: Math.max(0, view.active - 1) };
}

/** Capacity rows (host × pool) whose use the plan changes. */
export interface CapacityRow {
  readonly host: string;
  readonly pool: "sev" | "sev-es";
  readonly size: number;
  readonly used: number;
  readonly usedAfter: number;
}

export function capacityRows(l: SlotLedger): CapacityRow[] {
  const rows: CapacityRow[] = [];
  for (const v of [...l.views].sort((a, b) => a.host.name.localeCompare(b.host.name))) {
    const before = l.before.get(v.host.id) ?? { sev: 0, sevEs: 0 };
    for (const [k, pool, size] of [
      ["sevEs", "sev-es", v.host.esAsids],
      ["sev", "sev", v.host.sevAsids],
    ] as const) {
      if (before[k] !== v.used[k])
        rows.push({ host: v.host.name, pool, size, used: before[k], usedAfter: v.used[k] });
    }
  }
  return rows;
}

/** INVALID_INPUT for --what-if combined with a flag that only makes sense for a real run. */
export function notWithWhatIf(flag: string): CiphervisorError {
  return new CiphervisorError("USAGE", `--what-if changes nothing; ${flag} does not apply`);
}
