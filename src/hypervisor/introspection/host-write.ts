/**
 * What SEV-SNP adds to the hypervisor's view over SEV-ES (docs/sev-interface.md §14; APM vol. 2 section 15.36.10,
 * Table 15-39, first row): the hypervisor may still read a guest's private page — ciphertext — but its write to it
 * faults, a #PF with the RMP bit (error code P | W | RMP), because the Reverse Map Table assigns the page to the
 * guest. The attempt here is the replay integrity-gaps.test.ts shows landing against SEV-ES: the page's ciphertext
 * from an earlier exit, written back over the page as it is now. Nothing is written, so the guest goes on unaware.
 */
import { isCiphervisorError } from "../../errors.ts";
import { PAGE_SIZE } from "../../machine/dram.ts";
import type { HypervisorView } from "./hypervisor-view.ts";

export interface HostWriteAttempt {
  /** The #VMEXIT (0-based) after which the hypervisor tried. */
  exitIndex: number;
  /** The guest's private page (GPA) and the host frame the nested page table maps it to. */
  gpa: number;
  hpa: number;
  /** What it wrote: the page's ciphertext as it was at an earlier exit (a replay). */
  wrote: "replay";
  refused: boolean;
  /** The fault the write raised, when refused: RMP_VIOLATION with the #PF error code. */
  fault?: { code: string; errorCode: string; message: string };
  /** The page as stored after the attempt is the page before it. */
  unchanged: boolean;
  /** The RMP entry of the frame after the attempt: why the write was refused. */
  rmp?: { assigned: boolean; asid: number; gpa: number; validated: boolean; immutable: boolean };
}

/** Writes `earlier` (a page the hypervisor read at an earlier exit) back over the guest page at `gpa`. */
export function attemptHostWrite(
  view: HypervisorView,
  gpa: number,
  earlier: Uint8Array,
  exitIndex: number,
): HostWriteAttempt {
  const page = gpa - (gpa % PAGE_SIZE);
  const hpa = view.frameOf(page)!;
  const before = view.readGuestPhysical(page, PAGE_SIZE);
  const out: HostWriteAttempt = {
    exitIndex,
    gpa: page,
    hpa,
    wrote: "replay",
    refused: false,
    unchanged: false,
  };
  try {
    view.writeGuestPhysical(page, earlier);
  } catch (e) {
    if (!isCiphervisorError(e, "RMP_VIOLATION")) throw e;
    out.refused = true;
    out.fault = { code: e.code, errorCode: String(e.details?.errorCode ?? ""), message: e.message };
  }
  out.unchanged = Buffer.compare(view.readGuestPhysical(page, PAGE_SIZE), before) === 0;
  const e = view.rmp?.entry(hpa);
  if (e) {
    out.rmp = {
      assigned: e.assigned,
      asid: e.asid,
      gpa: e.gpa,
      validated: e.validated,
      immutable: e.immutable,
    };
  }
  return out;
}

/** One sentence for people: what the hypervisor tried and what happened. */
export function describeHostWrite(h: HostWriteAttempt): string {
  const where = `the private page at GPA 0x${h.gpa.toString(16)} (host frame 0x${h.hpa.toString(16)})`;
  if (!h.refused) return `the hypervisor replayed ${where} and the write went through`;
  return `the hypervisor's replay of ${where} was refused: ${h.fault?.message} [${h.fault?.code}]; the page is ${h.unchanged ? "unchanged" : "CHANGED"}`;
}

/**
 * The SEV-SNP verdict of the hypervisor view, from what the run showed rather than from the mode: registers as
 * SEV-ES, plus whether the RMP refused the hypervisor's write.
 */
export function snpVerdict(h: HostWriteAttempt | undefined): string {
  if (!h?.refused) {
    return "SEV-SNP: registers stay in the encrypted VMSA, but the hypervisor's write to the guest's private page was not refused.";
  }
  return `SEV-SNP: registers stay in the encrypted VMSA and the hypervisor sees only valid GHCB fields; the Reverse Map Table refused its write to the guest's private page (#PF ${h.fault?.errorCode}, RMP), which SEV-ES lets through.`;
}
