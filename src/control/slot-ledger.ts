/**
 * Placement of many VMs against one read of the hosts: the views as read, the slots handed out (and given back)
 * since counted in memory, and for each VM shape the hosts it could use kept ordered by placement's rule — the most
 * free slots in the VM's pool (ordinary VMs: the fewest powered-on VMs), then the host name — in a binary heap. A
 * choice reads the heap's top and checks that one host; taking a slot moves only that host. So a batch costs
 * O(hosts) once per VM shape and O(log hosts) per VM, where `choosePlacement` checks and sorts every host per VM
 * (docs/performance.md, "Placement of 10,000 new SEV-ES VMs over 10,000 hosts").
 *
 * `choose` returns what `choosePlacement(vm, ledger.views(), options)` returns: the same host, and — when nothing
 * fits — the same verdicts, from `choosePlacement` itself. It is pure; `capacity.ts` reads the views and reserves
 * the chosen slot under a lock.
 */
import { hostFindings, type PoolUse, poolOf, poolSizes, SLOT_STATES, type VmShape } from "./compat.ts";
import type { Host, Vm } from "./inventory/types.ts";
import { type CandidateVerdict, choosePlacement, type HostView, type PlaceOptions } from "./placement.ts";

type Pool = keyof PoolUse;

/** One host as the ledger counts it; `rank` is its place in name order (ties: the order the views came in). */
interface Slot {
  readonly rank: number;
  host: Host;
  /** Each pool's size on the host, kept beside the counts so that ordering reads two numbers. */
  size: Record<Pool, number>;
  used: Record<Pool, number>;
  active: number;
  gone: boolean;
}

/** Free slots of `pool` on `s`, as `freeSlots` counts them on a view. */
function free(s: Slot, pool: Pool): number {
  return s.size[pool] - s.used[pool];
}

/** The outcome of `choose`: a host, or why none fits (`choosePlacement`'s verdicts, one per candidate). */
export type LedgerChoice =
  | { readonly chosen: HostView; readonly verdicts?: undefined }
  | { readonly chosen: undefined; readonly verdicts: CandidateVerdict[] };

/** How many VM shapes keep their ordered candidates at once (a bulk request has a handful). */
const MAX_SHAPES = 32;

/**
 * What the host checks read of a VM besides its identity: VMs with the same key pass and fail the same checks on
 * every host (the messages name the VM, the verdict does not depend on it).
 */
export function shapeKey(vm: VmShape): string {
  return JSON.stringify([vm.securityMode, vm.policy, vm.attestationState ?? null, vm.spec]);
}

/** A binary heap of slots with their positions, so one slot can move or leave in O(log n). */
class SlotHeap {
  readonly #items: Slot[] = [];
  readonly #pos: Int32Array;

  constructor(
    size: number,
    readonly before: (a: Slot, b: Slot) => boolean,
  ) {
    this.#pos = new Int32Array(size).fill(-1);
  }

  has(s: Slot): boolean {
    return this.#pos[s.rank] !== -1;
  }

  peek(): Slot | undefined {
    return this.#items[0];
  }

  insert(s: Slot): void {
    if (this.has(s)) {
      this.update(s);
      return;
    }
    this.#items.push(s);
    this.#pos[s.rank] = this.#items.length - 1;
    this.#up(this.#items.length - 1);
  }

  remove(s: Slot): void {
    const i = this.#pos[s.rank] ?? -1;
    if (i < 0) return;
    const last = this.#items.pop() as Slot;
    this.#pos[s.rank] = -1;
    if (last === s) return;
    this.#items[i] = last;
    this.#pos[last.rank] = i;
    this.#down(this.#up(i));
  }

  /** Restores the order after `s`'s counts changed. */
  update(s: Slot): void {
    const i = this.#pos[s.rank] ?? -1;
    if (i >= 0) this.#down(this.#up(i));
  }

  #swap(i: number, j: number): void {
    const a = this.#items[i] as Slot;
    const b = this.#items[j] as Slot;
    this.#items[i] = b;
    this.#items[j] = a;
    this.#pos[b.rank] = i;
    this.#pos[a.rank] = j;
  }

  #up(i: number): number {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(this.#items[i] as Slot, this.#items[parent] as Slot)) break;
      this.#swap(i, parent);
      i = parent;
    }
    return i;
  }

  #down(i: number): void {
    const n = this.#items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let top = i;
      if (l < n && this.before(this.#items[l] as Slot, this.#items[top] as Slot)) top = l;
      if (r < n && this.before(this.#items[r] as Slot, this.#items[top] as Slot)) top = r;
      if (top === i) return;
      this.#swap(i, top);
      i = top;
    }
  }
}

/** The candidates of one VM shape: the hosts that pass every check but the free slot, best first. */
interface Shape {
  /** A VM of the shape: the checks run against it. */
  readonly vm: VmShape;
  readonly pool: Pool | undefined;
  readonly heap: SlotHeap;
}

/** Placement's order: most free slots of `pool` (ordinary VMs: fewest powered-on VMs), then name. */
function order(pool: Pool | undefined): (a: Slot, b: Slot) => boolean {
  if (pool === undefined) return (a, b) => a.active < b.active || (a.active === b.active && a.rank < b.rank);
  return (a, b) => {
    const fa = free(a, pool);
    const fb = free(b, pool);
    return fa > fb || (fa === fb && a.rank < b.rank);
  };
}

function viewOf(s: Slot): HostView {
  return { host: s.host, used: { ...s.used }, active: s.active };
}

/** Every check but the free slot: what stays true of a host while the batch takes its slots. */
function structurallyFits(s: Slot, vm: VmShape): boolean {
  return hostFindings(s.host, s.used, vm, { needSlot: false }).length === 0;
}

export class SlotLedger {
  #slots: Slot[] = [];
  readonly #byId = new Map<string, Slot>();
  readonly #shapes = new Map<string, Shape>();

  constructor(views: readonly HostView[]) {
    this.#index(views);
  }

  #index(views: readonly HostView[]): void {
    const sorted = [...views].sort((a, b) =>
      a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0,
    );
    this.#slots = sorted.map((v, rank) => ({
      rank,
      host: v.host,
      size: poolSizes(v.host),
      used: { ...v.used },
      active: v.active,
      gone: false,
    }));
    this.#byId.clear();
    for (const s of this.#slots) this.#byId.set(s.host.id, s);
    this.#shapes.clear();
  }

  /** Every host with the slots counted so far, in name order. */
  views(): HostView[] {
    return this.#slots.filter((s) => !s.gone).map(viewOf);
  }

  /**
   * Counts `slots` more taken slots of `pool` (none for an ordinary VM) and `active` more powered-on VMs at
   * `hostId`; negative numbers give them back. Unknown hosts are ignored.
   */
  adjust(hostId: string | null, pool: Pool | undefined, slots: number, active: number): void {
    const s = hostId === null ? undefined : this.#byId.get(hostId);
    if (!s || s.gone) return;
    if (pool !== undefined) s.used[pool] = Math.max(0, s.used[pool] + slots);
    s.active = Math.max(0, s.active + active);
    this.#moved(s);
  }

  /** Replaces one host's facts and counts with a fresh read (`undefined`: the host no longer exists). */
  refresh(hostId: string, view: HostView | undefined): void {
    const s = this.#byId.get(hostId);
    if (!s) return;
    if (view === undefined) {
      s.gone = true;
      for (const shape of this.#shapes.values()) shape.heap.remove(s);
      return;
    }
    if (view.host.name !== s.host.name) {
      // A rename changes the name order: index afresh.
      this.#index(
        this.#slots
          .filter((x) => !x.gone && x !== s)
          .map(viewOf)
          .concat([view]),
      );
      return;
    }
    s.host = view.host;
    s.size = poolSizes(view.host);
    s.used = { ...view.used };
    s.active = view.active;
    s.gone = false;
    for (const shape of this.#shapes.values()) {
      if (structurallyFits(s, shape.vm)) shape.heap.insert(s);
      else shape.heap.remove(s);
    }
  }

  #moved(s: Slot): void {
    for (const shape of this.#shapes.values()) shape.heap.update(s);
  }

  #shape(vm: VmShape): Shape {
    const key = shapeKey(vm);
    const known = this.#shapes.get(key);
    if (known) return known;
    const pool = poolOf(vm.securityMode);
    const heap = new SlotHeap(this.#slots.length, order(pool));
    for (const s of this.#slots) if (!s.gone && structurallyFits(s, vm)) heap.insert(s);
    const shape: Shape = { vm, pool, heap };
    if (this.#shapes.size >= MAX_SHAPES) {
      const oldest = this.#shapes.keys().next().value;
      if (oldest !== undefined) this.#shapes.delete(oldest);
    }
    this.#shapes.set(key, shape);
    return shape;
  }

  /**
   * The host `choosePlacement(vm, views(), options)` chooses, without the slot `vm` itself holds (a resumed
   * power-on finds its own `starting` reservation), or why none fits. `only`, `exclude` and `needSlot: false`
   * (single moves, not batches) are decided by `choosePlacement` over every view.
   */
  choose(vm: LedgerVm, options: PlaceOptions = {}): LedgerChoice {
    return this.#withoutOwnSlot(vm, (pool) => {
      const fast = this.#fast(vm, pool, options);
      if (fast) return { chosen: fast };
      const d = choosePlacement(vm, this.views(), options);
      return d.chosen ? { chosen: d.chosen } : { chosen: undefined, verdicts: d.verdicts };
    });
  }

  /**
   * `choose`'s host when the ordered candidates decide it in O(log hosts); undefined when they do not (nothing
   * fits, or options only `choose` handles): then `choose` gives the answer, at the cost of every host's checks.
   */
  pick(vm: LedgerVm, options: PlaceOptions = {}): HostView | undefined {
    return this.#withoutOwnSlot(vm, (pool) => this.#fast(vm, pool, options));
  }

  #withoutOwnSlot<T>(vm: LedgerVm, fn: (pool: Pool | undefined) => T): T {
    const pool = poolOf(vm.securityMode);
    const holds = vm.powerState !== undefined && SLOT_STATES.includes(vm.powerState);
    const own = pool !== undefined && holds && vm.hostId ? this.#byId.get(vm.hostId) : undefined;
    const held = own && pool !== undefined && own.used[pool] > 0 ? own : undefined;
    if (held && pool !== undefined) {
      held.used[pool] -= 1;
      this.#moved(held);
    }
    try {
      return fn(pool);
    } finally {
      if (held && pool !== undefined) {
        held.used[pool] += 1;
        this.#moved(held);
      }
    }
  }

  #fast(vm: VmShape, pool: Pool | undefined, options: PlaceOptions): HostView | undefined {
    if (options.only !== undefined || (options.exclude?.length ?? 0) > 0 || options.needSlot === false) {
      return undefined;
    }
    const shape = this.#shape(vm);
    const room = (s: Slot) => pool === undefined || free(s, pool) > 0;
    // The one host about to be chosen gets every check with its slot: a disagreement with the heap (a check that
    // came to depend on more than the free slot) leaves the choice to the full decision rather than choose wrongly.
    const fits = (s: Slot) => hostFindings(s.host, s.used, vm, { needSlot: true }).length === 0;
    const preferred = options.prefer ? this.#byId.get(options.prefer) : undefined;
    if (preferred && !preferred.gone && shape.heap.has(preferred) && room(preferred)) {
      return fits(preferred) ? viewOf(preferred) : undefined;
    }
    const top = shape.heap.peek();
    return top && room(top) && fits(top) ? viewOf(top) : undefined;
  }
}

/** A VM as the ledger places it: its shape, and where and how it is now (for the slot it may already hold). */
export type LedgerVm = VmShape & Partial<Pick<Vm, "hostId" | "powerState">>;
