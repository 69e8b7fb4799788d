/**
 * KVM's handling of the SNP guest request VMGEXIT (GHCB 56421 section 4.1.8: SW_EXITCODE 0x8000_0011, SW_EXITINFO1
 * the request page's GPA, SW_EXITINFO2 the response page's; torvalds/linux `arch/x86/kvm/svm/sev.c`
 * `snp_handle_guest_req`): the host copies the guest's (encrypted) request page into its own buffer, issues
 * SNP_GUEST_REQUEST (SNP ABI 56860 section 8.26) with the guest's context, copies the firmware's response back into
 * the guest's response page, and answers SW_EXITINFO2 = VMM error << 32 | firmware status. The host relays sealed
 * messages only: it never holds a VMPCK, so it can neither read the request nor forge a response.
 */
import type { SystemMemory } from "../../machine/dram.ts";
import { GhcbError, GhcbResponse } from "../../machine/ghcb.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import { SevStatus } from "../../sev/status.ts";

export const SNP_GUEST_REQUEST_EXIT = 0x8000_0011n;
const PAGE = 4096;

/** The firmware side of one SNP guest: SNP_GUEST_REQUEST on host pages, and KVM's two bounce pages. */
export interface SnpGuestRequestChannel {
  /** SNP_GUEST_REQUEST with this guest's GCTX; returns the firmware status. */
  guestRequest(requestPa: number, responsePa: number): number;
  /** Host pages KVM hands the firmware (`sev->guest_req_buf`, `sev->guest_resp_buf`). */
  requestBuffer: number;
  responseBuffer: number;
}

/** SW_EXITINFO1 / SW_EXITINFO2 of the answer. */
export interface SnpGuestRequestAnswer {
  info1: bigint;
  info2: bigint;
}

/** Handles one SNP guest request exit. Never throws for anything the guest can put in the GHCB. */
export function handleSnpGuestRequest(
  c: { memory: SystemMemory; npt: NestedPageTable; snp: SnpGuestRequestChannel },
  requestGpa: bigint,
  responseGpa: bigint,
): SnpGuestRequestAnswer {
  const translate = (gpa: bigint) =>
    gpa % BigInt(PAGE) === 0n && gpa <= BigInt(Number.MAX_SAFE_INTEGER)
      ? c.npt.translate(Number(gpa))
      : undefined;
  const req = translate(requestGpa);
  const rsp = translate(responseGpa);
  if (req === undefined || rsp === undefined) {
    return { info1: BigInt(GhcbResponse.MALFORMED_INPUT), info2: BigInt(GhcbError.INVALID_INPUT) };
  }
  c.memory.write(c.snp.requestBuffer, c.memory.read(req, PAGE));
  c.memory.write(c.snp.responseBuffer, new Uint8Array(PAGE));
  const status = c.snp.guestRequest(c.snp.requestBuffer, c.snp.responseBuffer);
  if (status === SevStatus.SUCCESS) c.memory.write(rsp, c.memory.read(c.snp.responseBuffer, PAGE));
  return { info1: 0n, info2: BigInt(status >>> 0) };
}
