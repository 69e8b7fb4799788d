/** Platform commands (docs/sev-interface.md §2, §4.2). */

import {
  parseSevCert,
  SEV_CERT_SIZE,
  type SevCert,
  Usage,
  verifySevCertSignature,
} from "../../certs/sev-cert.ts";
import { ctEqual } from "../../lib/bytes.ts";
import type { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState } from "../firmware-state.ts";
import { PlatformState } from "../state-tables.ts";
import { SevStatus, type SevStatusCode } from "../status.ts";
import { rangeOk } from "./common.ts";

const MiB = 1024 * 1024;
export const GET_ID_SIZE = 64;
export const PDH_CHAIN_SIZE = 3 * SEV_CERT_SIZE;

/** INIT: flags u32 @0 (bit 0 SEV-ES), TMR address u64 @8, TMR length u32 @0x10. */
export function init(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  const flags = buf.r.u32(0);
  const es = (flags & 1) !== 0;
  if (flags & ~1) return SevStatus.INVALID_PARAM;
  if (es) {
    // SEV-ES needs the hardware and a 1 MiB, 1 MiB-aligned Trusted Memory Region (§2 INIT buffer).
    if (!fw.model.sevEs) return SevStatus.INVALID_CONFIG;
    const tmr = buf.addr(8);
    const tmrLen = buf.r.u32(0x10);
    if (tmrLen !== MiB) return SevStatus.INVALID_LENGTH;
    if (tmr === undefined || tmr % MiB !== 0 || !rangeOk(fw, tmr, tmrLen)) return SevStatus.INVALID_ADDRESS;
  }
  fw.state = "INIT";
  fw.esEnabled = es;
  return SevStatus.SUCCESS;
}

/** SHUTDOWN: every guest context is destroyed, every key slot cleared; a no-op in UNINIT. */
export function shutdown(fw: FirmwareState): SevStatusCode {
  if (fw.state === "UNINIT") return SevStatus.SUCCESS;
  for (const g of fw.guests.values()) if (g.asid) fw.keySlots.clear(g.asid);
  fw.guests.clear();
  fw.asids.reset();
  fw.state = "UNINIT";
  fw.esEnabled = false;
  return SevStatus.SUCCESS;
}

/** PLATFORM_RESET: new PEK, PDH and a self-owned OCA (persistent state deleted). */
export function platformReset(fw: FirmwareState): SevStatusCode {
  fw.resetIdentity();
  return SevStatus.SUCCESS;
}

/** PLATFORM_STATUS output (§2): api_major, api_minor, state, owner bit, CONFIG_ES bit, build @7, guest_count @8. */
export function platformStatus(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  buf.setU8(0, fw.api.major);
  buf.setU8(1, fw.api.minor);
  buf.setU8(2, PlatformState[fw.state]);
  buf.setU8(3, fw.identity.owner === "external" ? 1 : 0);
  buf.setU8(4, fw.esEnabled ? 1 : 0);
  buf.setU8(5, 0);
  buf.setU8(6, 0);
  buf.setU8(7, fw.api.build);
  buf.setU32(8, fw.guests.size);
  return SevStatus.SUCCESS;
}

export function pekGen(fw: FirmwareState): SevStatusCode {
  fw.identity.regenerate(fw.rng);
  return SevStatus.SUCCESS;
}

export function pdhGen(fw: FirmwareState): SevStatusCode {
  fw.identity.regeneratePdh(fw.rng);
  return SevStatus.SUCCESS;
}

/** Writes `data` to the buffer at {addr @addrOff, len @lenOff}; too small → INVALID_LENGTH with the needed length. */
function writeOut(
  fw: FirmwareState,
  buf: CommandBuffer,
  addrOff: number,
  lenOff: number,
  data: Uint8Array,
): SevStatusCode | (() => void) {
  const len = buf.r.u32(lenOff);
  buf.setLength(lenOff, data.length);
  if (len < data.length) return SevStatus.INVALID_LENGTH;
  const pa = buf.addr(addrOff);
  if (!rangeOk(fw, pa, data.length)) return SevStatus.INVALID_ADDRESS;
  return () => fw.memory.write(pa, data);
}

/** PEK_CSR {u64 addr, u32 len}: the PEK certificate with both signature slots empty. */
export function pekCsr(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  const w = writeOut(fw, buf, 0, 8, fw.identity.pekCsr());
  if (typeof w === "number") return w;
  w();
  return SevStatus.SUCCESS;
}

/** GET_ID {u64 addr, u32 len}: 64 bytes per socket (one socket here). */
export function getId(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  const w = writeOut(fw, buf, 0, 8, fw.identity.chipId);
  if (typeof w === "number") return w;
  w();
  return SevStatus.SUCCESS;
}

/**
 * PDH_CERT_EXPORT {u64 pdh_addr, u32 pdh_len, u32 rsvd, u64 chain_addr, u32 chain_len}: the PDH and PEK ‖ OCA ‖ CEK.
 * Both lengths are written back when either buffer is too small. The CEK here is not ASK-signed (docs/sev-interface.md §15 pitfall 18).
 */
export function pdhCertExport(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  const pdh = fw.identity.pdhCert;
  const chain = new Uint8Array(PDH_CHAIN_SIZE);
  chain.set(fw.identity.pekCert, 0);
  chain.set(fw.identity.ocaCert, SEV_CERT_SIZE);
  chain.set(fw.identity.cekCert, 2 * SEV_CERT_SIZE);
  const pdhLen = buf.r.u32(0x08);
  const chainLen = buf.r.u32(0x18);
  buf.setLength(0x08, pdh.length);
  buf.setLength(0x18, chain.length);
  if (pdhLen < pdh.length || chainLen < chain.length) return SevStatus.INVALID_LENGTH;
  const pdhPa = buf.addr(0);
  const chainPa = buf.addr(0x10);
  if (!rangeOk(fw, pdhPa, pdh.length) || !rangeOk(fw, chainPa, chain.length))
    return SevStatus.INVALID_ADDRESS;
  fw.memory.write(pdhPa, pdh);
  fw.memory.write(chainPa, chain);
  return SevStatus.SUCCESS;
}

/**
 * PEK_CERT_IMPORT {u64 pek_addr, u32 pek_len, u32 rsvd, u64 oca_addr, u32 oca_len}: an owner takes the platform.
 * Checks (in order): not already externally owned (ALREADY_OWNED), lengths, parse, the PEK key is ours and the
 * OCA key is ECDSA (INVALID_CERTIFICATE), the OCA signature over the PEK (BAD_SIGNATURE).
 */
export function pekCertImport(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  if (fw.identity.owner === "external") return SevStatus.ALREADY_OWNED;
  if (buf.r.u32(0x08) !== SEV_CERT_SIZE || buf.r.u32(0x18) !== SEV_CERT_SIZE) return SevStatus.INVALID_LENGTH;
  const pekPa = buf.addr(0);
  const ocaPa = buf.addr(0x10);
  if (!rangeOk(fw, pekPa, SEV_CERT_SIZE) || !rangeOk(fw, ocaPa, SEV_CERT_SIZE))
    return SevStatus.INVALID_ADDRESS;
  const pekBytes = fw.memory.read(pekPa, SEV_CERT_SIZE);
  const ocaBytes = fw.memory.read(ocaPa, SEV_CERT_SIZE);
  let pek: SevCert;
  let oca: SevCert;
  try {
    pek = parseSevCert(pekBytes);
    oca = parseSevCert(ocaBytes);
  } catch {
    return SevStatus.INVALID_CERTIFICATE;
  }
  const own = fw.identity.pekPublic;
  if (
    pek.usage !== Usage.PEK ||
    oca.usage !== Usage.OCA ||
    pek.key.kind !== "ecc" ||
    oca.key.kind !== "ecc" ||
    !ctEqual(pek.key.pub.x, own.x) ||
    !ctEqual(pek.key.pub.y, own.y)
  ) {
    return SevStatus.INVALID_CERTIFICATE;
  }
  if (!verifySevCertSignature(pek, Usage.OCA, { kind: "ecc", pub: oca.key.pub }))
    return SevStatus.BAD_SIGNATURE;
  fw.identity.importOwnerOca(pekBytes, ocaBytes);
  return SevStatus.SUCCESS;
}

/** DF_FLUSH: WBINVD_REQUIRED unless every core ran WBINVD since the last DEACTIVATE; then dirty ASIDs are clean. */
export function dfFlush(fw: FirmwareState): SevStatusCode {
  const s = fw.asids.checkDfFlush();
  if (s !== SevStatus.SUCCESS) return s;
  fw.asids.dfFlush();
  return SevStatus.SUCCESS;
}
