/**
 * SNP_GUEST_REQUEST {GCTX_PADDR, REQUEST_PADDR @8, RESPONSE_PADDR @0x10} (SNP ABI 56860, section 8.26 and its guest
 * messages chapter): the hypervisor relays a guest's encrypted message (`../guest-message.ts`); the firmware opens
 * it with the VMPCK the header names, answers MSG_REPORT_REQ and MSG_KEY_REQ, and writes the response sealed under
 * the same VMPCK. Only the signed report and the encrypted response leave the Secure Processor.
 *
 * Refusals of the message itself are the command's status and change nothing (no response is written, the
 * sequence number does not move):
 *
 * - request or response page not 4 KiB aligned system memory → INVALID_ADDRESS;
 * - header: ALGO other than AES-256-GCM, HDR_VERSION other than 1, HDR_SIZE other than 0x60, a reserved byte set,
 *   MSG_VMPCK above 3, a payload beyond the page → INVALID_PARAM;
 * - MSG_SEQNO other than exactly the last response's + 1 for that VMPCK (a replay, or a skipped number) →
 *   INVALID_PARAM; a request that would leave no sequence number for its response → AEAD_OFLOW;
 * - the tag does not verify under that VMPCK (a wrong key, a tampered header or payload) → BAD_SIGNATURE (the
 *   public record names no code for an AEAD failure; this is the emulator's choice, as the SEV handlers make theirs);
 * - an unsupported MSG_TYPE, or MSG_VERSION other than 1, or a payload of the wrong size → INVALID_PARAM.
 *
 * A well-formed request the firmware will not serve is answered, with STATUS in the response:
 *
 * - MSG_REPORT_REQ: VMPL below the requester's (the VMPL its VMPCK belongs to) or above 3, reserved bits → 0x16
 *   INVALID_PARAM; KEY_SEL 2 (VLEK; none is loaded) or VCEK use disabled at SNP_LAUNCH_FINISH → 0x27 INVALID_KEY.
 * - MSG_KEY_REQ: the same VMPL and KEY_SEL rules; ROOT_KEY_SEL VMRK (no migration agent, so no VMRK), undefined
 *   GUEST_FIELD_SELECT bits, GUEST_SVN above the guest's, TCB_VERSION above the current TCB in any component →
 *   INVALID_PARAM.
 */
import { createHmac } from "node:crypto";
import { decodeSnpTcb } from "../../../certs/snp-report.ts";
import { ByteWriter, concat } from "../../../lib/bytes.ts";
import type { CommandBuffer } from "../../command-buffer.ts";
import { rangeOk } from "../../handlers/common.ts";
import { SevStatus, type SevStatusCode } from "../../status.ts";
import type { SnpFirmwareState, SnpGuestContext } from "../firmware-state.ts";
import {
  AEAD_AES_256_GCM,
  decodeGuestMessageHeader,
  MSG_HDR_SIZE,
  MSG_HDR_VERSION,
  MSG_PAGE_SIZE,
  MSG_PAYLOAD_MAX,
  openGuestMessage,
  SnpMsgType,
  sealGuestMessage,
} from "../guest-message.ts";
import {
  DERIVED_KEY_SIZE,
  decodeKeyRequest,
  decodeReportRequest,
  encodeKeyResponse,
  encodeReportResponse,
  GUEST_FIELD_SELECT_DEFINED,
  GuestFieldSelect,
  KEY_MSG_VERSION,
  KEY_REQ_SIZE,
  REPORT_MSG_VERSION,
  REPORT_REQ_SIZE,
} from "../guest-request-messages.ts";
import { emulatedChipReport, reportCpuid } from "../report-signer.ts";
import { snpTcbLayout } from "../tcb.ts";

const MAX_SEQNO = (1n << 64n) - 1n;

export function snpGuestRequest(
  snp: SnpFirmwareState,
  buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const reqPa = buf.addr(8);
  const resPa = buf.addr(0x10);
  for (const pa of [reqPa, resPa]) {
    if (pa === undefined || pa % MSG_PAGE_SIZE !== 0 || !rangeOk(snp.sev, pa, MSG_PAGE_SIZE)) {
      return SevStatus.INVALID_ADDRESS;
    }
  }
  const page = snp.sev.memory.read(reqPa!, MSG_PAGE_SIZE);
  const h = decodeGuestMessageHeader(page);
  if (
    h.algo !== AEAD_AES_256_GCM ||
    h.hdrVersion !== MSG_HDR_VERSION ||
    h.hdrSize !== MSG_HDR_SIZE ||
    !h.reservedZero ||
    h.vmpck > 3 ||
    h.msgSize > MSG_PAYLOAD_MAX
  ) {
    return SevStatus.INVALID_PARAM;
  }
  const last = guest.msgSeqno[h.vmpck]!;
  if (h.seqno !== last + 1n) return SevStatus.INVALID_PARAM;
  if (h.seqno >= MAX_SEQNO) return SevStatus.AEAD_OFLOW;
  const key = guest.vmpck[h.vmpck]!;
  const payload = openGuestMessage(key, page);
  if (!payload) return SevStatus.BAD_SIGNATURE;

  let response: Uint8Array;
  if (h.msgType === SnpMsgType.REPORT_REQ) {
    if (h.msgVersion !== REPORT_MSG_VERSION || payload.length !== REPORT_REQ_SIZE)
      return SevStatus.INVALID_PARAM;
    response = reportResponse(snp, guest, h.vmpck, payload);
  } else if (h.msgType === SnpMsgType.KEY_REQ) {
    if (h.msgVersion !== KEY_MSG_VERSION || payload.length !== KEY_REQ_SIZE) return SevStatus.INVALID_PARAM;
    response = keyResponse(snp, guest, h.vmpck, payload);
  } else {
    return SevStatus.INVALID_PARAM;
  }
  const sealed = sealGuestMessage(key, {
    seqno: h.seqno + 1n,
    msgType: h.msgType + 1,
    msgVersion: h.msgVersion,
    vmpck: h.vmpck,
    payload: response,
  });
  const out = new Uint8Array(MSG_PAGE_SIZE);
  out.set(sealed);
  snp.sev.memory.write(resPa!, out);
  guest.msgSeqno[h.vmpck] = h.seqno + 1n;
  return SevStatus.SUCCESS;
}

function reportResponse(snp: SnpFirmwareState, g: SnpGuestContext, requester: number, payload: Uint8Array) {
  const req = decodeReportRequest(payload);
  if (!req.reservedZero || req.vmpl < requester || req.vmpl > 3 || req.keySel === 3) {
    return encodeReportResponse(SevStatus.INVALID_PARAM, undefined);
  }
  if (req.keySel === 2 || g.vcekDisabled) return encodeReportResponse(SevStatus.INVALID_KEY, undefined);
  const api = snp.sev.api;
  const version = { major: api.major, minor: api.minor, build: api.build };
  const v3 = api.major > 1 || (api.major === 1 && api.minor >= 55);
  const report = emulatedChipReport(snp.generation, snp.sev.identity.chipId, {
    version: v3 ? 3 : 2,
    guestSvn: g.guestSvn,
    policy: g.policy,
    familyId: g.familyId,
    imageId: g.imageId,
    vmpl: req.vmpl,
    currentTcb: snp.tcb.current,
    platformInfo: platformInfo(snp),
    authorKeyEn: g.authorKeyEn,
    reportData: req.reportData,
    measurement: g.measurement!,
    hostData: g.hostData,
    idKeyDigest: g.idKeyDigest,
    authorKeyDigest: g.authorKeyDigest,
    reportId: g.reportId,
    reportIdMa: g.reportIdMa,
    reportedTcb: snp.tcb.reported,
    ...(v3 ? { cpuid: reportCpuid(snp.generation) } : {}),
    committedTcb: snp.tcb.committed,
    currentVersion: version,
    committedVersion: version,
    launchTcb: g.launchTcb,
  });
  return encodeReportResponse(SevStatus.SUCCESS, report);
}

/**
 * The report's PLATFORM_INFO (docs/sev-interface.md §14): bit 0 SMT enabled, bit 4 ciphertext hiding enabled for
 * DRAM (SNP_INIT_EX CIPHERTEXT_HIDING_EN). TSME, ECC, RAPL_DIS and the alias check are not reported.
 */
function platformInfo(snp: SnpFirmwareState): bigint {
  return (snp.smt ? 1n : 0n) | (snp.ciphertextHiding ? 1n << 4n : 0n);
}

/** Every SPL of TCB `a` is at most that of `b`, in the generation's byte layout (FMC too on Turin). */
function tcbAtMost(snp: SnpFirmwareState, a: bigint, b: bigint): boolean {
  const layout = snpTcbLayout(snp.generation);
  const x = decodeSnpTcb(a, layout);
  const y = decodeSnpTcb(b, layout);
  return (
    (x.fmc ?? 0) <= (y.fmc ?? 0) &&
    x.bootloader <= y.bootloader &&
    x.tee <= y.tee &&
    x.snp <= y.snp &&
    x.microcode <= y.microcode
  );
}

/**
 * MSG_KEY_RSP: a key derived inside the Secure Processor from the chip-unique root and the mix the request selects
 * (VMPL, the selected guest fields). The derivation is HMAC-SHA-384 over a fixed label and those fields, cut to
 * 32 bytes: the property AMD documents — the same chip, guest fields and VMPL give the same key, anything else
 * another — without claiming AMD's exact KDF input.
 */
function keyResponse(snp: SnpFirmwareState, g: SnpGuestContext, requester: number, payload: Uint8Array) {
  const req = decodeKeyRequest(payload);
  const bad = () => encodeKeyResponse(SevStatus.INVALID_PARAM, undefined);
  if (!req.reservedZero || req.vmpl < requester || req.vmpl > 3 || req.keySel === 3) return bad();
  if (req.keySel === 2 || g.vcekDisabled) return encodeKeyResponse(SevStatus.INVALID_KEY, undefined);
  if (req.rootKeySel !== 0) return bad();
  const sel = req.guestFieldSelect;
  if (sel & ~GUEST_FIELD_SELECT_DEFINED) return bad();
  if (req.guestSvn > g.guestSvn) return bad();
  if (!tcbAtMost(snp, req.tcbVersion, snp.tcb.current)) return bad();
  const has = (b: bigint) => (sel & b) !== 0n;
  const mix = new ByteWriter(0x20).u32(0, req.vmpl).u64(8, sel).bytes;
  const parts = [new TextEncoder().encode("ciphervisor-snp-derived-key\0"), mix];
  if (has(GuestFieldSelect.POLICY)) parts.push(new ByteWriter(8).u64(0, g.policy).bytes);
  if (has(GuestFieldSelect.IMAGE_ID)) parts.push(g.imageId);
  if (has(GuestFieldSelect.FAMILY_ID)) parts.push(g.familyId);
  if (has(GuestFieldSelect.MEASUREMENT)) parts.push(g.measurement!);
  if (has(GuestFieldSelect.GUEST_SVN)) parts.push(new ByteWriter(4).u32(0, req.guestSvn).bytes);
  if (has(GuestFieldSelect.TCB_VERSION)) parts.push(new ByteWriter(8).u64(0, req.tcbVersion).bytes);
  const key = new Uint8Array(
    createHmac("sha384", snp.keyRoot)
      .update(concat(...parts))
      .digest(),
  ).slice(0, DERIVED_KEY_SIZE);
  return encodeKeyResponse(SevStatus.SUCCESS, key);
}
