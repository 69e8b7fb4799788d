/**
 * What the guest's own firmware does between the first VMRUN and the OS: load the OS image into guest memory and
 * jump to it. The emulator cannot execute x86 UEFI code (Debian's OVMF or the built-in image), so the CPU performs
 * that step itself, *inside the guest's trust boundary*: private pages are written through the guest's key slot
 * (as a firmware running with C = 1 would write them), shared pages in plaintext, and the vCPU's state becomes the
 * OS entry state — in the encrypted VMSA for SEV-ES (integrity re-recorded, as at any #VMEXIT), in the VMCB save
 * area otherwise.
 *
 * Nothing here is measured: on real SEV the OS is loaded from disk after launch, outside the launch digest; the
 * measurement covers the firmware (and a kernel-hashes table), which is what a guest owner verifies.
 */
import type { Vmsa } from "../measure/vmsa.ts";
import { decodeVmsa, encodeVmsa } from "../measure/vmsa.ts";
import type { MemoryKeySlots } from "../sev/key-slots.ts";
import { PAGE_SIZE, type SystemMemory } from "./dram.ts";
import type { VmsaIntegrityStore } from "./trusted-memory.ts";
import { SAVE_AREA_SIZE, type Vmcb } from "./vmcb.ts";

export interface HandoffPage {
  gpa: number;
  data: Uint8Array;
  /** Written through the guest key (the firmware's C = 1 writes); false for shared pages. */
  private: boolean;
}

export interface HandoffDeps {
  memory: SystemMemory;
  keySlots: MemoryKeySlots;
  vmsaIntegrity: VmsaIntegrityStore;
}

/**
 * Loads `pages` (each already mapped by the host's NPT) and sets the BSP's state to `entry`. Returns false — and
 * changes nothing — when an SEV-ES VMSA fails its integrity check (the host tampered with it before the first run).
 */
export function firmwareHandoff(
  deps: HandoffDeps,
  vmcb: Vmcb,
  pages: readonly HandoffPage[],
  entry: Partial<Vmsa>,
): boolean {
  const c = vmcb.control;
  const { memory, keySlots } = deps;
  let vmsa: Vmsa | undefined;
  if (c.sevEsEnable) {
    const cipher = memory.read(c.vmsaPa, PAGE_SIZE);
    if (!deps.vmsaIntegrity.check(c.asid, c.vmsaPa, cipher)) return false;
    vmsa = decodeVmsa(keySlots.decrypt(c.asid, c.vmsaPa, cipher));
  }
  for (const p of pages) {
    const hpa = c.npt.translate(p.gpa);
    if (hpa === undefined) throw new RangeError(`guest page 0x${p.gpa.toString(16)} is not mapped`);
    const data = new Uint8Array(PAGE_SIZE);
    data.set(p.data.subarray(0, PAGE_SIZE));
    memory.write(hpa, c.sevEnable && p.private ? keySlots.encrypt(c.asid, hpa, data) : data);
  }
  if (vmsa) {
    const page = encodeVmsa({ ...vmsa, ...entry });
    const cipher = keySlots.encrypt(c.asid, c.vmsaPa, page);
    memory.write(c.vmsaPa, cipher);
    deps.vmsaIntegrity.record(c.asid, c.vmsaPa, cipher);
  } else {
    const page = new Uint8Array(PAGE_SIZE);
    page.set(memory.read(vmcb.saveAreaPa, SAVE_AREA_SIZE));
    memory.write(vmcb.saveAreaPa, encodeVmsa({ ...decodeVmsa(page), ...entry }).subarray(0, SAVE_AREA_SIZE));
  }
  return true;
}
