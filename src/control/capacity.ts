/**
 * Capacity accounting over the inventory, and the one way a VM takes a key slot: a `Placer` (`reserveSlot` for one
 * VM, `reserveSlots` or a shared `Placer` for many). The inventory, not the hosts, is what placement counts, so every
 * control-plane node sees the same numbers; the host's own ASID allocator still refuses an over-full pool
 * underneath (defence in depth).
 *
 * A placer reads every host and its usage once and chooses from that read with the slots it handed out since
 * counted (`slot-ledger.ts`). Each reservation is then a short transaction: lock the VM, lock the chosen host (row
 * lock on PostgreSQL; SQLite's write transaction excludes other writers), recount that host's slots, and only then
 * mark the VM `starting` on it. Two nodes racing for a host's last slot serialise on the host row, and the loser
 * reads that host afresh and re-plans.
 */
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import { NO_POOL_USE, type PoolUse, poolOf, SLOT_STATES } from "./compat.ts";
import type { Inventory, InventoryScope } from "./inventory/inventory.ts";
import type { Host, PowerState, Vm, VmUsage } from "./inventory/types.ts";
import { choosePlacement, type HostView, noValidHost, type PlaceOptions } from "./placement.ts";
import { SlotLedger } from "./slot-ledger.ts";

/** Power states in which a VM counts as powered on (for spreading ordinary VMs). */
const ON_STATES: readonly PowerState[] = [...SLOT_STATES, "suspended"];

/** Per host: taken slots per pool, and powered-on VMs. */
export function summarizeUsage(rows: readonly VmUsage[]): Map<string, { used: PoolUse; active: number }> {
  const out = new Map<string, { used: Record<keyof PoolUse, number>; active: number }>();
  for (const r of rows) {
    let e = out.get(r.hostId);
    if (!e) {
      e = { used: { ...NO_POOL_USE }, active: 0 };
      out.set(r.hostId, e);
    }
    const pool = poolOf(r.securityMode);
    if (pool !== undefined && SLOT_STATES.includes(r.powerState)) e.used[pool] += r.count;
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
    return { host, used: u?.used ?? NO_POOL_USE, active: u?.active ?? 0 };
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

/** What a VM of `mode` in `powerState` counts at its host: a slot of its pool, and a powered-on VM. */
function countOf(mode: Vm["securityMode"], powerState: PowerState): { slots: number; active: number } {
  return {
    slots: poolOf(mode) !== undefined && SLOT_STATES.includes(powerState) ? 1 : 0,
    active: ON_STATES.includes(powerState) ? 1 : 0,
  };
}

type Attempt =
  | { readonly ok: true; readonly reservation: Reservation; readonly fresh: HostView }
  /** The ordered candidates did not decide: the VM as locked, for the decision over every host. */
  | { readonly ok: false; readonly undecided: Vm }
  /** A lost race on `hostId`; `fresh`: that host as it is now (undefined: it no longer exists). */
  | { readonly ok: false; readonly hostId: string; readonly fresh: HostView | undefined };

/**
 * A ledger older than this that finds no host is read again before it refuses, so a slot given back since counts
 * as a fresh `reserveSlot` would count it.
 */
const REFUSAL_MAX_AGE_MS = 1000;

/**
 * Reservations for many VMs against ONE read of every host and its usage (`hostViews`): a `SlotLedger` counts the
 * slots handed out since and keeps each VM shape's candidates ordered, so a VM costs a look at the best host and
 * the same lock-and-recount transaction `reserveSlot` runs on that host alone. Without other writers each VM gets
 * exactly the host a `reserveSlot` call at its turn would give it. Another writer can still take the chosen host's
 * last slot between the read and the lock: the recount sees it, that host is read afresh and the VM re-planned.
 * Reservations run one at a time in call order (callers may launch in parallel), so the ledger stays exact.
 *
 * @example
 * ```ts
 * const placer = await Placer.load(inventory);
 * for (const id of ids) await placer.reserve(id, { from: ["off"] });
 * ```
 */
export class Placer {
  readonly #inventory: Inventory;
  #ledger: SlotLedger;
  #readAt: number;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(inventory: Inventory, views: readonly HostView[]) {
    this.#inventory = inventory;
    this.#ledger = new SlotLedger(views);
    this.#readAt = performance.now();
  }

  /** A placer over every host and its usage as the inventory has them now. */
  static async load(inventory: Inventory): Promise<Placer> {
    return new Placer(inventory, await hostViews(inventory));
  }

  /** The hosts with the slots this placer counted so far (name order). */
  views(): HostView[] {
    return this.#ledger.views();
  }

  /**
   * Takes a key slot for `vmId` on the best host and marks the VM `starting` there, as `reserveSlot` does.
   * NO_VALID_HOST (with a reason per host) when nothing fits; CONFLICT when the VM is not in an expected state.
   */
  reserve(vmId: string, options: ReserveOptions): Promise<Reservation> {
    const run = this.#queue.then(() => this.#reserve(vmId, options));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** A reserved VM that did not launch went back `off` (its slot was given back in the inventory): count it. */
  returned(reservation: Reservation): void {
    const { vm, host } = reservation;
    const c = countOf(vm.securityMode, "starting");
    this.#ledger.adjust(host.id, poolOf(vm.securityMode), -c.slots, -c.active);
  }

  async #reserve(vmId: string, options: ReserveOptions): Promise<Reservation> {
    const attempts = options.attempts ?? 5;
    let reread = false;
    // A host decided outside the transaction (by every host's checks) when the ordered candidates could not.
    let decided: HostView | undefined;
    let attempt = 0;
    while (attempt < attempts) {
      const target = decided;
      decided = undefined;
      const result = await this.#inventory.transaction(async (tx): Promise<Attempt> => {
        const [locked] = await tx.vms.lockMany([vmId]);
        if (!locked) throw new CiphervisorError("NOT_FOUND", `VM ${vmId} not found`);
        assertState(locked, options.from);
        const chosen = target ?? this.#ledger.pick(locked, options);
        if (!chosen) return { ok: false, undecided: locked };
        const [host] = await tx.hosts.lockMany([chosen.host.id]);
        if (!host) return { ok: false, hostId: chosen.host.id, fresh: undefined };
        // Recount under the host lock: this is the number no other reservation can change until we commit.
        const [fresh] = await viewsOf(tx, [host]);
        if (!fresh) return { ok: false, hostId: host.id, fresh: undefined };
        const again = choosePlacement(locked, withoutOwnSlot(locked, [fresh]), { only: [host.id] });
        if (!again.chosen) return { ok: false, hostId: host.id, fresh };
        const reserved = await tx.vms.update(vmId, { hostId: host.id, powerState: "starting" });
        return {
          ok: true,
          fresh,
          reservation: {
            vm: reserved,
            host,
            previous: { hostId: locked.hostId, powerState: locked.powerState },
          },
        };
      });
      if (!result.ok && "undecided" in result) {
        // Nothing fits by the ordered candidates (or the options need every host): decide over every host,
        // outside the transaction, and say why when none is left.
        const vm = result.undecided;
        const choice = this.#ledger.choose(vm, options);
        if (choice.chosen) {
          decided = choice.chosen;
          continue;
        }
        if (!reread && performance.now() - this.#readAt > REFUSAL_MAX_AGE_MS) {
          reread = true;
          this.#ledger = new SlotLedger(await hostViews(this.#inventory));
          this.#readAt = performance.now();
          continue;
        }
        throw noValidHost(vm, choice.verdicts);
      }
      attempt++;
      if (result.ok) {
        // The host as read under its lock replaces the ledger's, then the VM's move is counted.
        const { vm: reserved, host, previous } = result.reservation;
        this.#ledger.refresh(host.id, result.fresh);
        const pool = poolOf(reserved.securityMode);
        const before = countOf(reserved.securityMode, previous.powerState);
        const after = countOf(reserved.securityMode, reserved.powerState);
        this.#ledger.adjust(previous.hostId, pool, -before.slots, -before.active);
        this.#ledger.adjust(host.id, pool, after.slots, after.active);
        return result.reservation;
      }
      // A lost race: re-plan from a fresh read of that host.
      this.#ledger.refresh(result.hostId, result.fresh);
    }
    throw new CiphervisorError(
      "CONFLICT",
      `could not reserve a host for VM ${vmId}: placement kept changing; retry`,
      {
        details: { retryable: true },
      },
    );
  }
}

/** One VM's outcome in `reserveSlots`. */
export type SlotResult =
  | { readonly ok: true; readonly reservation: Reservation }
  | { readonly ok: false; readonly error: CiphervisorError };

/**
 * Reserves a slot for each of `vmIds` in order, over one read of the hosts (`Placer`): the choices are those of
 * `reserveSlot` called for each VM in turn, at a cost that does not grow with the fleet per VM. A VM that cannot
 * be reserved gets its error (NO_VALID_HOST, CONFLICT, NOT_FOUND) and the rest go on.
 */
export async function reserveSlots(
  inventory: Inventory,
  vmIds: readonly string[],
  options: ReserveOptions,
): Promise<SlotResult[]> {
  const placer = await Placer.load(inventory);
  const out: SlotResult[] = [];
  for (const id of vmIds) {
    try {
      out.push({ ok: true, reservation: await placer.reserve(id, options) });
    } catch (e) {
      if (!isCiphervisorError(e)) throw e;
      out.push({ ok: false, error: e });
    }
  }
  return out;
}

/**
 * Takes a key slot for `vmId` on the best host and marks the VM `starting` there. NO_VALID_HOST (with a reason
 * per host) when nothing fits; CONFLICT when the VM is not in an expected state.
 */
export async function reserveSlot(
  inventory: Inventory,
  vmId: string,
  options: ReserveOptions,
): Promise<Reservation> {
  return (await Placer.load(inventory)).reserve(vmId, options);
}

function assertState(vm: Vm, from: readonly PowerState[]): void {
  if (!from.includes(vm.powerState)) {
    throw new CiphervisorError("CONFLICT", `VM '${vm.name}' is ${vm.powerState}`, {
      details: { vm: vm.id, powerState: vm.powerState },
    });
  }
}
