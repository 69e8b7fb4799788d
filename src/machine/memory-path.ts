/**
 * The path every guest memory access takes while a vCPU runs (docs/sev-interface.md §13): guest page tables (C-bit per
 * page) → nested page table (hypervisor's) → the memory-encryption engine with the key slot of the VMCB's ASID →
 * DRAM. Private pages are decrypted on the way in and encrypted on the way out, at their *system physical* address,
 * deterministically; shared pages and non-SEV guests go to DRAM as plaintext.
 *
 * Like a real CPU this one works on cached plaintext: a page is decrypted on first touch in a run and written back
 * (re-encrypted) at #VMEXIT, when `flush` is called. The hypervisor only ever runs between runs, so what it reads
 * from DRAM is exactly what the guest's caches would have written back; and anything it wrote to DRAM (a replayed
 * page, a remapped frame) is what the guest reads next run. Caches are tagged by (frame, C-bit): a frame touched
 * both as private and as shared is two lines, as on hardware, with no coherence between them.
 *
 * On an SEV-SNP host (`rmp` given) every access that misses the TLB also passes the RMP checks after its nested
 * translation (APM vol. 2 section 15.36.10, Table 15-39; rmp.ts): a failed ownership or reverse-map check is a
 * #NPF with the RMP bit, an SNP-active guest's private access to an unvalidated page raises #VC
 * (`PageNotValidated`). Without an RMP nothing changes.
 */
import type { MemoryKeySlots } from "../sev/key-slots.ts";
import { PAGE_SIZE, type SystemMemory } from "./dram.ts";
import { decodeEntry, GUEST_VIRTUAL_LIMIT, pageTableIndices } from "./guest-paging.ts";
import type { NestedPageTable } from "./nested-page-table.ts";
import { PF_RMP, type Rmp, VC_PAGE_NOT_VALIDATED } from "./rmp.ts";

export const Access = { Read: 0, Write: 1, Fetch: 2 } as const;
export type Access = (typeof Access)[keyof typeof Access];

/** #PF inside the guest (vector 14): the guest's own page tables do not allow the access. */
export class GuestPageFault {
  readonly vector = 14;
  constructor(
    readonly gva: number,
    readonly errorCode: number,
  ) {}
}

/**
 * #NPF: the nested page table has no (writable) entry for a GPA. An automatic #VMEXIT in every mode, which shows
 * the hypervisor the faulting GPA (page granular) — the page-fault side channel SEV-ES does not close.
 * exit_info_1 = error code (bit 0 present, bit 1 write, bit 4 fetch, bit 31 an RMP check failed, bit 32 final
 * translation, bit 33 during the guest page walk, bit 34 effective C-bit 1, bits 35/36 RMP size / VMPL; rmp.ts),
 * exit_info_2 = GPA.
 */
export class NestedPageFault {
  constructor(
    readonly gpa: number,
    readonly errorCode: bigint,
  ) {}
}

/**
 * #VC PAGE_NOT_VALIDATED (vector 29, error code 0x404) inside an SNP-active guest: a private access reached a page
 * assigned to it at the right GPA that it has not validated (APM vol. 2 section 15.36.10); CR2 = the faulting GVA.
 */
export class PageNotValidated {
  readonly vector = 29;
  readonly errorCode = BigInt(VC_PAGE_NOT_VALIDATED);
  constructor(readonly gva: number) {}
}

interface CachedPage {
  data: Uint8Array;
  view: DataView;
  hpa: number;
  private: boolean;
  dirty: boolean;
}

interface TlbEntry {
  page: CachedPage;
  writable: boolean;
  gpa: number;
}

export interface MemoryPathConfig {
  memory: SystemMemory;
  keySlots: MemoryKeySlots;
  npt: NestedPageTable;
  asid: number;
  /** SEV active for this VMRUN (VMCB SEV bit): private pages use the ASID's key slot. */
  sev: boolean;
  cBit: number;
  /** GPA of the guest page directory. */
  cr3: number;
  /** The host's Reverse Map Table (SEV-SNP enabled host); its checks apply to every guest on the host. */
  rmp?: Rmp | undefined;
  /** SEV-SNP active for this guest (VMSA SEV_FEATURES bit 0): private accesses need validated, owned pages. */
  snpActive?: boolean;
}

export class MemoryPath {
  readonly #c: MemoryPathConfig;
  readonly #cache = new Map<number, CachedPage>();
  readonly #tlb = new Map<number, TlbEntry>();

  constructor(config: MemoryPathConfig) {
    this.#c = config;
  }

  /** The cached plaintext of a host frame, seen as private (decrypted with the ASID's key) or shared. */
  #line(hpa: number, priv: boolean): CachedPage {
    const key = hpa * 2 + (priv ? 1 : 0);
    let p = this.#cache.get(key);
    if (!p) {
      // `read` returns a fresh copy, which is ours to decrypt in place.
      const data = this.#c.memory.read(hpa, PAGE_SIZE);
      if (priv) this.#c.keySlots.decryptInto(this.#c.asid, hpa, data, data);
      p = {
        data,
        view: new DataView(data.buffer, data.byteOffset, PAGE_SIZE),
        hpa,
        private: priv,
        dirty: false,
      };
      this.#cache.set(key, p);
    }
    return p;
  }

  /** GPA → host frame through the NPT, or a nested page fault. */
  #nested(gpa: number, access: Access, duringWalk: boolean): number {
    const e = this.#c.npt.lookup(gpa);
    const kind = (access === Access.Write ? 2n : 0n) | (access === Access.Fetch ? 0x10n : 0n);
    const where = duringWalk ? 1n << 33n : 1n << 32n;
    if (!e) throw new NestedPageFault(gpa, kind | where);
    if (access === Access.Write && !e.writable) throw new NestedPageFault(gpa, kind | 1n | where);
    return e.hpa;
  }

  /**
   * The RMP checks of an access that reached `hpa` (rmp.ts `guestAccess`). Page-table accesses count as private
   * (effective C-bit 1) and, for guests that are not SNP-active, as writes (they may set Accessed/Dirty bits).
   */
  #rmpCheck(hpa: number, gpa: number, gva: number, priv: boolean, access: Access, duringWalk: boolean): void {
    const rmp = this.#c.rmp;
    if (!rmp) return;
    const snpActive = this.#c.snpActive ?? false;
    const r = rmp.guestAccess(hpa, {
      asid: this.#c.asid,
      gpa,
      snpActive,
      private: priv,
      write: access === Access.Write || (duringWalk && !snpActive),
    });
    if (r.ok) return;
    if (r.fault === "vc") throw new PageNotValidated(gva);
    const where = duringWalk ? 1n << 33n : 1n << 32n;
    const fetch = access === Access.Fetch ? 0x10n : 0n;
    throw new NestedPageFault(gpa - (gpa % PAGE_SIZE), r.errorBits | fetch | where | PF_RMP);
  }

  /** Reads a guest page-table entry: walks are always private (C-bit ignored). */
  #walkRead(gpa: number, gva: number): bigint {
    const page = gpa - (gpa % PAGE_SIZE);
    const hpa = this.#nested(page, Access.Read, true);
    this.#rmpCheck(hpa, page, gva, true, Access.Read, true);
    return this.#line(hpa, this.#c.sev).view.getBigUint64(gpa % PAGE_SIZE, true);
  }

  /**
   * GVA → (GPA, host frame) through the guest page tables and the NPT without the final access's RMP checks: the
   * operand translation of PVALIDATE and RMPADJUST, which do their own (rmp.ts). Faults like any access.
   */
  translateOperand(gva: number): { gpa: number; hpa: number } {
    if (!Number.isSafeInteger(gva) || gva < 0 || gva >= GUEST_VIRTUAL_LIMIT) throw new GuestPageFault(gva, 0);
    const { pd, pt } = pageTableIndices(gva);
    const cBit = this.#c.cBit;
    const pde = decodeEntry(this.#walkRead(this.#c.cr3 + pd * 8, gva), cBit);
    if (!pde.present) throw new GuestPageFault(gva, 0);
    const pte = decodeEntry(this.#walkRead(pde.gpa + pt * 8, gva), cBit);
    if (!pte.present) throw new GuestPageFault(gva, 0);
    return { gpa: pte.gpa, hpa: this.#nested(pte.gpa, Access.Read, false) };
  }

  /** Forgets every translation (not the cached data): after PVALIDATE / RMPADJUST changed what the checks say. */
  invalidateTlb(): void {
    this.#tlb.clear();
  }

  #translate(gva: number, access: Access): TlbEntry {
    const vpn = Math.floor(gva / PAGE_SIZE);
    const hit = this.#tlb.get(vpn * 3 + access);
    if (hit) return hit;
    const pfErr = (access === Access.Write ? 2 : 0) | (access === Access.Fetch ? 0x10 : 0);
    if (!Number.isSafeInteger(gva) || gva < 0 || gva >= GUEST_VIRTUAL_LIMIT)
      throw new GuestPageFault(gva, pfErr);
    const { pd, pt } = pageTableIndices(gva);
    const cBit = this.#c.cBit;
    const pde = decodeEntry(this.#walkRead(this.#c.cr3 + pd * 8, gva), cBit);
    if (!pde.present) throw new GuestPageFault(gva, pfErr);
    const pte = decodeEntry(this.#walkRead(pde.gpa + pt * 8, gva), cBit);
    if (!pte.present) throw new GuestPageFault(gva, pfErr);
    if (access === Access.Write && !(pte.writable && pde.writable)) throw new GuestPageFault(gva, pfErr | 1);
    // Code fetches are always private under SEV (§13.1); data follows the guest's C-bit.
    const priv = this.#c.sev && (access === Access.Fetch || pte.cBit);
    const hpa = this.#nested(pte.gpa, access, false);
    this.#rmpCheck(hpa, pte.gpa, gva, priv, access, false);
    const entry: TlbEntry = { page: this.#line(hpa, priv), writable: pte.writable, gpa: pte.gpa };
    this.#tlb.set(vpn * 3 + access, entry);
    return entry;
  }

  /** The guest-physical address and C-bit a guest-virtual address maps to (for diagnostics and tests). */
  resolve(gva: number, access: Access = Access.Read): { gpa: number; hpa: number; private: boolean } {
    const e = this.#translate(gva, access);
    return { gpa: e.gpa + (gva % PAGE_SIZE), hpa: e.page.hpa + (gva % PAGE_SIZE), private: e.page.private };
  }

  /** The cached page holding `gva` for an instruction fetch, and the offset of `gva` in it. */
  fetchPage(gva: number): { data: Uint8Array; view: DataView } {
    const p = this.#translate(gva, Access.Fetch).page;
    return { data: p.data, view: p.view };
  }

  readU64(gva: number): bigint {
    const off = gva % PAGE_SIZE;
    if (off <= PAGE_SIZE - 8) return this.#translate(gva, Access.Read).page.view.getBigUint64(off, true);
    return this.readSized(gva, 8);
  }

  writeU64(gva: number, v: bigint): void {
    const off = gva % PAGE_SIZE;
    if (off <= PAGE_SIZE - 8) {
      const p = this.#translate(gva, Access.Write).page;
      p.view.setBigUint64(off, BigInt.asUintN(64, v), true);
      p.dirty = true;
      return;
    }
    this.writeSized(gva, 8, v);
  }

  /** A little-endian value of 1, 2, 4 or 8 bytes, zero-extended. */
  readSized(gva: number, size: number): bigint {
    const bytes = this.read(gva, size);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  writeSized(gva: number, size: number, v: bigint): void {
    const bytes = new Uint8Array(size);
    let x = BigInt.asUintN(64, v);
    for (let i = 0; i < size; i++, x >>= 8n) bytes[i] = Number(x & 0xffn);
    this.write(gva, bytes);
  }

  read(gva: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let o = 0;
    while (o < length) {
      const a = gva + o;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, length - o);
      out.set(this.#translate(a, Access.Read).page.data.subarray(off, off + n), o);
      o += n;
    }
    return out;
  }

  write(gva: number, data: Uint8Array): void {
    // Translate every page first, so a fault leaves memory untouched (the instruction restarts cleanly).
    const pages: CachedPage[] = [];
    for (let o = 0; o < data.length; ) {
      const a = gva + o;
      pages.push(this.#translate(a, Access.Write).page);
      o += PAGE_SIZE - (a % PAGE_SIZE);
    }
    let o = 0;
    for (const p of pages) {
      const off = (gva + o) % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - o);
      p.data.set(data.subarray(o, o + n), off);
      p.dirty = true;
      o += n;
    }
  }

  /**
   * Writes every dirty line back to DRAM (encrypting private ones at their system physical address) and forgets
   * all cached plaintext and translations. Called at #VMEXIT.
   */
  flush(): void {
    for (const p of this.#cache.values()) {
      if (!p.dirty) continue;
      // The line is forgotten below, so its plaintext is encrypted in place rather than into a fresh page.
      if (p.private) this.#c.keySlots.encryptInto(this.#c.asid, p.hpa, p.data, p.data);
      this.#c.memory.write(p.hpa, p.data);
    }
    this.#cache.clear();
    this.#tlb.clear();
  }
}
