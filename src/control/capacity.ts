/**
 * Capacity accounting over the inventory, and the one way a VM takes a key slot: `reserveSlot`. The inventory,
 * not the hosts, is what placement counts, so every control-plane node sees the same numbers; the host's own
 * ASID allocator still refuses an over-full pool underneath (defence in depth).
 *
 * Reservation is a short transaction: lock the VM, lock the chosen host (row lock on PostgreSQL; SQLite's write
 * transaction excludes other writers), recount that host's slots, and only then mark the VM `starting` on it.
 * Two nodes racing for a host's last slot serialise on the host row, and the loser re-plans.
 */
import { CiphervisorError } from "../errors.ts";
import { type PoolUse, poolOf, SLOT_STATES } from "./compat.ts";
import type { Inventory, InventoryScope } from "./inventory/inventory.ts";
import type { Host, PowerState, Vm, VmUsage } from "./inventory/types.ts";
import { choosePlacement, type HostView, noValidHost, type PlaceOptions } from "./placement.ts";

/** Power states in which a VM counts as powered on (for spreading ordinary VMs). */
const ON_STATES: readonly PowerState[] = [...SLOT_STATES, "suspended"];

/** Per host: taken slots per pool, and powered-on VMs. */
export function summarizeUsage(rows: readonly VmUsage[]): Map<string, { used: PoolUse; active: number }> {
  const out = new Map<string, { used: { sev: number; sevEs: number }; active: number }>();
  for (const r of rows) {
    let e = out.get(r.hostId);
    if (!e) {
      e = { used: { sev: 0, sevEs: 0 }, active: 0 };
      out.set(r.hostId, e);
    }
    if (SLOT_STATES.includes(r.powerState)) {
      if (r.securityMode === "sev") e.used.sev += r.count;
      if (r.securityMode === "sev-es") e.used.sevEs += r.count;
    }
    if (ON_STATES.includes(r.powerState)) e.active += r.count;
  }
  return out;
}

/** Every host (all pages) with its usage. */
export async function allHosts(scope: Pick<InventoryScope, "hosts">): Promise<Host[]> {
  const out: Host[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Host[]; nextCursor: string | null } = await scope.hosts.list(
      {},
      { limit: 5000, cursor },
    );
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

/** Views of `hosts` with their current usage. */
export async function viewsOf(
  scope: Pick<InventoryScope, "vms">,
  hosts: readonly Host[],
): Promise<HostView[]> {
  const usage = summarizeUsage(
    await scope.vms.usage(hosts.length <= 1000 ? { hostIds: hosts.map((h) => h.id) } : {}),
  );
  return hosts.map((host) => {
    const u = usage.get(host.id);
    return { host, used: u?.used ?? { sev: 0, sevEs: 0 }, active: u?.active ?? 0 };
  });
}

/** Views of every host. */
export async function hostViews(scope: Pick<InventoryScope, "hosts" | "vms">): Promise<HostView[]> {
  return viewsOf(scope, await allHosts(scope));
}

export interface ReserveOptions extends PlaceOptions {
  /** The VM must be in one of these states (e.g. `off`); anything else is a CONFLICT. */
  readonly from: readonly PowerState[];
  /** How many times to re-plan after losing a race for a slot. */
  readonly attempts?: number;
}

export interface Reservation {
  /** The VM as reserved: `starting` on `host`. */
  readonly vm: Vm;
  readonly host: Host;
  /** The VM's state before the reservation, to put back if the launch fails. */
  readonly previous: { readonly hostId: string | null; readonly powerState: PowerState };
}

/**
 * Views without the slot `vm` itself holds (a resumed power-on finds its own `starting` reservation; it must not
 * count against the VM, or a VM holding a pool's last slot could never finish starting).
 */
function withoutOwnSlot(vm: Vm, views: HostView[]): HostView[] {
  const pool = poolOf(vm.securityMode);
  if (pool === undefined || vm.hostId === null || !SLOT_STATES.includes(vm.powerState)) return views;
  return views.map((v) =>
    v.host.id === vm.hostId ? { ...v, used: { ...v.used, [pool]: Math.max(0, v.used[pool] - 1) } } : v,
  );
}

type Attempt = { readonly ok: true; readonly reservation: Reservation } | { readonly ok: false };

/**
 * Takes a key slot for `vmId` on the best host and marks the VM `starting` there. NO_VALID_HOST (with a reason
 * per host) when nothing fits; CONFLICT when the VM is not in an expected state.
 */
export async function reserveSlot(
  inventory: Inventory,
  vmId: string,
  options: ReserveOptions,
): Promise<Reservation> {
  const attempts = options.attempts ?? 5;
  for (let i = 0; i < attempts; i++) {
    const vm = await inventory.vms.get(vmId);
    if (!vm) throw new CiphervisorError("NOT_FOUND", `VM ${vmId} not found`);
    assertState(vm, options.from);
    const decision = choosePlacement(vm, withoutOwnSlot(vm, await hostViews(inventory)), options);
    const chosen = decision.chosen;
    if (!chosen) throw noValidHost(vm, decision.verdicts);
    const result = await inventory.transaction(async (tx): Promise<Attempt> => {
      const [locked] = await tx.vms.lockMany([vmId]);
      if (!locked) throw new CiphervisorError("NOT_FOUND", `VM ${vmId} not found`);
      assertState(locked, options.from);
      const [host] = await tx.hosts.lockMany([chosen.host.id]);
      if (!host) return { ok: false };
      // Recount under the host lock: this is the number no other reservation can change until we commit.
      const [view] = withoutOwnSlot(locked, await viewsOf(tx, [host]));
      if (!view) return { ok: false };
      const again = choosePlacement(locked, [view], { only: [host.id] });
      if (!again.chosen) return { ok: false };
      const reserved = await tx.vms.update(vmId, { hostId: host.id, powerState: "starting" });
      return {
        ok: true,
        reservation: {
          vm: reserved,
          host,
          previous: { hostId: locked.hostId, powerState: locked.powerState },
        },
      };
    });
    if (result.ok) return result.reservation;
  }
  throw new CiphervisorError(
    "CONFLICT",
    `could not reserve a host for VM ${vmId}: placement kept changing; retry`,
    {
      details: { retryable: true },
    },
  );
}

function assertState(vm: Vm, from: readonly PowerState[]): void {
  if (!from.includes(vm.powerState)) {
    throw new CiphervisorError("CONFLICT", `VM '${vm.name}' is ${vm.powerState}`, {
      details: { vm: vm.id, powerState: vm.powerState },
    });
  }
}
