/**
 * The guest-agent mailbox: one shared page through which the hypervisor asks an SEV-SNP guest for an attestation
 * report, as a host's guest agent asks `snpguest report` (Linux configfs-tsm, `/sys/kernel/config/tsm/report`) inside
 * the guest. The hypervisor cannot get a guest's report from the firmware on its own: only the guest holds VMPCK0,
 * so the guest builds and seals MSG_REPORT_REQ and the hypervisor merely relays it (SNP ABI 56860, the guest
 * messages chapter; GHCB 56421 section 4.1.8, SNP guest request). The page is shared (C = 0): the hypervisor reads
 * and writes it, and nothing secret is ever in it — REPORT_DATA comes from the caller and the report is signed.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0x00 | 4 | COMMAND (host → guest): 0 none, 1 REPORT |
 * | 0x04 | 4 | STATE (guest → host): 0 pending, 1 done, 2 failed |
 * | 0x08 | 4 | ERROR: why it failed (`AgentError`) |
 * | 0x0C | 4 | REPORT_SIZE |
 * | 0x10 | 8 | DETAIL: the failure's value (the GHCB's SW_EXITINFO2, or MSG_REPORT_RSP's STATUS) |
 * | 0x40 | 64 | REPORT_DATA (host → guest) |
 * | 0x100 | REPORT_SIZE | the attestation report (guest → host) |
 *
 * The host writes the request, then raises the hypervisor callback interrupt (`AGENT_VECTOR`); the guest kernel
 * answers in the same page before it idles again.
 */
import { ByteReader, ByteWriter } from "../lib/bytes.ts";

/** Linux's HYPERVISOR_CALLBACK_VECTOR: the interrupt the host raises to tell the guest agent a request is waiting. */
export const AGENT_VECTOR = 0xf3;
export const AgentCommand = { NONE: 0, REPORT: 1 } as const;
export const AgentState = { PENDING: 0, DONE: 1, FAILED: 2 } as const;
export const AgentError = {
  NONE: 0,
  /** The kernel has no SEV-SNP guest driver, or the VM no secrets page. */
  UNSUPPORTED: 1,
  /** The SNP guest request exit failed: DETAIL is SW_EXITINFO2 (VMM error << 32 | firmware status). */
  GUEST_REQUEST_FAILED: 2,
  /** The response did not authenticate under VMPCK0 or carried the wrong sequence number. */
  RESPONSE_INVALID: 3,
  /** The firmware answered MSG_REPORT_RSP with a STATUS other than success: DETAIL is that STATUS. */
  REPORT_REFUSED: 4,
  /** Not a command the agent knows. */
  UNKNOWN_COMMAND: 5,
} as const;

const REPORT_DATA_OFFSET = 0x40;
const REPORT_OFFSET = 0x100;
export const AGENT_MAILBOX_SIZE = 4096;

export interface AgentRequest {
  command: number;
  reportData: Uint8Array;
}

export interface AgentAnswer {
  state: number;
  error: number;
  detail: bigint;
  report: Uint8Array | undefined;
}

export function encodeAgentRequest(reportData: Uint8Array): Uint8Array {
  return new ByteWriter(AGENT_MAILBOX_SIZE).u32(0, AgentCommand.REPORT).set(REPORT_DATA_OFFSET, reportData)
    .bytes;
}

export function decodeAgentRequest(page: Uint8Array): AgentRequest {
  const r = new ByteReader(page, "guest-agent mailbox");
  return { command: r.u32(0), reportData: r.slice(REPORT_DATA_OFFSET, 64) };
}

/** The guest's answer: the request's COMMAND and REPORT_DATA stay, STATE and the result are filled in. */
export function encodeAgentAnswer(request: Uint8Array, a: AgentAnswer): Uint8Array {
  const w = new ByteWriter(AGENT_MAILBOX_SIZE).set(0, request.subarray(0, REPORT_OFFSET));
  w.u32(4, a.state).u32(8, a.error).u64(0x10, a.detail);
  if (a.report) w.u32(0x0c, a.report.length).set(REPORT_OFFSET, a.report);
  return w.bytes;
}

export function decodeAgentAnswer(page: Uint8Array): AgentAnswer {
  const r = new ByteReader(page, "guest-agent mailbox");
  const size = r.u32(0x0c);
  return {
    state: r.u32(4),
    error: r.u32(8),
    detail: r.u64(0x10),
    report: size > 0 && size <= AGENT_MAILBOX_SIZE - REPORT_OFFSET ? r.slice(REPORT_OFFSET, size) : undefined,
  };
}
