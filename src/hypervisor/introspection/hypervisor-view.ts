/**
 * The hypervisor's view of a guest: exactly what AMD hardware lets a hypervisor read and write, and nothing else
 * (docs/sev-interface.md §12.5 "Hypervisor visibility"; docs/threat-model.md §1.1; docs/architecture.md §4.2 "the hypervisor reads guest
 * state only through hypervisor/introspection").
 *
 * It can read and write: DRAM as stored (ciphertext for private pages, plaintext for shared ones and for non-SEV
 * guests), the nested page table it owns, the VMCB (control area; plus, for plain SEV and non-SEV guests, the save
 * area with every register in plaintext), the encrypted VMSA page of an SEV-ES guest, and the GHCB the guest shares.
 * It cannot decrypt anything: this class holds no key slot and no firmware handle, and there is no method to ask.
 *
 * @example
 * ```ts
 * const view = new HypervisorView(dram, vm);
 * view.saveArea();                      // plain SEV: registers in clear; SEV-ES: VMSA ciphertext
 * view.readGuestPhysical(0x100000, 16); // ciphertext of a private page
 * view.remap(0x200000, otherFrame);     // SEVered: nothing stops it before SNP
 * ```
 *
 * On an SEV-SNP host (`rmp` given) its writes pass the RMP's host-write check first (src/machine/rmp.ts): writing a
 * page assigned to a guest is a #PF with the RMP bit (an RMP_VIOLATION error) and nothing is written. Reads and NPT
 * edits are never refused; a remapped GPA is caught by the guest's own RMP checks.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Dram } from "../../machine/dram.ts";
import { PAGE_SIZE } from "../../machine/dram.ts";
import { GHCB_SIZE } from "../../machine/ghcb.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import type { Rmp } from "../../machine/rmp.ts";
import type { Vmcb } from "../../machine/vmcb.ts";

/** What the view needs of a guest: its VMCB and its NPT (both hypervisor-owned). */
export interface ViewedGuest {
  vmcb: Vmcb;
  npt: NestedPageTable;
}

export interface SaveAreaView {
  /** "vmcb": the VMCB page, save area in plaintext at 0x400; "vmsa-ciphertext": the SEV-ES VMSA page as stored. */
  kind: "vmcb" | "vmsa-ciphertext";
  pa: number;
  bytes: Uint8Array;
}

export class HypervisorView {
  constructor(
    readonly memory: Dram,
    readonly guest: ViewedGuest,
    readonly rmp?: Rmp,
  ) {}

  /** DRAM bytes as stored. */
  readPhysical(pa: number, length: number): Uint8Array {
    return this.memory.read(pa, length);
  }

  /** Writes DRAM directly (replays, forged pages): nothing before SNP prevents it; SNP's RMP does. */
  writePhysical(pa: number, data: Uint8Array): void {
    this.rmp?.checkHostWrite(pa, data.length);
    this.memory.write(pa, data);
  }

  #hpa(gpa: number, length: number): number {
    const hpa = this.guest.npt.translate(gpa);
    if (
      hpa === undefined ||
      Math.floor(gpa / PAGE_SIZE) !== Math.floor((gpa + Math.max(length, 1) - 1) / PAGE_SIZE)
    ) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `guest-physical range 0x${gpa.toString(16)}+${length} is not inside one mapped page`,
      );
    }
    return hpa;
  }

  /** Guest memory through the NPT, as stored in DRAM (within one page). */
  readGuestPhysical(gpa: number, length: number): Uint8Array {
    return this.memory.read(this.#hpa(gpa, length), length);
  }

  writeGuestPhysical(gpa: number, data: Uint8Array): void {
    this.writePhysical(this.#hpa(gpa, data.length), data);
  }

  /** The host frame a GPA maps to, if any. */
  frameOf(gpa: number): number | undefined {
    const t = this.guest.npt.translate(gpa - (gpa % PAGE_SIZE));
    return t;
  }

  /** Points a guest page at another host frame (the hypervisor owns the NPT). */
  remap(gpa: number, hpa: number): void {
    this.guest.npt.map(gpa, hpa);
  }

  /**
   * Where the guest's registers are after an exit, as bytes the hypervisor can read: the whole VMCB page for plain
   * SEV and non-SEV guests (plaintext registers in its save area), the VMSA page as stored for SEV-ES (ciphertext).
   */
  saveArea(): SaveAreaView {
    const vmcb = this.guest.vmcb;
    if (vmcb.control.sevEsEnable) {
      const pa = vmcb.control.vmsaPa;
      return { kind: "vmsa-ciphertext", pa, bytes: this.memory.read(pa, PAGE_SIZE) };
    }
    return { kind: "vmcb", pa: vmcb.pa, bytes: this.memory.read(vmcb.pa, PAGE_SIZE) };
  }

  /** The VMCB page (control area mirrored by the CPU; save area at 0x400). */
  vmcbPage(): Uint8Array {
    return this.memory.read(this.guest.vmcb.pa, PAGE_SIZE);
  }

  /** Exit information of the last #VMEXIT, from the VMCB control area. */
  lastExit(): { exitCode: number; exitInfo1: bigint; exitInfo2: bigint; ghcbMsr: bigint } {
    const c = this.guest.vmcb.control;
    return { exitCode: c.exitCode, exitInfo1: c.exitInfo1, exitInfo2: c.exitInfo2, ghcbMsr: c.ghcbGpa };
  }

  /** The GHCB page the guest's GHCB MSR points at (SEV-ES), as stored; undefined when it holds no mapped GPA. */
  ghcb(): { gpa: number; bytes: Uint8Array } | undefined {
    const msr = this.guest.vmcb.control.ghcbGpa;
    if (!this.guest.vmcb.control.sevEsEnable || msr === 0n || (msr & 0xfffn) !== 0n) return undefined;
    if (msr > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const gpa = Number(msr);
    const hpa = this.guest.npt.translate(gpa);
    return hpa === undefined ? undefined : { gpa, bytes: this.memory.read(hpa, GHCB_SIZE) };
  }

  /** Every DRAM frame in use, as stored, in address order: all the memory a hypervisor could dump. */
  memoryImage(): { pa: number; bytes: Uint8Array }[] {
    return this.memory.frameAddresses().map((pa) => ({ pa, bytes: this.memory.read(pa, PAGE_SIZE) }));
  }
}
