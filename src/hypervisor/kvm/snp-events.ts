/**
 * The SNP NAE events the host's KVM takes through the GHCB besides the SNP guest request (snp-guest-request.ts),
 * as one table: what each requires in the GHCB, when the host offers it, and what answers it (torvalds/linux
 * `arch/x86/kvm/svm/sev.c` `sev_es_validate_vmgexit`, `sev_handle_vmgexit`; GHCB 56421, the NAE events of version 2):
 *
 * - SNP_PSC (0x8000_0010): SW_SCRATCH required; page-state-change.ts.
 * - SNP_AP_CREATION (0x8000_0013): RAX required except for DESTROY; ap-creation.ts. Offered only when the host
 *   advertises `GhcbHvFeature.SNP_AP_CREATION`: a hypervisor that does not know the event answers INVALID_EVENT, as
 *   for any exit it does not know.
 */
import { ApCreationRequest, SNP_AP_CREATION_EXIT } from "../../machine/ap-creation.ts";
import type { SystemMemory } from "../../machine/dram.ts";
import {
  GhcbError,
  type GhcbFieldName,
  GhcbHvFeature,
  GhcbResponse,
  type GhcbView,
} from "../../machine/ghcb.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import { SNP_PSC_EXIT } from "../../machine/page-state-change.ts";
import { handleApCreation } from "./ap-creation.ts";
import { handlePscNae } from "./page-state-change.ts";
import type { SnpGuestKvm } from "./snp-context.ts";

export interface SnpEventContext {
  memory: SystemMemory;
  npt: NestedPageTable;
  snp: SnpGuestKvm;
  ghcbGpa: bigint;
  /** The host's copy of the GHCB page: what every decision is made from. */
  snapshot: GhcbView;
  /** The guest's GHCB page, as the host will write it back. */
  live: GhcbView;
}

export interface SnpEventAnswer {
  info1: bigint;
  info2: bigint;
  /** Why the host refused, in KVM's words (its `vcpu_unimpl` message). */
  refusal?: string;
}

export interface SnpEventRow {
  code: bigint;
  name: string;
  offered(snp: SnpGuestKvm): boolean;
  /** GHCB fields required beyond SW_EXITCODE / SW_EXITINFO1 / SW_EXITINFO2, from the snapshot. */
  required(snapshot: GhcbView): GhcbFieldName[];
  handle(c: SnpEventContext): SnpEventAnswer;
}

const invalidInput = (refusal: string): SnpEventAnswer => ({
  info1: BigInt(GhcbResponse.MALFORMED_INPUT),
  info2: BigInt(GhcbError.INVALID_INPUT),
  refusal,
});

export const SNP_EVENTS: readonly SnpEventRow[] = [
  {
    code: SNP_PSC_EXIT,
    name: "SNP page state change",
    offered: () => true,
    required: () => ["swScratch"],
    handle: (c) =>
      handlePscNae(
        { rmp: c.snp.rmp, asid: c.snp.asid, npt: c.npt, pscBatchLimit: c.snp.pscBatchLimit },
        c.ghcbGpa,
        c.snapshot.get("swScratch"),
        c.snapshot.bytes,
        c.live.bytes,
      ),
  },
  {
    code: SNP_AP_CREATION_EXIT,
    name: "SNP AP creation",
    offered: (snp) => (snp.hvFeatures & GhcbHvFeature.SNP_AP_CREATION) !== 0n,
    required: (s) =>
      Number(s.get("swExitInfo1") & 0xffffffffn) === ApCreationRequest.DESTROY ? [] : ["rax"],
    handle: (c) => {
      const vcpus = c.snp.vcpus;
      if (!vcpus) return invalidInput("this host does not create vCPUs for the guest");
      const r = handleApCreation(
        { rmp: c.snp.rmp, asid: c.snp.asid, npt: c.npt, vcpus },
        c.snapshot.get("swExitInfo1"),
        c.snapshot.get("swExitInfo2"),
        c.snapshot.isValid("rax") ? c.snapshot.get("rax") : 0n,
      );
      return r.ok ? { info1: 0n, info2: 0n } : invalidInput(r.refusal);
    },
  },
];

/** The SNP event with this SW_EXITCODE, if the host offers it to this guest. */
export function snpEvent(snp: SnpGuestKvm, code: bigint): SnpEventRow | undefined {
  return SNP_EVENTS.find((r) => r.code === code && r.offered(snp));
}
