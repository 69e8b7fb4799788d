/**
 * The host's ASID allocator, as KVM does it (docs/sev-interface.md §7.2, §7.4; torvalds/linux `sev_asid_new`,
 * `sev_flush_asids`): ES guests take from [1, min_sev_asid), plain SEV guests from [min_sev_asid, max]; SEV-SNP
 * guests share the ES range, or under Ciphertext Hiding take [1, N] while ES keeps [N+1, min_sev_asid) (Linux 6.18).
 * The pools never borrow from each other. A released ASID waits in a reclaim set until WBINVD on every core and DF_FLUSH;
 * when a pool is empty the allocator tries exactly one recycle, then refuses with a typed capacity error.
 */
import { CiphervisorError } from "../errors.ts";
import type { SevClient } from "./client.ts";

/**
 * `snp` is its own range under Ciphertext Hiding and the `es` range otherwise (SEV-ES and SEV-SNP guests then share
 * it, as KVM does: one in-use set, so an ASID is never handed out twice).
 */
export type AsidPool = "es" | "sev" | "snp";

const POOL_NAME: Readonly<Record<AsidPool, string>> = { es: "SEV-ES", sev: "SEV", snp: "SEV-SNP" };

export interface PoolUsage {
  pool: AsidPool;
  first: number;
  last: number;
  size: number;
  inUse: number;
  /** Released but not yet flushed. */
  reclaim: number;
  free: number;
}

export class AsidAllocator {
  readonly #inUse = new Set<number>();
  readonly #reclaim = new Set<number>();

  constructor(private readonly client: SevClient) {}

  /** An empty pool is first = last = 0: the loops below then visit nothing. */
  #range(pool: AsidPool): { first: number; last: number } {
    const p = this.client.sp.pools[pool];
    return p.size === 0 ? { first: 1, last: 0 } : { first: p.first, last: p.last };
  }

  #findFree(pool: AsidPool): number | undefined {
    const { first, last } = this.#range(pool);
    for (let a = first; a <= last; a++) if (!this.#inUse.has(a) && !this.#reclaim.has(a)) return a;
    return undefined;
  }

  /** WBINVD on every core, then DF_FLUSH: every released ASID becomes reusable. */
  flush(): void {
    this.client.sp.wbinvdAllCores();
    this.client.dfFlush();
    this.#reclaim.clear();
  }

  /**
   * The lowest free ASID of `pool`. Throws ASID_POOL_EXHAUSTED naming the pool and its usage when none is left
   * even after one recycle.
   */
  allocate(pool: AsidPool): number {
    let asid = this.#findFree(pool);
    if (asid === undefined && this.#reclaim.size > 0) {
      this.flush();
      asid = this.#findFree(pool);
    }
    if (asid === undefined) {
      const u = this.usage(pool);
      const what = POOL_NAME[pool];
      const reason =
        u.size === 0
          ? `this host has no ${what} ASIDs (BIOS min_sev_asid = ${this.client.sp.minSevAsid})`
          : `all ${u.size} ${what} ASIDs (${u.first}..${u.last}) are in use`;
      throw new CiphervisorError("ASID_POOL_EXHAUSTED", `no free ${what} ASID: ${reason}`, {
        details: { ...u },
      });
    }
    this.#inUse.add(asid);
    return asid;
  }

  /** Returns an ASID after its guest was DEACTIVATEd; `flushNow` recycles it at once (WBINVD + DF_FLUSH). */
  release(asid: number, flushNow = false): void {
    if (!this.#inUse.delete(asid)) return;
    this.#reclaim.add(asid);
    if (flushNow) this.flush();
  }

  usage(pool: AsidPool): PoolUsage {
    const { first, last } = this.#range(pool);
    const size = Math.max(0, last - first + 1);
    if (size === 0) return { pool, first: 0, last: 0, size, inUse: 0, reclaim: 0, free: 0 };
    let inUse = 0;
    let reclaim = 0;
    for (const a of this.#inUse) if (a >= first && a <= last) inUse++;
    for (const a of this.#reclaim) if (a >= first && a <= last) reclaim++;
    return { pool, first, last, size, inUse, reclaim, free: size - inUse - reclaim };
  }
}
