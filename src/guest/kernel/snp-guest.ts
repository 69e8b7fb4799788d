/**
 * The guest kernel's SEV-SNP guest driver and guest agent (what Linux's `sev-guest` driver does for configfs-tsm
 * and `snpguest report`): on the hypervisor callback interrupt it reads the request from the guest-agent mailbox
 * (agent-mailbox.ts), builds MSG_REPORT_REQ with the caller's REPORT_DATA at VMPL0, seals it under VMPCK0 — read
 * from its own secrets page, which the firmware wrote encrypted with the guest's key — with the next sequence
 * number (SNP ABI 56860, the guest messages chapter; envelope in src/sev/snp/guest-message.ts), and makes the SNP
 * guest request exit through the GHCB (GHCB 56421 section 4.1.8: SW_EXITCODE 0x8000_0011, SW_EXITINFO1 the request
 * page's GPA, SW_EXITINFO2 the response page's). After the VMGEXIT it opens the response, refusing one that does not
 * authenticate under VMPCK0 or carries another sequence number, and puts the report in the mailbox.
 *
 * All of its state is where a kernel keeps it: the sequence number in private memory (boot information), VMPCK0 in
 * the secrets page, read through the guest's own key each time; the hypervisor sees only the shared pages.
 */
import { GHCB_DEFAULT_USAGE, GhcbView } from "../../machine/ghcb.ts";
import type { NativeCpu } from "../../machine/native-code.ts";
import {
  decodeGuestMessageHeader,
  openGuestMessage,
  SnpMsgType,
  sealGuestMessage,
} from "../../sev/snp/guest-message.ts";
import {
  decodeReportResponse,
  encodeReportRequest,
  REPORT_MSG_VERSION,
} from "../../sev/snp/guest-request-messages.ts";
import { SECRETS_LAYOUT, VMPCK_SIZE } from "../../sev/snp/secrets-page.ts";
import {
  AGENT_MAILBOX_SIZE,
  AgentCommand,
  AgentError,
  AgentState,
  decodeAgentRequest,
  encodeAgentAnswer,
} from "../agent-mailbox.ts";
import { AGENT_MAILBOX_GPA, BootInfo, SNP_REQUEST_GPA, SNP_RESPONSE_GPA } from "../layout.ts";

/** SW_EXITCODE of the SNP guest request (GHCB 56421 section 4.1.8). */
export const SNP_GUEST_REQUEST_EXIT = 0x8000_0011n;
const PAGE = 4096;

/** What the driver needs of the kernel: the CPU and its boot information (private memory). */
export interface SnpKernelIo {
  cpu: NativeCpu;
  boot(field: number): bigint;
  setBoot(field: number, v: bigint): void;
  /** GHCB protocol version negotiated at boot. */
  protocol: number;
}

function answer(io: SnpKernelIo, state: number, error: number, detail = 0n, report?: Uint8Array): void {
  const request = io.cpu.read(AGENT_MAILBOX_GPA, AGENT_MAILBOX_SIZE);
  io.cpu.write(AGENT_MAILBOX_GPA, encodeAgentAnswer(request, { state, error, detail, report }));
}

function vmpck0(io: SnpKernelIo): Uint8Array {
  return io.cpu.read(Number(io.boot(BootInfo.SNP_SECRETS_GPA)) + SECRETS_LAYOUT.vmpck0, VMPCK_SIZE);
}

/**
 * The callback interrupt: true when the GHCB now holds an SNP guest request and the kernel must VMGEXIT; false when
 * it answered the mailbox at once (no request, an unknown command, no SNP).
 */
export function agentCallback(io: SnpKernelIo): boolean {
  const req = decodeAgentRequest(io.cpu.read(AGENT_MAILBOX_GPA, AGENT_MAILBOX_SIZE));
  if (req.command === AgentCommand.NONE) return false;
  if (req.command !== AgentCommand.REPORT) {
    answer(io, AgentState.FAILED, AgentError.UNKNOWN_COMMAND);
    return false;
  }
  if (io.boot(BootInfo.SNP_SECRETS_GPA) === 0n || io.protocol < 2) {
    answer(io, AgentState.FAILED, AgentError.UNSUPPORTED);
    return false;
  }
  const seqno = io.boot(BootInfo.SNP_MSG_SEQNO) + 1n;
  const sealed = sealGuestMessage(vmpck0(io), {
    seqno,
    msgType: SnpMsgType.REPORT_REQ,
    msgVersion: REPORT_MSG_VERSION,
    vmpck: 0,
    payload: encodeReportRequest({ reportData: req.reportData, vmpl: 0 }),
  });
  const page = new Uint8Array(PAGE);
  page.set(sealed);
  io.cpu.write(SNP_REQUEST_GPA, page);
  io.cpu.write(SNP_RESPONSE_GPA, new Uint8Array(PAGE));
  const ghcbGva = Number(io.boot(BootInfo.GHCB_GVA));
  const ghcb = new GhcbView(io.cpu.read(ghcbGva, PAGE));
  ghcb.invalidate();
  ghcb.set("swExitCode", SNP_GUEST_REQUEST_EXIT);
  ghcb.set("swExitInfo1", BigInt(SNP_REQUEST_GPA));
  ghcb.set("swExitInfo2", BigInt(SNP_RESPONSE_GPA));
  ghcb.usage = GHCB_DEFAULT_USAGE;
  ghcb.protocolVersion = io.protocol;
  io.cpu.write(ghcbGva, ghcb.bytes);
  return true;
}

/** Back from the SNP guest request exit: opens the response and answers the mailbox. */
export function agentReportDone(io: SnpKernelIo): void {
  const ghcb = new GhcbView(io.cpu.read(Number(io.boot(BootInfo.GHCB_GVA)), PAGE));
  const info1 = ghcb.get("swExitInfo1");
  const info2 = ghcb.get("swExitInfo2");
  if (info1 !== 0n || info2 !== 0n) {
    answer(io, AgentState.FAILED, AgentError.GUEST_REQUEST_FAILED, info1 !== 0n ? info1 << 32n : info2);
    return;
  }
  const last = io.boot(BootInfo.SNP_MSG_SEQNO);
  const page = io.cpu.read(SNP_RESPONSE_GPA, PAGE);
  const h = decodeGuestMessageHeader(page);
  const payload = openGuestMessage(vmpck0(io), page);
  if (!payload || h.seqno !== last + 2n || h.msgType !== SnpMsgType.REPORT_RSP || h.vmpck !== 0) {
    answer(io, AgentState.FAILED, AgentError.RESPONSE_INVALID);
    return;
  }
  io.setBoot(BootInfo.SNP_MSG_SEQNO, h.seqno);
  const rsp = decodeReportResponse(payload);
  if (rsp.status !== 0 || !rsp.report) {
    answer(io, AgentState.FAILED, AgentError.REPORT_REFUSED, BigInt(rsp.status));
    return;
  }
  answer(io, AgentState.DONE, AgentError.NONE, 0n, rsp.report);
}
