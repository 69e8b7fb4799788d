/**
 * Returning an SEV-SNP guest's host pages to the hypervisor once the guest is gone, as Linux does: after
 * SNP_DECOMMISSION, and after WBINVD on every core and DF_FLUSH (so no cache line tagged with the guest's ASID
 * outlives it), every page the RMP still assigns goes back with RMPUPDATE; one the RMP holds Immutable — a firmware
 * page such as the guest context page, or, on the emulated firmware, a page SNP_LAUNCH_UPDATE took — first goes
 * through SNP_PAGE_RECLAIM (SNP ABI 56860; Linux's `snp_reclaim_pages` then `rmp_make_shared`, and KVM's
 * `kvm_rmp_make_shared`). Only then may the host write the page (zero it) and give it to another guest.
 *
 * A page neither step gives back stays out of use, never handed to another guest: Linux's `snp_leak_pages`.
 */
import { type Rmp, RmpReturn } from "../machine/rmp.ts";
import type { SnpClient } from "../sev/snp/client.ts";
import { SevStatus, statusName } from "../sev/status.ts";

export interface SnpPagesReturned {
  /** Pages that are hypervisor-owned now (or always were), in the order given. */
  returned: number[];
  /** Pages kept out of use, and why. */
  leaked: { pa: number; why: string }[];
}

/** SNP_PAGE_RECLAIM where the RMP needs it, then RMPUPDATE, for each of `pages` (4 KiB system physical addresses). */
export function returnSnpPages(snp: SnpClient, rmp: Rmp, pages: Iterable<number>): SnpPagesReturned {
  const out: SnpPagesReturned = { returned: [], leaked: [] };
  for (const pa of pages) {
    const e = rmp.entry(pa);
    if (e.assigned && e.immutable) {
      const status = snp.pageReclaimStatus(pa);
      if (status !== SevStatus.SUCCESS) {
        out.leaked.push({ pa, why: `SNP_PAGE_RECLAIM answered ${statusName(status)}` });
        continue;
      }
    }
    if (e.assigned) {
      const code = rmp.rmpupdate(pa, { assigned: false });
      if (code !== RmpReturn.SUCCESS) {
        out.leaked.push({ pa, why: `RMPUPDATE to the hypervisor failed with code ${code}` });
        continue;
      }
    }
    out.returned.push(pa);
  }
  return out;
}
