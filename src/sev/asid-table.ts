/**
 * The firmware's per-ASID bookkeeping (docs/sev-interface.md §7.2–7.4; AMD's `activate_common`, `sev_mcmd_deactivate`,
 * `mcmd_df_flush_common`):
 *
 * - ES guests use ASIDs [1, min_sev_asid); plain SEV guests use [min_sev_asid, max_asid] (docs/sev-interface.md §15 pitfall 13).
 * - An ASID is clean, in use (bound to a guest key), or dirty (deactivated; caches may still hold its lines).
 * - ACTIVATE needs a clean ASID (dirty → DFFLUSH_REQUIRED) not owned by another key (→ ASID_OWNED).
 * - DEACTIVATE makes the ASID dirty and clears every core's "WBINVD done" flag.
 * - DF_FLUSH needs WBINVD on every core since the last DEACTIVATE (else WBINVD_REQUIRED); then dirty → clean.
 */
import { SevStatus, type SevStatusCode } from "./status.ts";

export type AsidState = "clean" | "in-use" | "dirty";

interface AsidEntry {
  state: AsidState;
  /** Identifies the key bound to the ASID; guests sharing a key (LAUNCH_START with a handle) share it. */
  keyGroup: number;
  users: Set<number>;
}

export class AsidTable {
  readonly #entries = new Map<number, AsidEntry>();
  readonly #wbinvdDone: boolean[];

  constructor(
    readonly maxAsid: number,
    readonly minSevAsid: number,
    cores: number,
  ) {
    this.#wbinvdDone = new Array<boolean>(cores).fill(true);
  }

  get cores(): number {
    return this.#wbinvdDone.length;
  }

  state(asid: number): AsidState {
    return this.#entries.get(asid)?.state ?? "clean";
  }

  /** INVALID_ASID unless `asid` is in range and of the guest's class (ES vs plain SEV). */
  checkClass(asid: number, es: boolean): SevStatusCode {
    if (!Number.isInteger(asid) || asid < 1 || asid > this.maxAsid) return SevStatus.INVALID_ASID;
    const isEsAsid = asid < this.minSevAsid;
    return isEsAsid === es ? SevStatus.SUCCESS : SevStatus.INVALID_ASID;
  }

  /** The status ACTIVATE would get for binding `keyGroup` to `asid`, without changing anything. */
  checkActivate(asid: number, es: boolean, keyGroup: number): SevStatusCode {
    const cls = this.checkClass(asid, es);
    if (cls !== SevStatus.SUCCESS) return cls;
    const e = this.#entries.get(asid);
    if (!e || e.state === "clean") return SevStatus.SUCCESS;
    if (e.state === "dirty") return SevStatus.DFFLUSH_REQUIRED;
    return e.keyGroup === keyGroup ? SevStatus.SUCCESS : SevStatus.ASID_OWNED;
  }

  activate(asid: number, keyGroup: number, handle: number): void {
    const e = this.#entries.get(asid);
    if (e?.state === "in-use") {
      e.users.add(handle);
      return;
    }
    this.#entries.set(asid, { state: "in-use", keyGroup, users: new Set([handle]) });
  }

  /** Unbinds `handle`; returns true when that was the last user and the ASID became dirty. */
  deactivate(asid: number, handle: number): boolean {
    const e = this.#entries.get(asid);
    if (e?.state !== "in-use") return false;
    e.users.delete(handle);
    this.#wbinvdDone.fill(false);
    if (e.users.size > 0) return false;
    e.state = "dirty";
    return true;
  }

  wbinvd(core: number): void {
    if (core < 0 || core >= this.#wbinvdDone.length) throw new RangeError(`no core ${core}`);
    this.#wbinvdDone[core] = true;
  }

  checkDfFlush(): SevStatusCode {
    return this.#wbinvdDone.every(Boolean) ? SevStatus.SUCCESS : SevStatus.WBINVD_REQUIRED;
  }

  dfFlush(): number[] {
    const cleaned: number[] = [];
    for (const [asid, e] of this.#entries) {
      if (e.state === "dirty") {
        this.#entries.delete(asid);
        cleaned.push(asid);
      }
    }
    return cleaned;
  }

  /** Forget everything (SHUTDOWN). */
  reset(): void {
    this.#entries.clear();
    this.#wbinvdDone.fill(true);
  }

  /** ASIDs per state, for status reports and tests. */
  snapshot(): { inUse: number[]; dirty: number[]; wbinvdDone: boolean[] } {
    const inUse: number[] = [];
    const dirty: number[] = [];
    for (const [asid, e] of [...this.#entries].sort((a, b) => a[0] - b[0])) {
      if (e.state === "in-use") inUse.push(asid);
      else if (e.state === "dirty") dirty.push(asid);
    }
    return { inUse, dirty, wbinvdDone: [...this.#wbinvdDone] };
  }
}
