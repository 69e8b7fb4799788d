/**
 * KVM's handling of the SNP AP Creation NAE event (GHCB 56421, "SNP AP Creation"; torvalds/linux
 * `arch/x86/kvm/svm/sev.c` `sev_snp_ap_creation`; the protocol in src/machine/ap-creation.ts): it validates the
 * request, records the VMSA GPA on the target vCPU and, unless the request is CREATE_ON_INIT, kicks it to install the
 * VMSA before its next VMRUN (snp-vcpus.ts). A refused request is answered to the guest as malformed input
 * (SW_EXITINFO1 = 2, SW_EXITINFO2 = INVALID_INPUT), never an exception.
 *
 * KVM's checks, in its order: the APIC ID names a vCPU; for CREATE and CREATE_ON_INIT, RAX equals the guest's
 * SEV_FEATURES, the VMSA GPA is a page address, and it is not 2 MiB aligned (an SNP erratum makes a 2 MiB-aligned VMSA
 * collide with a large page's RMP entry). The emulated KVM then also looks the page up in the RMP — assigned to the
 * guest at that GPA, 4 KiB, VMSA flag set — where KVM leaves that to VMRUN, which would fail the vCPU's entry
 * instead; the machine still checks at VMRUN (machine.ts).
 */

import { ApCreationRequest, decodeApCreationExitInfo1 } from "../../machine/ap-creation.ts";
import { PAGE_SIZE } from "../../machine/dram.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import { LARGE_PAGE_SIZE, type Rmp, RmpPageSize } from "../../machine/rmp.ts";
import type { SnpVcpuTable } from "./snp-vcpus.ts";

/** Guest-physical addresses KVM accepts: below 2^52 (`page_address_valid`, MAXPHYADDR). */
const GPA_LIMIT = 1n << 52n;

export interface ApCreationContext {
  rmp: Rmp;
  asid: number;
  npt: NestedPageTable;
  vcpus: SnpVcpuTable;
}

export type ApCreationResult = { ok: true } | { ok: false; refusal: string };

function hex(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

/** The page at `gpa` as the VMSA of a new AP: a reason it cannot be one, or undefined. */
function vmsaPageProblem(c: ApCreationContext, gpa: bigint): string | undefined {
  if (gpa % BigInt(PAGE_SIZE) !== 0n || gpa >= GPA_LIMIT) return `invalid AP VMSA address ${hex(gpa)}`;
  if (gpa % BigInt(LARGE_PAGE_SIZE) === 0n)
    return `AP VMSA address ${hex(gpa)} is unsafe as it is 2M aligned`;
  const hpa = c.npt.translate(Number(gpa));
  if (hpa === undefined) return `AP VMSA address ${hex(gpa)} is not guest memory`;
  const e = c.rmp.entry(hpa);
  if (!e.assigned || e.asid !== c.asid || e.gpa !== Number(gpa) || e.pageSize !== RmpPageSize.PAGE_4K) {
    return `the page at GPA ${hex(gpa)} is not a private 4 KiB page of this guest in the RMP`;
  }
  if (!e.vmsa) return `the page at GPA ${hex(gpa)} is not marked VMSA in the RMP (RMPADJUST)`;
  return undefined;
}

/** One AP creation request: SW_EXITINFO1 (APIC ID, request), SW_EXITINFO2 (VMSA GPA) and the RAX the guest gave. */
export function handleApCreation(
  c: ApCreationContext,
  info1: bigint,
  info2: bigint,
  rax: bigint,
): ApCreationResult {
  const { apicId, request } = decodeApCreationExitInfo1(info1);
  const target = c.vcpus.byApicId(apicId);
  if (!target) return { ok: false, refusal: `invalid AP APIC ID ${hex(apicId)}` };
  switch (request) {
    case ApCreationRequest.CREATE_ON_INIT:
    case ApCreationRequest.CREATE: {
      if (rax !== c.vcpus.vmsaFeatures) {
        return {
          ok: false,
          refusal: `mismatched AP sev_features ${hex(rax)} != ${hex(c.vcpus.vmsaFeatures)}`,
        };
      }
      const problem = vmsaPageProblem(c, info2);
      if (problem !== undefined) return { ok: false, refusal: problem };
      target.pendingVmsaGpa = Number(info2);
      break;
    }
    case ApCreationRequest.DESTROY:
      target.pendingVmsaGpa = undefined;
      break;
    default:
      return { ok: false, refusal: `invalid AP creation request ${hex(request)}` };
  }
  target.waitingForReset = true;
  if (request !== ApCreationRequest.CREATE_ON_INIT) target.updateRequested = true;
  return { ok: true };
}
