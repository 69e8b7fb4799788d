/**
 * The packet header that carries LAUNCH_SECRET payloads (and SEND_/RECEIVE_UPDATE_* pages), docs/sev-interface.md
 * §4.4 and §10.1.
 *
 * Header, 0x34 bytes: flags u32 @0 (bit 0 COMPRESSED; tools send 0), iv[16] @4, mac[32] @0x14.
 *
 * `mac = HMAC-SHA256(TIK, 0x01 ‖ flags ‖ iv ‖ guest_len ‖ trans_len ‖ trans ‖ MEASURE)`; MEASURE (the 32-byte
 * launch measurement) is included only for API ≥ 0.17 (docs/sev-interface.md §15 pitfall 8).
 */
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter, concat, u32le } from "../lib/bytes.ts";
import { hmacSha256 } from "./hash.ts";

export const PACKET_HEADER_SIZE = 0x34;

export interface PacketHeader {
  flags: number;
  iv: Uint8Array;
  mac: Uint8Array;
}

export function encodePacketHeader(h: PacketHeader): Uint8Array {
  return new ByteWriter(PACKET_HEADER_SIZE).u32(0, h.flags).set(4, h.iv).set(0x14, h.mac).bytes;
}

export function parsePacketHeader(bytes: Uint8Array): PacketHeader {
  if (bytes.length !== PACKET_HEADER_SIZE) {
    throw new CiphervisorError(
      "MALFORMED",
      `a packet header is ${PACKET_HEADER_SIZE} bytes, got ${bytes.length}`,
    );
  }
  const r = new ByteReader(bytes, "packet header");
  return { flags: r.u32(0), iv: r.slice(4, 16), mac: r.slice(0x14, 32) };
}

/** True when the firmware with API `major.minor` mixes MEASURE into the secret MAC (API ≥ 0.17). */
export function secretMacIncludesMeasure(apiMajor: number, apiMinor: number): boolean {
  return apiMajor > 0 || apiMinor >= 17;
}

/**
 * The LAUNCH_SECRET header MAC. `measure` is the 32-byte MEASURE, or undefined for API < 0.17.
 * `contextByte` is 0x01 for launch secrets; migration packets use their own context byte.
 */
export function launchSecretMac(
  tik: Uint8Array,
  flags: number,
  iv: Uint8Array,
  guestLen: number,
  trans: Uint8Array,
  measure: Uint8Array | undefined,
  contextByte = 0x01,
): Uint8Array {
  return hmacSha256(
    tik,
    concat(
      new Uint8Array([contextByte]),
      u32le(flags),
      iv,
      u32le(guestLen),
      u32le(trans.length),
      trans,
      measure ?? new Uint8Array(),
    ),
  );
}
