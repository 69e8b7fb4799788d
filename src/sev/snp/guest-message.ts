/**
 * SEV-SNP guest messages: the AEAD envelope in which a guest talks to the Secure Processor through SNP_GUEST_REQUEST
 * (SNP ABI 56860, the guest messages chapter: its message header table and the AEAD rules; the same layout as Linux's
 * `struct snp_guest_msg_hdr`). Both ends use this module: the firmware (`handlers/guest-request.ts`) and a guest
 * holding its VMPCKs (`guest-channel.ts`).
 *
 * | offset | size | header field |
 * |---|---|---|
 * | 0x00 | 32 | AUTHTAG: the AES-GCM tag in its first 16 bytes, zeros after |
 * | 0x20 | 8 | MSG_SEQNO |
 * | 0x28 | 8 | reserved |
 * | 0x30 | 1 | ALGO: 1 = AES-256-GCM |
 * | 0x31 | 1 | HDR_VERSION = 1 |
 * | 0x32 | 2 | HDR_SIZE = 0x60 |
 * | 0x34 | 1 | MSG_TYPE |
 * | 0x35 | 1 | MSG_VERSION |
 * | 0x36 | 2 | MSG_SIZE: payload bytes |
 * | 0x38 | 4 | reserved |
 * | 0x3C | 1 | MSG_VMPCK: which VMPCK (0–3) the message is under |
 * | 0x3D | 35 | reserved |
 * | 0x60 | MSG_SIZE | the encrypted payload |
 *
 * AES-256-GCM with the VMPCK as key, the 12-byte IV = MSG_SEQNO (u64 little-endian, then 4 zero bytes), and the
 * additional authenticated data = header bytes [0x30, 0x60) (ALGO to the end of the header). The guest's requests
 * carry odd sequence numbers; each response carries the request's number + 1, and the firmware accepts a request
 * only at exactly one more than the last response it sent under that VMPCK.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { ByteReader, ByteWriter } from "../../lib/bytes.ts";

export const MSG_HDR_SIZE = 0x60;
export const MSG_HDR_VERSION = 1;
export const AEAD_AES_256_GCM = 1;
export const AUTHTAG_SIZE = 16;
/** A message lives in one 4 KiB page. */
export const MSG_PAGE_SIZE = 4096;
export const MSG_PAYLOAD_MAX = MSG_PAGE_SIZE - MSG_HDR_SIZE;

/** MSG_TYPE values (SNP ABI 56860, the message type table; Linux `enum msg_type`). */
export const SnpMsgType = {
  CPUID_REQ: 1,
  CPUID_RSP: 2,
  KEY_REQ: 3,
  KEY_RSP: 4,
  REPORT_REQ: 5,
  REPORT_RSP: 6,
  EXPORT_REQ: 7,
  EXPORT_RSP: 8,
  IMPORT_REQ: 9,
  IMPORT_RSP: 10,
  ABSORB_REQ: 11,
  ABSORB_RSP: 12,
  VMRK_REQ: 13,
  VMRK_RSP: 14,
} as const;

export interface GuestMessageHeader {
  authtag: Uint8Array;
  seqno: bigint;
  algo: number;
  hdrVersion: number;
  hdrSize: number;
  msgType: number;
  msgVersion: number;
  msgSize: number;
  vmpck: number;
  /** Whether every reserved byte is zero. */
  reservedZero: boolean;
}

export function decodeGuestMessageHeader(page: Uint8Array): GuestMessageHeader {
  const r = new ByteReader(page, "SNP guest message");
  const reserved = [...r.slice(0x28, 8), ...r.slice(0x38, 4), ...r.slice(0x3d, 35)];
  return {
    authtag: r.slice(0, 32),
    seqno: r.u64(0x20),
    algo: r.u8(0x30),
    hdrVersion: r.u8(0x31),
    hdrSize: r.u16(0x32),
    msgType: r.u8(0x34),
    msgVersion: r.u8(0x35),
    msgSize: r.u16(0x36),
    vmpck: r.u8(0x3c),
    reservedZero: reserved.every((b) => b === 0),
  };
}

function iv(seqno: bigint): Uint8Array {
  return new ByteWriter(12).u64(0, seqno).bytes;
}

export interface GuestMessage {
  seqno: bigint;
  msgType: number;
  msgVersion: number;
  vmpck: number;
  payload: Uint8Array;
}

/** Encrypts `m` under `key` (32 bytes): the header and ciphertext, `MSG_HDR_SIZE + payload` bytes. */
export function sealGuestMessage(key: Uint8Array, m: GuestMessage): Uint8Array {
  const out = new ByteWriter(MSG_HDR_SIZE + m.payload.length)
    .u64(0x20, m.seqno)
    .u8(0x30, AEAD_AES_256_GCM)
    .u8(0x31, MSG_HDR_VERSION)
    .u16(0x32, MSG_HDR_SIZE)
    .u8(0x34, m.msgType)
    .u8(0x35, m.msgVersion)
    .u16(0x36, m.payload.length)
    .u8(0x3c, m.vmpck).bytes;
  const c = createCipheriv("aes-256-gcm", key, iv(m.seqno), { authTagLength: AUTHTAG_SIZE });
  c.setAAD(out.subarray(0x30, MSG_HDR_SIZE));
  const ct = Buffer.concat([c.update(m.payload), c.final()]);
  out.set(ct, MSG_HDR_SIZE);
  out.set(c.getAuthTag(), 0);
  return out;
}

/** Decrypts and authenticates a sealed message; undefined when the tag does not verify under `key`. */
export function openGuestMessage(key: Uint8Array, page: Uint8Array): Uint8Array | undefined {
  const h = decodeGuestMessageHeader(page);
  if (MSG_HDR_SIZE + h.msgSize > page.length) return undefined;
  try {
    const d = createDecipheriv("aes-256-gcm", key, iv(h.seqno), { authTagLength: AUTHTAG_SIZE });
    d.setAAD(page.subarray(0x30, MSG_HDR_SIZE));
    d.setAuthTag(page.subarray(0, AUTHTAG_SIZE));
    const pt = Buffer.concat([d.update(page.subarray(MSG_HDR_SIZE, MSG_HDR_SIZE + h.msgSize)), d.final()]);
    return new Uint8Array(pt);
  } catch {
    return undefined;
  }
}
