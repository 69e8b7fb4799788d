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
 *
 * SEV-SNP (the VMSA's SEV_FEATURES bit 0): memory the launch did not measure reaches the guest assigned in the RMP
 * but unvalidated (the host's RMPUPDATE). The firmware PVALIDATEs each private page it loads before writing it, as
 * OVMF validates the memory it uses (APM vol. 2 section 15.36.6), and stops on a page it cannot validate — one not
 * assigned to the guest at that GPA, or one already validated (CF = 1: OVMF, like Linux, treats "no update" as a
 * failure, since a page it never validated cannot be valid unless someone replayed or aliased it). Pages the launch
 * measured were validated by SNP_LAUNCH_UPDATE (`measured`). The rest of the guest's memory stays unaccepted; the
 * kernel validates it at boot (src/guest/kernel/snp-boot.ts).
 */
import type { Vmsa } from "../measure/vmsa.ts";
import { decodeVmsa, encodeVmsa } from "../measure/vmsa.ts";
import type { MemoryKeySlots } from "../sev/key-slots.ts";
import { PAGE_SIZE, type SystemMemory } from "./dram.ts";
import { type Rmp, RmpReturn } from "./rmp.ts";
import type { VmsaIntegrityStore } from "./trusted-memory.ts";
import { SAVE_AREA_SIZE, type Vmcb } from "./vmcb.ts";

export interface HandoffPage {
  gpa: number;
  data: Uint8Array;
  /** Written through the guest key (the firmware's C = 1 writes); false for shared pages. */
  private: boolean;
  /** SEV-SNP: validated already by SNP_LAUNCH_UPDATE, so the firmware does not PVALIDATE it again. */
  measured?: boolean;
}

export type HandoffResult = { ok: true } | { ok: false; reason: string };

export interface HandoffDeps {
  memory: SystemMemory;
  keySlots: MemoryKeySlots;
  vmsaIntegrity: VmsaIntegrityStore;
  /** The host's RMP: an SNP-active guest's firmware PVALIDATEs the private pages it loads. */
  rmp?: Rmp;
}

/** SEV_FEATURES bit 0, SNPActive (APM vol. 2 section 15.36.2). */
const SNP_ACTIVE = 1n;

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

/** The firmware's PVALIDATE of every private page it loads; the reason it stops, if it does. */
function validatePages(rmp: Rmp, vmcb: Vmcb, pages: readonly HandoffPage[]): string | undefined {
  const c = vmcb.control;
  for (const p of pages) {
    if (!p.private || p.measured) continue;
    const hpa = c.npt.translate(p.gpa);
    if (hpa === undefined) return `guest page ${hex(p.gpa)} is not mapped`;
    const r = rmp.pvalidate(hpa, { asid: c.asid, gpa: p.gpa, validate: true });
    if (r.kind === "npf")
      return `the firmware's PVALIDATE of GPA ${hex(p.gpa)} faulted (#NPF, RMP): ${r.reason}`;
    if (r.code !== RmpReturn.SUCCESS)
      return `the firmware's PVALIDATE of GPA ${hex(p.gpa)} failed (${r.code})`;
    if (r.cf)
      return `the firmware's PVALIDATE of GPA ${hex(p.gpa)} changed nothing: the page was already validated`;
  }
  return undefined;
}

/**
 * Loads `pages` (each already mapped by the host's NPT) and sets the BSP's state to `entry`. Refused — changing
 * nothing in memory — when an SEV-ES VMSA fails its integrity check (the host tampered with it before the first run)
 * or, under SEV-SNP, when a private page cannot be validated.
 */
export function firmwareHandoff(
  deps: HandoffDeps,
  vmcb: Vmcb,
  pages: readonly HandoffPage[],
  entry: Partial<Vmsa>,
): HandoffResult {
  const c = vmcb.control;
  const { memory, keySlots } = deps;
  let vmsa: Vmsa | undefined;
  if (c.sevEsEnable) {
    const cipher = memory.read(c.vmsaPa, PAGE_SIZE);
    if (!deps.vmsaIntegrity.check(c.asid, c.vmsaPa, cipher)) {
      return {
        ok: false,
        reason: "the guest firmware found its VMSA changed before it ran (integrity check failed)",
      };
    }
    vmsa = decodeVmsa(keySlots.decrypt(c.asid, c.vmsaPa, cipher));
    if (deps.rmp && (vmsa.sevFeatures & SNP_ACTIVE) !== 0n) {
      const why = validatePages(deps.rmp, vmcb, pages);
      if (why !== undefined) return { ok: false, reason: `the guest firmware stopped: ${why}` };
    }
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
  return { ok: true };
}
