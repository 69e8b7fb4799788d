/**
 * The nested page table (NPT): guest-physical → host-physical, 4 KiB pages, owned and edited by the hypervisor.
 * SEV and SEV-ES give the guest no say over it and no integrity check of it (docs/threat-model.md §1.1: "the nested page
 * table is owned by the hypervisor"); remapping a GPA to another frame — SEVered — is one `map` call. SNP's RMP is
 * what later closed that gap (rmp.ts: the guest's next access to the GPA is a #NPF with the RMP bit).
 *
 * A plain map rather than a radix tree in DRAM: the walk's cost and layout are not what the emulator is about, and
 * the CPU flushes its TLB at every VMRUN, so edits take effect at the next run exactly as after an INVLPGA.
 */
import { PAGE_SIZE } from "./dram.ts";

export interface NptEntry {
  /** System physical address of the 4 KiB frame. */
  hpa: number;
  /** A write through a read-only entry is a nested page fault (the hypervisor's write tracking). */
  writable: boolean;
}

function checkPage(what: string, a: number): void {
  if (!Number.isSafeInteger(a) || a < 0 || a % PAGE_SIZE !== 0) {
    throw new RangeError(`${what} 0x${a.toString(16)} is not a 4 KiB-aligned address`);
  }
}

export class NestedPageTable {
  readonly #entries = new Map<number, NptEntry>();

  /** Maps the guest page at `gpa` to the host frame at `hpa` (both 4 KiB aligned). */
  map(gpa: number, hpa: number, opts: { writable?: boolean } = {}): void {
    checkPage("GPA", gpa);
    checkPage("HPA", hpa);
    this.#entries.set(gpa / PAGE_SIZE, { hpa, writable: opts.writable ?? true });
  }

  unmap(gpa: number): void {
    checkPage("GPA", gpa);
    this.#entries.delete(gpa / PAGE_SIZE);
  }

  /** The entry of the page containing `gpa`, if mapped. */
  lookup(gpa: number): NptEntry | undefined {
    return this.#entries.get(Math.floor(gpa / PAGE_SIZE));
  }

  /** The system physical address `gpa` maps to, or undefined. */
  translate(gpa: number): number | undefined {
    const e = this.lookup(gpa);
    return e === undefined ? undefined : e.hpa + (gpa % PAGE_SIZE);
  }

  /** Every mapping as [gpa, entry], in GPA order. */
  entries(): [number, NptEntry][] {
    return [...this.#entries]
      .sort((x, y) => x[0] - y[0])
      .map(([gfn, e]): [number, NptEntry] => [gfn * PAGE_SIZE, { ...e }]);
  }
}
