/**
 * Key slots per host and pool while a plan (or a bulk restart's admission) takes and gives them one VM after
 * another: the current use from the inventory, what the plan's own earlier steps took, and the VMs registered per
 * pool. Placement decides from `views()`, so a plan's later VMs see the slots its earlier ones took.
 */

import { allHosts, summarizeUsage } from "../capacity.ts";
import { NO_POOL_USE, POOLS, type PoolUse, poolOf, poolSize, type VmShape } from "../compat.ts";
import type { InventoryScope } from "../inventory/inventory.ts";
import type { Host, SecurityMode, VmUsage } from "../inventory/types.ts";
import type { HostView, PlaceOptions } from "../placement.ts";
import { type LedgerChoice, SlotLedger } from "../slot-ledger.ts";
import type { PoolImpact } from "./types.ts";

interface Entry {
  readonly host: Host;
  readonly before: PoolUse;
  used: PoolUse;
  /** Slots admitted for the plan's own restarts; freed slots are not counted back (see `admit`). */
  held: PoolUse;
  readonly vmsBefore: PoolUse;
  vms: PoolUse;
  active: number;
  touched: boolean;
}

const ZERO: PoolUse = NO_POOL_USE;

function add(p: PoolUse, pool: keyof PoolUse, n: number): PoolUse {
  return { ...p, [pool]: Math.max(0, p[pool] + n) };
}

export class CapacityLedger {
  readonly #hosts = new Map<string, Entry>();
  /** The hosts ordered for placement, built at the first `choose` and kept in step with every change after. */
  #ordered: SlotLedger | undefined;

  private constructor(hosts: readonly Host[], usage: readonly VmUsage[]) {
    const use = summarizeUsage(usage);
    const registered = new Map<string, PoolUse>();
    for (const u of usage) {
      const pool = poolOf(u.securityMode);
      if (pool === undefined) continue;
      registered.set(u.hostId, add(registered.get(u.hostId) ?? ZERO, pool, u.count));
    }
    for (const host of hosts) {
      const u = use.get(host.id);
      const used = u?.used ?? ZERO;
      const vms = registered.get(host.id) ?? ZERO;
      this.#hosts.set(host.id, {
        host,
        before: used,
        used,
        held: used,
        vmsBefore: vms,
        vms,
        active: u?.active ?? 0,
        touched: false,
      });
    }
  }

  /** The ledger of every host as the inventory (or the transaction `scope`) has it now. */
  static async load(scope: Pick<InventoryScope, "hosts" | "vms">): Promise<CapacityLedger> {
    return new CapacityLedger(await allHosts(scope), await scope.vms.usage());
  }

  /**
   * The ledger a plan needs for `vms`: none of the inventory when there is no VM (a selector that matches nothing
   * touches no host, so its plan has no capacity rows), else `load`. Reading every host and counting every VM is
   * most of a small plan's cost on a large fleet.
   */
  static async for(
    scope: Pick<InventoryScope, "hosts" | "vms">,
    vms: readonly unknown[],
  ): Promise<CapacityLedger> {
    if (vms.length === 0) return new CapacityLedger([], []);
    return CapacityLedger.load(scope);
  }

  host(id: string | null): Host | undefined {
    return id === null ? undefined : this.#hosts.get(id)?.host;
  }

  /** Placement's view of every host with the plan's steps so far counted. */
  views(): HostView[] {
    return [...this.#hosts.values()].map((e) => ({ host: e.host, used: e.used, active: e.active }));
  }

  /**
   * Where placement puts `vm` now: `choosePlacement(vm, views(), options)`, decided from hosts kept in placement's
   * order (`SlotLedger`), so a plan over 10,000 VMs does not check and sort every host per VM.
   */
  choose(vm: VmShape, options: PlaceOptions = {}): LedgerChoice {
    this.#ordered ??= new SlotLedger(this.views());
    // As `choosePlacement` over `views()`: a slot the VM may hold stays counted (`hostId: null`).
    return this.#ordered.choose({ ...vm, hostId: null }, options);
  }

  /** Tells the ordered hosts that `e`'s counts changed. */
  #sync(e: Entry): void {
    this.#ordered?.refresh(e.host.id, { host: e.host, used: e.used, active: e.active });
  }

  #entry(hostId: string | null): Entry | undefined {
    if (hostId === null) return undefined;
    const e = this.#hosts.get(hostId);
    if (e) e.touched = true;
    return e;
  }

  /** A VM of `mode` powers on at `hostId`: it takes a slot of its pool. */
  take(hostId: string | null, mode: SecurityMode): void {
    const e = this.#entry(hostId);
    if (!e) return;
    const pool = poolOf(mode);
    if (pool !== undefined) {
      e.used = add(e.used, pool, 1);
      e.held = add(e.held, pool, 1);
    }
    e.active += 1;
    this.#sync(e);
  }

  /** A VM of `mode` powers off at `hostId`: its slot returns to the pool. */
  release(hostId: string | null, mode: SecurityMode): void {
    const e = this.#entry(hostId);
    if (!e) return;
    const pool = poolOf(mode);
    if (pool !== undefined) e.used = add(e.used, pool, -1);
    e.active = Math.max(0, e.active - 1);
    this.#sync(e);
  }

  /** `delta` VMs of `mode` are registered at (or, negative, leave) `hostId`. */
  register(hostId: string | null, mode: SecurityMode, delta: number): void {
    const e = this.#entry(hostId);
    const pool = poolOf(mode);
    if (e && pool !== undefined) e.vms = add(e.vms, pool, delta);
  }

  /**
   * Admits a running VM's restart from mode `from` to mode `to` on its host: true when the pool `to` draws from
   * has a slot for it. A VM that stays in its pool keeps its own slot. Slots a restart frees in another pool are
   * not lent to later VMs: the restarts run in parallel and may finish in any order, so only a slot that is free
   * now, and not promised to an earlier restart, is one the VM is sure to find when it starts again.
   */
  admit(
    hostId: string,
    from: SecurityMode,
    to: SecurityMode,
  ): { ok: true } | { ok: false; size: number; held: number } {
    const e = this.#entry(hostId);
    if (!e) return { ok: true };
    const toPool = poolOf(to);
    const fromPool = poolOf(from);
    if (toPool !== undefined && toPool !== fromPool) {
      const size = poolSize(e.host, toPool);
      if (size - e.held[toPool] < 1) return { ok: false, size, held: e.held[toPool] };
      e.held = add(e.held, toPool, 1);
      e.used = add(e.used, toPool, 1);
    }
    if (fromPool !== undefined && fromPool !== toPool) e.used = add(e.used, fromPool, -1);
    this.#sync(e);
    this.register(hostId, from, -1);
    this.register(hostId, to, 1);
    return { ok: true };
  }

  /**
   * The pools of every host the plan touched, in host-name order: SEV-ES and SEV always, SEV-SNP where the host has
   * an SNP pool or SNP VMs (most hosts have neither, and a row of zeros would only be noise).
   */
  rows(): PoolImpact[] {
    const out: PoolImpact[] = [];
    const touched = [...this.#hosts.values()].filter((e) => e.touched);
    touched.sort((a, b) => (a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0));
    for (const e of touched) {
      for (const { pool: k, mode } of POOLS) {
        const size = poolSize(e.host, k);
        if (k === "snp" && size === 0 && e.vmsBefore.snp === 0 && e.vms.snp === 0) continue;
        const pool = mode as PoolImpact["pool"];
        out.push({
          hostId: e.host.id,
          host: e.host.name,
          pool,
          size,
          used: e.before[k],
          usedAfter: e.used[k],
          vms: e.vmsBefore[k],
          vmsAfter: e.vms[k],
        });
      }
    }
    return out;
  }
}
