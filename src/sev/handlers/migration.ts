/**
 * SEND_* and RECEIVE_* (docs/sev-interface.md §4.1, §6, §10.1): moving a running guest to another platform with its
 * memory re-encrypted under transport keys that only the two Secure Processors can derive.
 *
 * - SEND_START checks the policy (NOSEND → POLICY_FAILURE), the receiver's certificates (PDH signed by its PEK;
 *   with the SEV bit the whole chain PDH/PEK/CEK/ASK/ARK up to a trusted ARK; the receiver's API ≥ the policy
 *   minimum; with DOMAIN the receiver's OCA must equal ours — AMD `sev_mcmd_send_start`, `validate_domain`), then
 *   chooses fresh TEK/TIK and wraps them for Z = ECDH(our PDH, receiver PDH).
 * - RECEIVE_START derives the same Z from its PDH and the sender's PDH and unwraps them.
 * - Packets use the LAUNCH_SECRET header. No public tool pins the exact MAC input of migration packets
 *   [unconfirmed]; this emulator uses the launch-secret MAC with context byte 0x02 for data and 0x03 for VMSA
 *   pages, and no MEASURE.
 */
import { type AmdCert, parseAmdCertPrefix, verifyAmdCertSignature } from "../../certs/amd-cert.ts";
import {
  parseSevCert,
  SEV_CERT_SIZE,
  type SevCert,
  Usage,
  verifySevCertSignature,
} from "../../certs/sev-cert.ts";
import { aes128Ctr } from "../../crypto/aes.ts";
import { ecdh } from "../../crypto/ec.ts";
import {
  encodePacketHeader,
  launchSecretMac,
  PACKET_HEADER_SIZE,
  parsePacketHeader,
} from "../../crypto/packet.ts";
import {
  encodeSession,
  parseSession,
  SESSION_SIZE,
  unwrapSession,
  wrapSession,
} from "../../crypto/session.ts";
import { ctEqual } from "../../lib/bytes.ts";
import { GENERATIONS } from "../../machine/cpu-models.ts";
import type { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState, GuestContext } from "../firmware-state.ts";
import { emulatedRootCerts } from "../manufacturer/emulated-amd.ts";
import { decodePolicy } from "../policy.ts";
import { SevStatus, type SevStatusCode } from "../status.ts";
import {
  BLOB_MAX,
  checkGranule,
  checkStart,
  newGuest,
  rangeOk,
  readPeerDhCert,
  requireActive,
} from "./common.ts";

const CTX_DATA = 0x02;
const CTX_VMSA = 0x03;

function parseCerts(bytes: Uint8Array, count: number): SevCert[] | undefined {
  try {
    return Array.from({ length: count }, (_, i) =>
      parseSevCert(bytes.subarray(i * SEV_CERT_SIZE, (i + 1) * SEV_CERT_SIZE)),
    );
  } catch {
    return undefined;
  }
}

/** The receiver's ASK ‖ ARK must chain to an ARK this firmware trusts (pinned, byte for byte). */
function verifyAmdChain(amd: Uint8Array, cek: SevCert): SevStatusCode {
  let ask: AmdCert;
  let ark: AmdCert;
  try {
    const first = parseAmdCertPrefix(amd, "ASK");
    ask = first.cert;
    ark = parseAmdCertPrefix(amd.subarray(first.consumed), "ARK").cert;
    if (first.consumed + ark.bytes.length !== amd.length) return SevStatus.INVALID_CERTIFICATE;
  } catch {
    return SevStatus.INVALID_CERTIFICATE;
  }
  const trusted = GENERATIONS.some((g) => ctEqual(emulatedRootCerts(g).ark, ark.bytes));
  if (!trusted || ask.keyUsage !== Usage.ASK || !ctEqual(ask.certifyingId, ark.keyId))
    return SevStatus.INVALID_CERTIFICATE;
  if (!verifyAmdCertSignature(ark, ark) || !verifyAmdCertSignature(ask, ark)) return SevStatus.BAD_SIGNATURE;
  if (!verifySevCertSignature(cek, Usage.ASK, { kind: "rsa", pub: ask.pub, modulusBits: ask.modulusBits })) {
    return SevStatus.BAD_SIGNATURE;
  }
  return SevStatus.SUCCESS;
}

/**
 * SEND_START {handle, policy (out) @4, pdh @8/@0x10, plat_certs (PEK ‖ OCA ‖ CEK) @0x18/@0x20,
 * amd_certs (ASK ‖ ARK) @0x28/@0x30, session @0x38, session_len (in/out) @0x40}.
 */
export function sendStart(fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined): SevStatusCode {
  const guest = g!;
  const policy = decodePolicy(guest.policy);
  if (policy.nosend) return SevStatus.POLICY_FAILURE;
  const sessionLen = buf.r.u32(0x40);
  buf.setLength(0x40, SESSION_SIZE);
  if (sessionLen < SESSION_SIZE) return SevStatus.INVALID_LENGTH;
  const sessionPa = buf.addr(0x38);
  if (!rangeOk(fw, sessionPa, SESSION_SIZE)) return SevStatus.INVALID_ADDRESS;

  const pdh = readPeerDhCert(fw, buf.addr(0x08), buf.r.u32(0x10));
  if (!pdh.ok) return pdh.status;
  const platLen = buf.r.u32(0x20);
  if (platLen !== 3 * SEV_CERT_SIZE) return SevStatus.INVALID_LENGTH;
  const platPa = buf.addr(0x18);
  if (!rangeOk(fw, platPa, platLen)) return SevStatus.INVALID_ADDRESS;
  const plat = parseCerts(fw.memory.read(platPa, platLen), 3);
  if (!plat) return SevStatus.INVALID_CERTIFICATE;
  const [pek, oca, cek] = plat as [SevCert, SevCert, SevCert];
  if (pek.usage !== Usage.PEK || oca.usage !== Usage.OCA || cek.usage !== Usage.CEK)
    return SevStatus.INVALID_CERTIFICATE;
  if (pek.key.kind !== "ecc" || oca.key.kind !== "ecc" || cek.key.kind !== "ecc")
    return SevStatus.INVALID_CERTIFICATE;
  if (!verifySevCertSignature(pdh.value, Usage.PEK, { kind: "ecc", pub: pek.key.pub }))
    return SevStatus.BAD_SIGNATURE;
  if (
    !verifySevCertSignature(pek, Usage.OCA, { kind: "ecc", pub: oca.key.pub }) ||
    !verifySevCertSignature(pek, Usage.CEK, { kind: "ecc", pub: cek.key.pub })
  ) {
    return SevStatus.BAD_SIGNATURE;
  }
  if (policy.sev) {
    const amdLen = buf.r.u32(0x30);
    const amdPa = buf.addr(0x28);
    if (amdLen === 0 || amdLen > BLOB_MAX) return SevStatus.INVALID_LENGTH;
    if (!rangeOk(fw, amdPa, amdLen)) return SevStatus.INVALID_ADDRESS;
    const s = verifyAmdChain(fw.memory.read(amdPa, amdLen), cek);
    if (s !== SevStatus.SUCCESS) return s;
  }
  // The receiver's firmware API (stamped on its PDH) must meet the policy minimum.
  const r = pdh.value;
  if (r.apiMajor < policy.apiMajor || (r.apiMajor === policy.apiMajor && r.apiMinor < policy.apiMinor)) {
    return SevStatus.POLICY_FAILURE;
  }
  if (policy.domain && !ctEqual(oca.bytes.subarray(0, 0x414), fw.identity.ocaCert.subarray(0, 0x414))) {
    return SevStatus.POLICY_FAILURE;
  }
  if (pdh.value.key.kind !== "ecc") return SevStatus.INVALID_CERTIFICATE;
  const keys = { tek: fw.rng.bytes(16), tik: fw.rng.bytes(16) };
  const z = ecdh(fw.identity.pdhPrivate, pdh.value.key.pub);
  const session = wrapSession(z, keys, guest.policy, fw.rng.bytes(16), fw.rng.bytes(16));
  fw.memory.write(sessionPa, encodeSession(session));
  buf.setU32(4, guest.policy);
  guest.tek = keys.tek;
  guest.tik = keys.tik;
  return SevStatus.SUCCESS;
}

interface PacketArgs {
  hdrPa: number | undefined;
  hdrLen: number;
  guestPa: number | undefined;
  guestLen: number;
  transPa: number | undefined;
  transLen: number;
}

function packetArgs(buf: CommandBuffer): PacketArgs {
  return {
    hdrPa: buf.addr(0x08),
    hdrLen: buf.r.u32(0x10),
    guestPa: buf.addr(0x18),
    guestLen: buf.r.u32(0x20),
    transPa: buf.addr(0x28),
    transLen: buf.r.u32(0x30),
  };
}

function checkPacket(fw: FirmwareState, p: PacketArgs, vmsa: boolean): SevStatusCode {
  if (p.hdrLen < PACKET_HEADER_SIZE) return SevStatus.INVALID_LENGTH;
  if (p.guestLen !== p.transLen || p.transLen > BLOB_MAX) return SevStatus.INVALID_LENGTH;
  if (vmsa && p.guestLen !== 4096) return SevStatus.INVALID_LENGTH;
  const gs = checkGranule(p.guestPa, p.guestLen);
  if (gs !== SevStatus.SUCCESS) return gs;
  if (
    !rangeOk(fw, p.hdrPa, PACKET_HEADER_SIZE) ||
    !rangeOk(fw, p.guestPa, p.guestLen) ||
    !rangeOk(fw, p.transPa, p.transLen)
  ) {
    return SevStatus.INVALID_ADDRESS;
  }
  return SevStatus.SUCCESS;
}

function sendUpdate(
  fw: FirmwareState,
  buf: CommandBuffer,
  guest: GuestContext,
  vmsa: boolean,
): SevStatusCode {
  const a = requireActive(guest);
  if (a !== SevStatus.SUCCESS) return a;
  if (vmsa && !guest.es) return SevStatus.UNSUPPORTED;
  const p = packetArgs(buf);
  const s = checkPacket(fw, p, vmsa);
  if (s !== SevStatus.SUCCESS) return s;
  const plain = fw.keySlots.decrypt(guest.asid, p.guestPa!, fw.memory.read(p.guestPa!, p.guestLen));
  const iv = fw.rng.bytes(16);
  const trans = aes128Ctr(guest.tek, iv, plain);
  const mac = launchSecretMac(guest.tik, 0, iv, p.guestLen, trans, undefined, vmsa ? CTX_VMSA : CTX_DATA);
  fw.memory.write(p.hdrPa!, encodePacketHeader({ flags: 0, iv, mac }));
  fw.memory.write(p.transPa!, trans);
  return SevStatus.SUCCESS;
}

export const sendUpdateData = (fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined) =>
  sendUpdate(fw, buf, g!, false);
export const sendUpdateVmsa = (fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined) =>
  sendUpdate(fw, buf, g!, true);

/**
 * RECEIVE_START {handle (in/out) @0, policy @4, sender PDH @8/@0x10, session @0x18/@0x20}: a new guest context in
 * RUPDATE with a fresh VEK and the transport keys unwrapped from the session.
 */
export function receiveStart(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  const policy = buf.r.u32(4);
  const start = checkStart(fw, buf.r.u32(0), policy);
  if (!start.ok) return start.status;
  const shareWith = start.value;
  const sessionLen = buf.r.u32(0x20);
  if (sessionLen !== SESSION_SIZE) return SevStatus.INVALID_LENGTH;
  const sender = readPeerDhCert(fw, buf.addr(0x08), buf.r.u32(0x10));
  if (!sender.ok) return sender.status;
  const sessionPa = buf.addr(0x18);
  if (!rangeOk(fw, sessionPa, sessionLen)) return SevStatus.INVALID_ADDRESS;
  if (sender.value.key.kind !== "ecc") return SevStatus.INVALID_CERTIFICATE;
  const z = ecdh(fw.identity.pdhPrivate, sender.value.key.pub);
  const unwrapped = unwrapSession(z, parseSession(fw.memory.read(sessionPa, sessionLen)), policy);
  if (!unwrapped.ok)
    return unwrapped.failure === "WRAP_MAC" ? SevStatus.BAD_MEASUREMENT : SevStatus.POLICY_FAILURE;
  const g = newGuest(fw, {
    state: "RUPDATE",
    policy,
    tek: unwrapped.keys.tek,
    tik: unwrapped.keys.tik,
    shareWith,
  });
  buf.setU32(0, g.handle);
  return SevStatus.SUCCESS;
}

function receiveUpdate(
  fw: FirmwareState,
  buf: CommandBuffer,
  guest: GuestContext,
  vmsa: boolean,
): SevStatusCode {
  const a = requireActive(guest);
  if (a !== SevStatus.SUCCESS) return a;
  if (vmsa && !guest.es) return SevStatus.UNSUPPORTED;
  const p = packetArgs(buf);
  if (p.hdrLen !== PACKET_HEADER_SIZE) return SevStatus.INVALID_LENGTH;
  const s = checkPacket(fw, p, vmsa);
  if (s !== SevStatus.SUCCESS) return s;
  const hdr = parsePacketHeader(fw.memory.read(p.hdrPa!, PACKET_HEADER_SIZE));
  if (hdr.flags !== 0) return SevStatus.INVALID_PARAM;
  const trans = fw.memory.read(p.transPa!, p.transLen);
  const mac = launchSecretMac(
    guest.tik,
    hdr.flags,
    hdr.iv,
    p.guestLen,
    trans,
    undefined,
    vmsa ? CTX_VMSA : CTX_DATA,
  );
  if (!ctEqual(mac, hdr.mac)) return SevStatus.BAD_MEASUREMENT;
  const plain = aes128Ctr(guest.tek, hdr.iv, trans);
  const cipher = fw.keySlots.encrypt(guest.asid, p.guestPa!, plain);
  fw.memory.write(p.guestPa!, cipher);
  if (vmsa) fw.vmsaIntegrity?.record(guest.asid, p.guestPa!, cipher);
  return SevStatus.SUCCESS;
}

export const receiveUpdateData = (fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined) =>
  receiveUpdate(fw, buf, g!, false);
export const receiveUpdateVmsa = (fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined) =>
  receiveUpdate(fw, buf, g!, true);
