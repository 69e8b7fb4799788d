/**
 * The SNP AP Creation NAE event of GHCB version 2 (GHCB 56421, "SNP AP Creation"; Linux `SVM_VMGEXIT_AP_*`;
 * docs/sev-interface.md §14.2): an SNP guest starts (or stops) one of its vCPUs from a VMSA it built itself, instead
 * of the VMSA the host launched (SNP_LAUNCH_UPDATE of type VMSA) — the hypervisor never chooses an AP's register
 * state. Offered only when the hypervisor sets `GhcbHvFeature.SNP_AP_CREATION`.
 *
 * - SW_EXITCODE 0x8000_0013;
 * - SW_EXITINFO1: [63:32] APIC ID of the target vCPU, [31:0] request (`ApCreationRequest`);
 * - SW_EXITINFO2: GPA of the new VMSA (CREATE_ON_INIT, CREATE);
 * - RAX: the SEV_FEATURES of the new VMSA, which must be the guest's (KVM refuses any other value).
 *
 * Before the request the guest writes the VMSA into one of its private, validated pages and marks that page a VMSA
 * with RMPADJUST (attribute bit 16, APM vol. 2 section 15.36.7), which only VMPL0 may do.
 */

export const SNP_AP_CREATION_EXIT = 0x8000_0013n;

/**
 * CREATE_ON_INIT: use this VMSA when the AP next receives INIT; CREATE: use it now; DESTROY: the AP has no VMSA and
 * does not run until another request gives it one.
 */
export const ApCreationRequest = { CREATE_ON_INIT: 0, CREATE: 1, DESTROY: 2 } as const;
export type ApCreationRequestValue = (typeof ApCreationRequest)[keyof typeof ApCreationRequest];

export function apCreationExitInfo1(apicId: number, request: number): bigint {
  return (BigInt(apicId >>> 0) << 32n) | BigInt(request >>> 0);
}

export function decodeApCreationExitInfo1(info1: bigint): { apicId: number; request: number } {
  return { apicId: Number((info1 >> 32n) & 0xffffffffn), request: Number(info1 & 0xffffffffn) };
}
