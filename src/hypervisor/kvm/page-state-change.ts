/**
 * KVM's side of SNP page state changes (GHCB 56421, "SNP Page State Change"; torvalds/linux
 * `arch/x86/kvm/svm/sev.c`: `snp_begin_psc_msr`, `snp_begin_psc`, `__snp_complete_one_psc`; the protocol in
 * src/machine/page-state-change.ts). For each page the guest names, the host RMPUPDATEs the frame its GPA maps to:
 * to hypervisor-owned for SHARED, to assigned to the guest's ASID at that GPA — unvalidated — for PRIVATE.
 *
 * Modelling notes. KVM forwards the conversion to userspace (KVM_HC_MAP_GPA_RANGE) and guest_memfd backs shared and
 * private memory with different frames; here the same frame changes owner, which is what the RMP sees either way.
 * A page already in the asked state is left alone (KVM changes no attribute then), so a repeated PRIVATE request
 * cannot wipe a validated page. PSMASH and UNSMASH complete without action, as KVM completes them (it splits and
 * merges 2 MiB RMP entries itself when guest memory is faulted in). An operation outside 1–4 is an invalid entry
 * [unconfirmed: KVM completes it without action; GHCB 56421 lists only 1–4].
 */
import { PAGE_SIZE } from "../../machine/dram.ts";
import { GHCB_SHARED_BUFFER, GHCB_SHARED_BUFFER_SIZE, GhcbError, GhcbResponse } from "../../machine/ghcb.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import {
  decodePscMsrRequest,
  PSC_HEADER_SIZE,
  PSC_MSR_RESP_ERROR,
  PscDescriptor,
  PscError,
  PscOp,
  pscEntryPages,
  pscMsrResponse,
} from "../../machine/page-state-change.ts";
import { RmpReturn } from "../../machine/rmp.ts";
import type { SnpGuestKvm } from "./snp-context.ts";

export interface PscMemory extends Pick<SnpGuestKvm, "rmp" | "asid" | "pscBatchLimit"> {
  npt: NestedPageTable;
}

/** SW_EXITINFO1 / SW_EXITINFO2 of the answer. */
export interface PscAnswer {
  info1: bigint;
  info2: bigint;
}

const SHARED_END = GHCB_SHARED_BUFFER + GHCB_SHARED_BUFFER_SIZE;

/** RMPUPDATE of the frame behind `gpa` for `op` (PRIVATE or SHARED); false when the host cannot do it. */
export function changePageState(m: PscMemory, gpa: number, op: number): boolean {
  const hpa = m.npt.translate(gpa);
  if (hpa === undefined) return false;
  const e = m.rmp.entry(hpa);
  if (e.assigned && e.asid !== m.asid) return false;
  if (op === PscOp.PRIVATE) {
    if (e.assigned && e.gpa === gpa) return true;
    return m.rmp.rmpupdate(hpa, { assigned: true, asid: m.asid, gpa }) === RmpReturn.SUCCESS;
  }
  if (!e.assigned) return true;
  return m.rmp.rmpupdate(hpa, { assigned: false }) === RmpReturn.SUCCESS;
}

/** The MSR protocol request 0x014: one 4 KiB page; the 0x015 response the host puts in the GHCB MSR. */
export function handlePscMsr(m: PscMemory, request: bigint): bigint {
  const { gfn, op } = decodePscMsrRequest(request);
  if (op !== PscOp.PRIVATE && op !== PscOp.SHARED) return PSC_MSR_RESP_ERROR;
  return changePageState(m, gfn * PAGE_SIZE, op) ? pscMsrResponse(0) : PSC_MSR_RESP_ERROR;
}

const answer = (info2: bigint): PscAnswer => ({ info1: 0n, info2 });

/**
 * The NAE event SNP_PSC. `snapshot` is the host's copy of the GHCB page (every decision is taken from it); progress —
 * cur_entry and each finished entry's cur_page — is written into `live`, the guest's GHCB page, as KVM writes it into
 * the mapped GHCB. SW_EXITINFO1 is 0 ("no action") and SW_EXITINFO2 the result, as KVM answers.
 */
export function handlePscNae(
  m: PscMemory,
  ghcbGpa: bigint,
  scratch: bigint,
  snapshot: Uint8Array,
  live: Uint8Array,
): PscAnswer {
  // GHCB version 2 requires the descriptor inside the GHCB's shared buffer (KVM `setup_vmgexit_scratch`).
  const off = scratch - ghcbGpa;
  if (off < BigInt(GHCB_SHARED_BUFFER) || off + BigInt(PSC_HEADER_SIZE) > BigInt(SHARED_END)) {
    return {
      info1: BigInt(GhcbResponse.MALFORMED_INPUT),
      info2: BigInt(GhcbError.INVALID_SCRATCH_AREA),
    };
  }
  const start = Number(off);
  const asked = new PscDescriptor(snapshot.subarray(start, SHARED_END));
  const progress = new PscDescriptor(live.subarray(start, SHARED_END));
  const { curEntry, endEntry } = asked.header();
  if (endEntry >= asked.capacity) return answer(PscError.INVALID_HDR);
  let completed = 0;
  for (let i = curEntry; i <= endEntry; i++) {
    const e = asked.entry(i);
    const pages = pscEntryPages(e);
    if (e.curPage > pages || e.gfn % pages !== 0 || e.op < PscOp.PRIVATE || e.op > PscOp.UNSMASH) {
      return answer(PscError.INVALID_ENTRY);
    }
    if (m.pscBatchLimit !== undefined && completed >= m.pscBatchLimit) return answer(0n);
    if (e.op === PscOp.PRIVATE || e.op === PscOp.SHARED) {
      for (let p = e.curPage; p < pages; p++) {
        if (!changePageState(m, (e.gfn + p) * PAGE_SIZE, e.op)) {
          progress.setEntry(i, { ...progress.entry(i), curPage: p });
          return answer(PscError.GENERIC);
        }
      }
    }
    progress.setEntry(i, { ...progress.entry(i), curPage: pages });
    progress.setCurEntry(i + 1);
    completed++;
  }
  return answer(0n);
}
