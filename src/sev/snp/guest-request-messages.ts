/**
 * The payloads of the guest messages the emulated firmware answers (SNP ABI 56860, the guest messages chapter: the
 * MSG_REPORT_REQ / MSG_REPORT_RSP and MSG_KEY_REQ / MSG_KEY_RSP tables; Linux's `struct snp_report_req` and
 * `struct snp_derived_key_req`). A request that is well formed as a message but asks for something the firmware
 * refuses still gets a response: its STATUS says why (INVALID_PARAM 0x16, INVALID_KEY 0x27).
 *
 * MSG_REPORT_REQ (0x60): REPORT_DATA[64] @0, VMPL u32 @0x40, KEY_SEL u32 @0x44 (bits 1:0: 0 either, 1 VCEK,
 * 2 VLEK), reserved to 0x60. MSG_REPORT_RSP (0x4C0): STATUS u32 @0, REPORT_SIZE u32 @4, reserved to 0x20, REPORT
 * (0x4A0 bytes) @0x20.
 *
 * MSG_KEY_REQ (0x20): u32 @0 (bit 0 ROOT_KEY_SEL: 0 VCEK, 1 VMRK; bits 2:1 KEY_SEL), reserved u32 @4,
 * GUEST_FIELD_SELECT u64 @8 (bit 0 policy, 1 image id, 2 family id, 3 measurement, 4 guest SVN, 5 TCB version),
 * VMPL u32 @0x10, GUEST_SVN u32 @0x14, TCB_VERSION u64 @0x18. MSG_KEY_RSP (0x40): STATUS u32 @0, reserved to 0x20,
 * DERIVED_KEY[32] @0x20.
 */
import { SNP_REPORT_SIZE } from "../../certs/snp-report.ts";
import { ByteReader, ByteWriter } from "../../lib/bytes.ts";

export const REPORT_REQ_SIZE = 0x60;
export const REPORT_RSP_SIZE = 0x20 + SNP_REPORT_SIZE;
export const KEY_REQ_SIZE = 0x20;
export const KEY_RSP_SIZE = 0x40;
export const DERIVED_KEY_SIZE = 32;
/** The message versions this firmware answers. */
export const REPORT_MSG_VERSION = 1;
export const KEY_MSG_VERSION = 1;

export const GuestFieldSelect = {
  POLICY: 1n << 0n,
  IMAGE_ID: 1n << 1n,
  FAMILY_ID: 1n << 2n,
  MEASUREMENT: 1n << 3n,
  GUEST_SVN: 1n << 4n,
  TCB_VERSION: 1n << 5n,
} as const;
export const GUEST_FIELD_SELECT_DEFINED = (1n << 6n) - 1n;

export interface ReportRequest {
  reportData: Uint8Array;
  vmpl: number;
  keySel: number;
  reservedZero: boolean;
}

export function encodeReportRequest(r: {
  reportData?: Uint8Array;
  vmpl?: number;
  keySel?: number;
}): Uint8Array {
  const w = new ByteWriter(REPORT_REQ_SIZE);
  if (r.reportData) w.set(0, r.reportData);
  return w.u32(0x40, r.vmpl ?? 0).u32(0x44, r.keySel ?? 0).bytes;
}

export function decodeReportRequest(b: Uint8Array): ReportRequest {
  const r = new ByteReader(b, "MSG_REPORT_REQ");
  const keySelWord = r.u32(0x44);
  return {
    reportData: r.slice(0, 64),
    vmpl: r.u32(0x40),
    keySel: keySelWord & 3,
    reservedZero: (keySelWord & ~3) === 0 && r.slice(0x48, 0x18).every((x) => x === 0),
  };
}

export function encodeReportResponse(status: number, report: Uint8Array | undefined): Uint8Array {
  const w = new ByteWriter(REPORT_RSP_SIZE).u32(0, status);
  if (report) w.u32(4, report.length).set(0x20, report);
  return w.bytes;
}

export function decodeReportResponse(b: Uint8Array): { status: number; report: Uint8Array | undefined } {
  const r = new ByteReader(b, "MSG_REPORT_RSP");
  const size = r.u32(4);
  return { status: r.u32(0), report: size > 0 ? r.slice(0x20, size) : undefined };
}

export interface KeyRequest {
  rootKeySel: number;
  keySel: number;
  guestFieldSelect: bigint;
  vmpl: number;
  guestSvn: number;
  tcbVersion: bigint;
  reservedZero: boolean;
}

export function encodeKeyRequest(k: Partial<Omit<KeyRequest, "reservedZero">>): Uint8Array {
  return new ByteWriter(KEY_REQ_SIZE)
    .u32(0, ((k.rootKeySel ?? 0) & 1) | (((k.keySel ?? 0) & 3) << 1))
    .u64(8, k.guestFieldSelect ?? 0n)
    .u32(0x10, k.vmpl ?? 0)
    .u32(0x14, k.guestSvn ?? 0)
    .u64(0x18, k.tcbVersion ?? 0n).bytes;
}

export function decodeKeyRequest(b: Uint8Array): KeyRequest {
  const r = new ByteReader(b, "MSG_KEY_REQ");
  const w0 = r.u32(0);
  return {
    rootKeySel: w0 & 1,
    keySel: (w0 >> 1) & 3,
    guestFieldSelect: r.u64(8),
    vmpl: r.u32(0x10),
    guestSvn: r.u32(0x14),
    tcbVersion: r.u64(0x18),
    reservedZero: (w0 & ~7) === 0 && r.u32(4) === 0,
  };
}

export function encodeKeyResponse(status: number, key: Uint8Array | undefined): Uint8Array {
  const w = new ByteWriter(KEY_RSP_SIZE).u32(0, status);
  if (key) w.set(0x20, key);
  return w.bytes;
}

export function decodeKeyResponse(b: Uint8Array): { status: number; key: Uint8Array } {
  const r = new ByteReader(b, "MSG_KEY_RSP");
  return { status: r.u32(0), key: r.slice(0x20, DERIVED_KEY_SIZE) };
}
