/** The launch commands (docs/sev-interface.md §4.1, §8, §9, §10). */
import { aes128Ctr } from "../../crypto/aes.ts";
import { ecdh } from "../../crypto/ec.ts";
import {
  launchSecretMac,
  PACKET_HEADER_SIZE,
  parsePacketHeader,
  secretMacIncludesMeasure,
} from "../../crypto/packet.ts";
import { parseSession, SESSION_SIZE, unwrapSession } from "../../crypto/session.ts";
import { ctEqual } from "../../lib/bytes.ts";
import { MEASUREMENT_BLOB_SIZE, measurementMac } from "../../measure/measurement.ts";
import type { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState, GuestContext } from "../firmware-state.ts";
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

/**
 * LAUNCH_START {handle (in/out) @0, policy @4, dh_cert_addr @8, dh_cert_len @0x10, session_addr @0x18,
 * session_len @0x20}. With a GODH certificate and session blob, TEK/TIK are the guest owner's (wrap_mac and
 * policy_mac checked, §9.3); with neither, the firmware chooses them. A non-zero handle asks to share that guest's
 * key: refused (POLICY_FAILURE) if it has NOKS or a different policy (AMD `sev_mcmd_launch_start`).
 *
 * Status choices where the public record is silent: a wrap_mac mismatch gives BAD_MEASUREMENT; a policy_mac
 * mismatch POLICY_FAILURE (the policy is what fails authentication).
 */
export function launchStart(fw: FirmwareState, buf: CommandBuffer): SevStatusCode {
  const policy = buf.r.u32(4);
  const start = checkStart(fw, buf.r.u32(0), policy);
  if (!start.ok) return start.status;
  const shareWith = start.value;

  const dhLen = buf.r.u32(0x10);
  const sessionLen = buf.r.u32(0x20);
  let keys: { tek: Uint8Array; tik: Uint8Array };
  if (dhLen === 0 && sessionLen === 0) {
    keys = { tek: fw.rng.bytes(16), tik: fw.rng.bytes(16) };
  } else {
    if (sessionLen !== SESSION_SIZE) return SevStatus.INVALID_LENGTH;
    const godh = readPeerDhCert(fw, buf.addr(0x08), dhLen);
    if (!godh.ok) return godh.status;
    const sessionPa = buf.addr(0x18);
    if (!rangeOk(fw, sessionPa, sessionLen)) return SevStatus.INVALID_ADDRESS;
    const session = parseSession(fw.memory.read(sessionPa, sessionLen));
    if (godh.value.key.kind !== "ecc") return SevStatus.INVALID_CERTIFICATE;
    const z = ecdh(fw.identity.pdhPrivate, godh.value.key.pub);
    const unwrapped = unwrapSession(z, session, policy);
    if (!unwrapped.ok)
      return unwrapped.failure === "WRAP_MAC" ? SevStatus.BAD_MEASUREMENT : SevStatus.POLICY_FAILURE;
    keys = unwrapped.keys;
  }
  const g = newGuest(fw, { state: "LUPDATE", policy, tek: keys.tek, tik: keys.tik, shareWith });
  buf.setU32(0, g.handle);
  return SevStatus.SUCCESS;
}

/**
 * How much of a LAUNCH_UPDATE_DATA the firmware stages at a time: it measures and encrypts the range in steps of
 * this many bytes (a multiple of the 16-byte granule), the way a Secure Processor with little working memory would.
 * The result is the same as one pass — the digest is one running SHA-256 over the bytes in order and the memory
 * cipher's tweak depends only on each block's address (docs/sev-interface.md §8.1, §13.2) — but no step needs a
 * buffer the size of the whole range: the host now hands over whole firmware images in one command, and fresh
 * multi-MiB buffers cost more in page faults than the AES over them.
 */
export const UPDATE_DATA_STEP = 64 * 1024;

/**
 * LAUNCH_UPDATE_DATA {handle, addr @8, len @0x10}: measures the plaintext (exactly `len` bytes, no address — §8.1),
 * then encrypts it in place with the guest's key at its system physical address. Every check comes before the first
 * byte changes, so a refused command leaves memory and the digest as they were.
 */
export function launchUpdateData(
  fw: FirmwareState,
  buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const a = requireActive(guest);
  if (a !== SevStatus.SUCCESS) return a;
  const pa = buf.addr(8);
  const len = buf.r.u32(0x10);
  const gs = checkGranule(pa, len);
  if (gs !== SevStatus.SUCCESS) return gs;
  if (!rangeOk(fw, pa, len)) return SevStatus.INVALID_ADDRESS;
  for (let o = 0; o < len; o += UPDATE_DATA_STEP) {
    const at = pa + o;
    const n = Math.min(UPDATE_DATA_STEP, len - o);
    // Where the step lies in one piece of memory it is measured and encrypted there; otherwise a copy is measured,
    // encrypted and written back. Either way the measurement sees the plaintext before any byte is encrypted.
    const inPlace = fw.memory.view?.(at, n);
    const step = inPlace ?? fw.memory.read(at, n);
    guest.ld.update(step);
    fw.keySlots.encryptInto(guest.asid, at, step, step);
    if (!inPlace) fw.memory.write(at, step);
  }
  return SevStatus.SUCCESS;
}

/**
 * LAUNCH_UPDATE_VMSA {handle, addr @8, len @0x10}: SEV-ES only (UNSUPPORTED otherwise), exactly one 4 KiB page,
 * 16-byte aligned. The page is measured, encrypted in place, and its integrity recorded for VMRUN (§12.1).
 */
export function launchUpdateVmsa(
  fw: FirmwareState,
  buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const a = requireActive(guest);
  if (a !== SevStatus.SUCCESS) return a;
  if (!guest.es) return SevStatus.UNSUPPORTED;
  const pa = buf.addr(8);
  const len = buf.r.u32(0x10);
  if (len !== 4096) return SevStatus.INVALID_LENGTH;
  if (pa === undefined || pa % 16 !== 0 || !rangeOk(fw, pa, len)) return SevStatus.INVALID_ADDRESS;
  const plain = fw.memory.read(pa, len);
  guest.ld.update(plain);
  const cipher = fw.keySlots.encrypt(guest.asid, pa, plain);
  fw.memory.write(pa, cipher);
  fw.vmsaIntegrity?.record(guest.asid, pa, cipher);
  guest.vmsaCount++;
  return SevStatus.SUCCESS;
}

/**
 * LAUNCH_MEASURE {handle, addr @8, len @0x10 (in/out)}: MEASURE ‖ MNONCE (48 bytes, §8.2). len = 0 (or too small)
 * gets INVALID_LENGTH with 48 written back and changes nothing else.
 */
export function launchMeasure(
  fw: FirmwareState,
  buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const len = buf.r.u32(0x10);
  buf.setLength(0x10, MEASUREMENT_BLOB_SIZE);
  if (len < MEASUREMENT_BLOB_SIZE) return SevStatus.INVALID_LENGTH;
  const pa = buf.addr(8);
  if (!rangeOk(fw, pa, MEASUREMENT_BLOB_SIZE)) return SevStatus.INVALID_ADDRESS;
  const mnonce = fw.rng.bytes(16);
  const measure = measurementMac(guest.tik, {
    apiMajor: fw.api.major,
    apiMinor: fw.api.minor,
    build: fw.api.build,
    policy: guest.policy,
    launchDigest: new Uint8Array(guest.ld.copy().digest()),
    mnonce,
  });
  guest.measure = measure;
  const out = new Uint8Array(MEASUREMENT_BLOB_SIZE);
  out.set(measure, 0);
  out.set(mnonce, 32);
  fw.memory.write(pa, out);
  return SevStatus.SUCCESS;
}

/**
 * LAUNCH_SECRET {handle, hdr_addr @8, hdr_len @0x10, guest_addr @0x18, guest_len @0x20, trans_addr @0x28,
 * trans_len @0x30}: checks the header MAC under TIK (BAD_MEASUREMENT on mismatch), decrypts the payload with TEK
 * and writes it into guest memory encrypted with the guest's key (§10.1).
 */
export function launchSecret(
  fw: FirmwareState,
  buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const a = requireActive(guest);
  if (a !== SevStatus.SUCCESS) return a;
  const hdrPa = buf.addr(0x08);
  const hdrLen = buf.r.u32(0x10);
  const guestPa = buf.addr(0x18);
  const guestLen = buf.r.u32(0x20);
  const transPa = buf.addr(0x28);
  const transLen = buf.r.u32(0x30);
  if (hdrLen !== PACKET_HEADER_SIZE) return SevStatus.INVALID_LENGTH;
  if (guestLen !== transLen || transLen > BLOB_MAX) return SevStatus.INVALID_LENGTH;
  const gs = checkGranule(guestPa, guestLen);
  if (gs !== SevStatus.SUCCESS) return gs;
  if (!rangeOk(fw, hdrPa, hdrLen) || !rangeOk(fw, guestPa, guestLen) || !rangeOk(fw, transPa, transLen)) {
    return SevStatus.INVALID_ADDRESS;
  }
  const hdr = parsePacketHeader(fw.memory.read(hdrPa, hdrLen));
  if (hdr.flags !== 0) return SevStatus.INVALID_PARAM;
  const trans = fw.memory.read(transPa, transLen);
  const measure = secretMacIncludesMeasure(fw.api.major, fw.api.minor) ? guest.measure : undefined;
  const mac = launchSecretMac(guest.tik, hdr.flags, hdr.iv, guestLen, trans, measure);
  if (!ctEqual(mac, hdr.mac)) return SevStatus.BAD_MEASUREMENT;
  const plain = aes128Ctr(guest.tek, hdr.iv, trans);
  fw.memory.write(guestPa, fw.keySlots.encrypt(guest.asid, guestPa, plain));
  return SevStatus.SUCCESS;
}

/** LAUNCH_FINISH {handle}: LSECRET → RUNNING; the launch keys stay for migration. */
export function launchFinish(): SevStatusCode {
  return SevStatus.SUCCESS;
}
