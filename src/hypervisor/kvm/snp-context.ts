/**
 * What the host's KVM knows of one SEV-SNP guest beyond an SEV-ES one: the RMP it manages for it, the guest's ASID,
 * the hypervisor features it advertises (GHCB 56421, MSR protocol 0x080), and the guest's vCPUs by APIC ID — for
 * page state changes (page-state-change.ts) and AP creation (ap-creation.ts).
 */
import type { Rmp } from "../../machine/rmp.ts";
import type { SnpVcpuTable } from "./snp-vcpus.ts";

export interface SnpGuestKvm {
  rmp: Rmp;
  /** The ASID RMPUPDATE assigns the guest's private pages to. */
  asid: number;
  /** `GhcbHvFeature` bits this host advertises (KVM: `KVM_HV_FEATURES`). */
  hvFeatures: bigint;
  /** The guest's vCPUs: where SNP AP creation lands. Without it the event is refused. */
  vcpus?: SnpVcpuTable;
  /**
   * Entries one SNP_PSC request completes before the host returns to the guest (GHCB 56421 lets the hypervisor stop
   * early; the guest re-issues the rest). Default: all of them, as KVM does.
   */
  pscBatchLimit?: number;
}
