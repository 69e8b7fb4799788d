/**
 * An SEV-SNP guest's memory after its launch, split the way the real stack splits it (docs/sev-interface.md §14.2):
 *
 * - the **host** (KVM, when guest memory becomes private) assigns every private page of the guest image to the
 *   guest in the RMP at its GPA with RMPUPDATE — which leaves it unvalidated (APM vol. 2 section 15.36.5) — and
 *   leaves shared pages hypervisor-owned;
 * - the **guest firmware** PVALIDATEs and loads the pages it hands the OS (machine/firmware-handoff.ts);
 * - the **guest kernel** PVALIDATEs the rest, the memory the firmware left unaccepted (guest/kernel/snp-boot.ts).
 *
 * The host validates nothing. Pages the launch already took (SNP_LAUNCH_UPDATE measured and validated them) keep
 * their RMP entry and are not validated again.
 */
import { CiphervisorError } from "../errors.ts";
import type { GuestPage } from "../guest/image.ts";
import type { HandoffPage } from "../machine/firmware-handoff.ts";
import type { NestedPageTable } from "../machine/nested-page-table.ts";
import { type Rmp, RmpReturn } from "../machine/rmp.ts";

/**
 * RMPUPDATEs the image's private pages to the guest (each already mapped in `npt`) and returns what the guest
 * firmware loads: every page but the firmware's own areas and the unaccepted ones.
 *
 * @throws CiphervisorError INTERNAL when the RMP refuses an assignment
 */
export function assignSnpImage(
  rmp: Rmp,
  npt: NestedPageTable,
  asid: number,
  pages: readonly GuestPage[],
): HandoffPage[] {
  const out: HandoffPage[] = [];
  for (const p of pages) {
    let measured = false;
    if (p.launchEncrypted) {
      const hpa = npt.translate(p.gpa);
      if (hpa === undefined)
        throw new CiphervisorError("INTERNAL", `GPA 0x${p.gpa.toString(16)} is not mapped`);
      const e = rmp.entry(hpa);
      measured = e.assigned && e.asid === asid && e.gpa === p.gpa;
      if (!measured && rmp.rmpupdate(hpa, { assigned: true, asid, gpa: p.gpa }) !== RmpReturn.SUCCESS) {
        throw new CiphervisorError("INTERNAL", `RMPUPDATE of GPA 0x${p.gpa.toString(16)} failed`);
      }
    }
    if (p.preserve || p.unaccepted) continue;
    out.push({ gpa: p.gpa, data: p.data, private: p.launchEncrypted, ...(measured ? { measured } : {}) });
  }
  return out;
}
