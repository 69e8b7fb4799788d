/**
 * Capacity accounting over the inventory, and the one way a VM takes a key slot: a `Placer` (`reserveSlot` for one
 * VM, `reserveSlots` or a shared `Placer` for many). The inventory, not the hosts, is what placement counts, so every
 * control-plane node sees the same numbers; the host's own ASID allocator still refuses an over-full pool
 * underneath (defence in depth).
 *
 * A placer reads every host and its usage once and chooses from that read with the slots it handed out since
 * counted (`slot-ledger.ts`). Reservations are then short transactions — one per group of VMs asked for together:
 * lock the VMs, lock the chosen hosts (row locks on PostgreSQL; SQLite's write transaction excludes other writers),
 * recount those hosts' slots, and only then mark the VMs `starting` on them. Two nodes racing for a host's last
 * slot serialise on the host row, and the loser reads that host afresh and re-plans.
 */
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import { NO_POOL_USE, type PoolUse, poolOf, SLOT_STATES } from "./compat.ts";
import type { Inventory, InventoryScope } from "./inventory/inventory.ts";
import type { Host, PowerState, Vm, VmUsage } from "./inventory/types.ts";
import { choosePlacement, type HostView, noValidHost, type PlaceOptions } from "./placement.ts";
import { SlotLedger } from "./slot-ledger.ts";

/** Power states in which a VM counts as powered on (for spreading ordinary VMs). */
const ON_STATES: readonly PowerState[] = [...SLOT_STATES, "suspended"];

type Pool = keyof PoolUse;

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
  // Only powered-on VMs count (summarizeUsage): the states' index skips the powered-off rest of the fleet.
  const usage = summarizeUsage(
    await scope.vms.usage({
      powerStates: ON_STATES,
      ...(hosts.length <= 1000 ? { hostIds: hosts.map((h) => h.id) } : {}),
    }),
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

/** A change of one host's counts: `slots` more of `pool` taken (none for an ordinary VM), `active` more powered on. */
interface Adjustment {
  readonly hostId: string | null;
  readonly pool: Pool | undefined;
  readonly slots: number;
  readonly active: number;
}

/**
 * What a reservation moves: what the VM counts where it is now (`hostId`, `powerState`) leaves that host, and a
 * `starting` VM's count is taken at `toHostId`.
 */
function reservationMoves(
  vm: Pick<Vm, "securityMode" | "hostId" | "powerState">,
  toHostId: string,
): [Adjustment, Adjustment] {
  const pool = poolOf(vm.securityMode);
  const before = countOf(vm.securityMode, vm.powerState);
  const after = countOf(vm.securityMode, "starting");
  return [
    { hostId: vm.hostId, pool, slots: -before.slots, active: -before.active },
    { hostId: toHostId, pool, slots: after.slots, active: after.active },
  ];
}

type Attempt =
  | { readonly ok: true; readonly reservation: Reservation; readonly fresh: HostView }
  /** The ordered candidates did not decide: the VM as locked, for the decision over every host. */
  | { readonly ok: false; readonly undecided: Vm }
  /** A lost race on `hostId`; `fresh`: that host as it is now (undefined: it no longer exists). */
  | { readonly ok: false; readonly hostId: string; readonly fresh: HostView | undefined };

/** A VM of a group and the host the ledger chose for it. */
interface Planned {
  readonly p: Pending;
  readonly vm: Vm;
  readonly host: string;
}

/**
 * How many of `planned` (in order) still fit on their hosts as recounted under the hosts' locks (`fresh`), each
 * counted with the group's VMs before it; a host missing from `fresh` no longer exists.
 */
function checkPlanned(planned: readonly Planned[], fresh: readonly HostView[]): number {
  const views = new Map(fresh.map((v) => [v.host.id, { ...v, used: { ...v.used } }]));
  for (const [i, x] of planned.entries()) {
    const view = views.get(x.host);
    if (!view) return i;
    if (!choosePlacement(x.vm, withoutOwnSlot(x.vm, [view]), { only: [x.host] }).chosen) return i;
    for (const m of reservationMoves(x.vm, x.host)) {
      const v = m.hostId === null ? undefined : views.get(m.hostId);
      if (!v) continue;
      if (m.pool !== undefined) v.used[m.pool] = Math.max(0, v.used[m.pool] + m.slots);
      v.active = Math.max(0, v.active + m.active);
    }
  }
  return planned.length;
}

/** A reservation asked for and not yet answered. */
interface Pending {
  readonly vmId: string;
  readonly options: ReserveOptions;
  readonly resolve: (r: Reservation) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * A ledger older than this that finds no host is read again before it refuses, so a slot given back since counts
 * as a fresh `reserveSlot` would count it.
 */
const REFUSAL_MAX_AGE_MS = 1000;

/**
 * The most reservations one transaction makes. A group holds the store's write lock (SQLite) or its VMs' row locks
 * (PostgreSQL) for its whole length — about 0.1 ms a VM — so this bounds how long another writer waits.
 */
const MAX_GROUP = 256;

/**
 * Reservations for many VMs against ONE read of every host and its usage (`hostViews`): a `SlotLedger` counts the
 * slots handed out since and keeps each VM shape's candidates ordered, so a VM costs a look at the best host and
 * a lock-and-recount of that host alone. Without other writers each VM gets exactly the host a `reserveSlot` call
 * at its turn would give it. Another writer can still take the chosen host's last slot between the read and the
 * lock: the recount sees it, that host is read afresh and the VM re-planned.
 *
 * Reservations are answered in call order, so the ledger stays exact. Calls that arrive together — or while a
 * transaction is running — are made in ONE transaction (group commit, at most `MAX_GROUP`): the VMs are locked at
 * once, then each VM in order is checked, placed and recounted as alone; a VM that is refused (its state, or a
 * lost race past its attempts) writes nothing, so it cannot undo another's reservation. A group that fails as a
 * whole (the store) is retried one VM per transaction, each with its own outcome, after the hosts are read again.
 *
 * @example
 * ```ts
 * const placer = await Placer.load(inventory);
 * const reservations = await Promise.all(ids.map((id) => placer.reserve(id, { from: ["off"] })));
 * ```
 */
export class Placer {
  readonly #inventory: Inventory;
  #ledger: SlotLedger;
  #readAt: number;
  /** The ledger may count reservations a failed group rolled back: read every host again before the next choice. */
  #stale = false;
  readonly #pending: Pending[] = [];
  #pumping = false;
  /** What the group being planned counted in the ledger before its hosts were recounted (undone after). */
  #guesses: Adjustment[] = [];

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
    return new Promise((resolve, reject) => {
      this.#pending.push({ vmId, options, resolve, reject });
      if (this.#pumping) return;
      this.#pumping = true;
      // After the caller's current turn: the calls it makes together land in one group.
      queueMicrotask(() => void this.#pump());
    });
  }

  /** A reserved VM that did not launch went back `off` (its slot was given back in the inventory): count it. */
  returned(reservation: Reservation): void {
    const { vm, host } = reservation;
    const c = countOf(vm.securityMode, "starting");
    this.#ledger.adjust(host.id, poolOf(vm.securityMode), -c.slots, -c.active);
  }

  async #pump(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, MAX_GROUP);
        const rest = batch.length === 1 ? batch : await this.#group(batch);
        // The first VM the group could not decide (and everything after it, to keep call order) goes on alone.
        const [first, ...after] = rest;
        if (!first) continue;
        this.#pending.unshift(...after);
        await this.#answer(first, () => this.#reserve(first.vmId, first.options));
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #answer(p: Pending, fn: () => Promise<Reservation>): Promise<void> {
    try {
      p.resolve(await fn());
    } catch (e) {
      p.reject(e);
    }
  }

  /**
   * Reserves `batch` in one transaction, in order, and answers each VM once it commits. Returns the VMs left
   * unanswered: from the first one the ordered candidates could not decide (it needs every host's checks, or a
   * fresh read) or whose host changed under it (a lost race) to the end.
   *
   * Four steps, each one statement or a few for the whole group: lock the VMs; choose each VM's host from the
   * ledger in order, counting as it goes; lock the chosen hosts and recount them — the numbers no other
   * reservation can change until we commit — and check each VM again, in order, against those numbers; mark the
   * VMs that passed `starting` on their hosts. The ledger's guesses are then replaced by what was counted.
   */
  async #group(batch: readonly Pending[]): Promise<readonly Pending[]> {
    if (this.#stale) return batch;
    const refusals = new Map<Pending, CiphervisorError>();
    let planned: Planned[] = [];
    let stopped = batch.length;
    let reserved: Reservation[] = [];
    let fresh: HostView[] = [];
    try {
      await this.#inventory.transaction(async (tx) => {
        const locked = new Map((await tx.vms.lockMany(batch.map((p) => p.vmId))).map((v) => [v.id, v]));
        ({ planned, stopped } = this.#plan(batch, locked, refusals));
        const hosts = await tx.hosts.lockMany([...new Set(planned.map((x) => x.host))]);
        fresh = await viewsOf(tx, hosts);
        const passed = checkPlanned(planned, fresh);
        if (passed < planned.length) stopped = batch.indexOf((planned[passed] as Planned).p);
        planned = planned.slice(0, passed);
        const byHost = new Map(hosts.map((h) => [h.id, h]));
        await tx.vms.updateMany(
          planned.map((x) => ({ id: x.vm.id, patch: { hostId: x.host, powerState: "starting" as const } })),
        );
        const after = new Map((await tx.vms.lockMany(planned.map((x) => x.vm.id))).map((v) => [v.id, v]));
        reserved = planned.map((x) => ({
          vm: after.get(x.vm.id) as Vm,
          host: byHost.get(x.host) as Host,
          previous: { hostId: x.vm.hostId, powerState: x.vm.powerState },
        }));
      });
    } catch {
      // Nothing of the group was written; the ledger counted its guesses. Each VM goes again on its own.
      this.#guesses = [];
      this.#stale = true;
      return batch;
    }
    // The ledger: the guesses out, the hosts as counted under their locks in, then the reservations that passed.
    for (const x of this.#guesses.reverse()) this.#ledger.adjust(x.hostId, x.pool, -x.slots, -x.active);
    this.#guesses = [];
    for (const v of fresh) this.#ledger.refresh(v.host.id, v);
    for (const r of reserved) this.#countMove(r);
    const answered = new Map(planned.map((x, i) => [x.p, reserved[i] as Reservation]));
    for (const p of batch.slice(0, stopped)) {
      const r = answered.get(p);
      if (r) p.resolve(r);
      else p.reject(refusals.get(p) ?? notFound(p.vmId));
    }
    return batch.slice(stopped);
  }

  /**
   * Chooses a host for each VM of `batch` in order from the ledger, counting each choice as a guess (so the next VM
   * sees it), until one the ordered candidates cannot decide. A VM that is missing or in the wrong state is refused
   * and counts nothing; the same VM asked for twice is judged the second time as the first left it.
   */
  #plan(
    batch: readonly Pending[],
    locked: Map<string, Vm>,
    refusals: Map<Pending, CiphervisorError>,
  ): { planned: Planned[]; stopped: number } {
    const planned: Planned[] = [];
    for (const [i, p] of batch.entries()) {
      const vm = locked.get(p.vmId);
      const refused = vm ? stateError(vm, p.options.from) : notFound(p.vmId);
      if (refused || !vm) {
        refusals.set(p, refused ?? notFound(p.vmId));
        continue;
      }
      const chosen = this.#ledger.pick(vm, p.options);
      if (!chosen) return { planned, stopped: i };
      planned.push({ p, vm, host: chosen.host.id });
      for (const m of reservationMoves(vm, chosen.host.id)) {
        this.#ledger.adjust(m.hostId, m.pool, m.slots, m.active);
        this.#guesses.push(m);
      }
      locked.set(vm.id, { ...vm, hostId: chosen.host.id, powerState: "starting" });
    }
    return { planned, stopped: batch.length };
  }

  /**
   * Under the VM's lock: the chosen host (`target`, or the ledger's pick), locked and recounted — this is the
   * number no other reservation can change until the transaction commits — and the VM marked `starting` there.
   */
  async #attempt(
    tx: InventoryScope,
    locked: Vm,
    options: ReserveOptions,
    target: HostView | undefined,
  ): Promise<Attempt> {
    const chosen = target ?? this.#ledger.pick(locked, options);
    if (!chosen) return { ok: false, undecided: locked };
    const [host] = await tx.hosts.lockMany([chosen.host.id]);
    if (!host) return { ok: false, hostId: chosen.host.id, fresh: undefined };
    const [fresh] = await viewsOf(tx, [host]);
    if (!fresh) return { ok: false, hostId: host.id, fresh: undefined };
    const again = choosePlacement(locked, withoutOwnSlot(locked, [fresh]), { only: [host.id] });
    if (!again.chosen) return { ok: false, hostId: host.id, fresh };
    const reserved = await tx.vms.update(locked.id, { hostId: host.id, powerState: "starting" });
    return {
      ok: true,
      fresh,
      reservation: { vm: reserved, host, previous: { hostId: locked.hostId, powerState: locked.powerState } },
    };
  }

  /** The host as read under its lock replaces the ledger's, then the VM's move is counted. */
  #count(result: Extract<Attempt, { ok: true }>): void {
    this.#ledger.refresh(result.reservation.host.id, result.fresh);
    this.#countMove(result.reservation);
  }

  /** A reservation's move: its slot (if it held one) leaves its previous host and is taken at its new one. */
  #countMove(reservation: Reservation): void {
    const { vm, host, previous } = reservation;
    for (const m of reservationMoves({ securityMode: vm.securityMode, ...previous }, host.id)) {
      this.#ledger.adjust(m.hostId, m.pool, m.slots, m.active);
    }
  }

  async #reread(): Promise<void> {
    this.#ledger = new SlotLedger(await hostViews(this.#inventory));
    this.#readAt = performance.now();
    this.#stale = false;
  }

  /** One VM in transactions of its own: the path for what a group cannot decide, and after a failed group. */
  async #reserve(vmId: string, options: ReserveOptions): Promise<Reservation> {
    if (this.#stale) await this.#reread();
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
        if (!locked) throw notFound(vmId);
        const refused = stateError(locked, options.from);
        if (refused) throw refused;
        return this.#attempt(tx, locked, options, target);
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
          await this.#reread();
          continue;
        }
        throw noValidHost(vm, choice.verdicts);
      }
      attempt++;
      if (result.ok) {
        this.#count(result);
        return result.reservation;
      }
      // A lost race: re-plan from a fresh read of that host.
      this.#ledger.refresh(result.hostId, result.fresh);
    }
    throw keptChanging(vmId);
  }
}

function keptChanging(vmId: string): CiphervisorError {
  return new CiphervisorError(
    "CONFLICT",
    `could not reserve a host for VM ${vmId}: placement kept changing; retry`,
    {
      details: { retryable: true },
    },
  );
}

function notFound(vmId: string): CiphervisorError {
  return new CiphervisorError("NOT_FOUND", `VM ${vmId} not found`);
}

/** One VM's outcome in `reserveSlots`. */
export type SlotResult =
  | { readonly ok: true; readonly reservation: Reservation }
  | { readonly ok: false; readonly error: CiphervisorError };

/**
 * Reserves a slot for each of `vmIds` in order, over one read of the hosts (`Placer`), asked for all at once so they
 * commit in groups: the choices are those of `reserveSlot` called for each VM in turn, at a cost that does not grow
 * with the fleet per VM. A VM that cannot be reserved gets its error (NO_VALID_HOST, CONFLICT, NOT_FOUND) and the
 * rest go on.
 */
export async function reserveSlots(
  inventory: Inventory,
  vmIds: readonly string[],
  options: ReserveOptions,
): Promise<SlotResult[]> {
  const placer = await Placer.load(inventory);
  const settled = await Promise.allSettled(vmIds.map((id) => placer.reserve(id, options)));
  return settled.map((s) => {
    if (s.status === "fulfilled") return { ok: true, reservation: s.value };
    if (!isCiphervisorError(s.reason)) throw s.reason;
    return { ok: false, error: s.reason };
  });
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

/** CONFLICT when `vm` is not in one of the states `from`. */
function stateError(vm: Vm, from: readonly PowerState[]): CiphervisorError | undefined {
  if (from.includes(vm.powerState)) return undefined;
  return new CiphervisorError("CONFLICT", `VM '${vm.name}' is ${vm.powerState}`, {
    details: { vm: vm.id, powerState: vm.powerState },
  });
}
