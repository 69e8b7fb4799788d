/**
 * The guest's own page tables: a deliberately small x86-like format, because what matters for SEV is one bit per
 * page — the C-bit (docs/sev-interface.md §13.1). A guest page-table entry with C = 1 makes its page *private* (encrypted
 * with the VM's key slot), C = 0 makes it *shared* (plaintext, readable by the hypervisor). Instruction fetches and
 * page-table walks are always private, whatever the entries say.
 *
 * Format (two levels, 4 KiB pages, a 1 GiB guest-virtual space):
 * - CR3 holds the GPA of the page directory: 512 u64 entries, entry i maps GVA [i·2 MiB, (i+1)·2 MiB).
 * - A present directory entry holds the GPA of a page table: 512 u64 PTEs, one per 4 KiB page.
 * - Entry bits: 0 present, 1 writable, `cBit` (the CPU model's C-bit position: 47 or 51) the C-bit,
 *   bits [cBit−1:12] the GPA of the next level or of the page.
 */

export const GUEST_VIRTUAL_LIMIT = 1 << 30;
export const PTE_PRESENT = 1n;
export const PTE_WRITABLE = 2n;
export const ENTRIES_PER_TABLE = 512;

/** Address bits of an entry for a given C-bit position: [cBit−1:12]. */
export function entryAddressMask(cBit: number): bigint {
  return ((1n << BigInt(cBit)) - 1n) & ~0xfffn;
}

/** A page-table entry (directory entries use the same format; their C-bit is ignored: walks are private). */
export function makeEntry(gpa: number, opts: { cBit: number; private: boolean; writable?: boolean }): bigint {
  let e = (BigInt(gpa) & entryAddressMask(opts.cBit)) | PTE_PRESENT;
  if (opts.writable ?? true) e |= PTE_WRITABLE;
  if (opts.private) e |= 1n << BigInt(opts.cBit);
  return e;
}

export interface DecodedEntry {
  present: boolean;
  writable: boolean;
  cBit: boolean;
  gpa: number;
}

export function decodeEntry(e: bigint, cBit: number): DecodedEntry {
  return {
    present: (e & PTE_PRESENT) !== 0n,
    writable: (e & PTE_WRITABLE) !== 0n,
    cBit: ((e >> BigInt(cBit)) & 1n) === 1n,
    gpa: Number(e & entryAddressMask(cBit)),
  };
}

/** Directory index and table index of a guest-virtual address. */
export function pageTableIndices(gva: number): { pd: number; pt: number } {
  return { pd: Math.floor(gva / (1 << 21)) & 511, pt: Math.floor(gva / 4096) & 511 };
}
