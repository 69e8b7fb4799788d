/** Shared checks for command handlers (docs/sev-interface.md §4.3, §5 "error precedence"). */
import { createHash } from "node:crypto";
import { parseSevCert, type SevCert, Usage } from "../../certs/sev-cert.ts";
import { isOnCurve } from "../../crypto/ec.ts";
import type { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState, GuestContext } from "../firmware-state.ts";
import { decodePolicy } from "../policy.ts";
import { SevStatus, type SevStatusCode } from "../status.ts";

/** The kernel's and KVM's ceiling on every blob (SEV_FW_BLOB_MAX_SIZE, docs/sev-interface.md §15 pitfall 20). */
export const BLOB_MAX = 16 * 1024;

export type Result<T> = { ok: true; value: T } | { ok: false; status: SevStatusCode };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T>(status: SevStatusCode): Result<T> => ({ ok: false, status });

/** Reads `len` bytes at an address field, or INVALID_ADDRESS when the range is not system memory. */
export function readRange(fw: FirmwareState, pa: number | undefined, len: number): Result<Uint8Array> {
  if (pa === undefined || !fw.memory.contains(pa, len)) return fail(SevStatus.INVALID_ADDRESS);
  return ok(fw.memory.read(pa, len));
}

export function rangeOk(fw: FirmwareState, pa: number | undefined, len: number): pa is number {
  return pa !== undefined && fw.memory.contains(pa, len);
}

/** 16-byte granularity of UPDATE_DATA, SECRET and DBG (§4.3): misaligned address → INVALID_ADDRESS, bad length → INVALID_LENGTH. */
export function checkGranule(pa: number | undefined, len: number): SevStatusCode {
  if (pa === undefined || pa % 16 !== 0) return SevStatus.INVALID_ADDRESS;
  if (len === 0 || len % 16 !== 0) return SevStatus.INVALID_LENGTH;
  return SevStatus.SUCCESS;
}

/**
 * Policy checks at LAUNCH_START / RECEIVE_START (§6; AMD `sev_guest_verify_policy`): reserved bits must be zero,
 * the minimum API must not exceed this firmware's, and ES needs a platform INITed with SEV-ES.
 */
export function checkLaunchPolicy(fw: FirmwareState, policy: number): SevStatusCode {
  const p = decodePolicy(policy);
  if (p.reserved !== 0) return SevStatus.POLICY_FAILURE;
  if (p.apiMajor > fw.api.major || (p.apiMajor === fw.api.major && p.apiMinor > fw.api.minor)) {
    return SevStatus.POLICY_FAILURE;
  }
  if (p.es && !fw.esEnabled) return SevStatus.POLICY_FAILURE;
  return SevStatus.SUCCESS;
}

/**
 * The checks LAUNCH_START and RECEIVE_START share: a non-zero handle asks to share that guest's key — refused
 * (POLICY_FAILURE) when it has NOKS or another policy (AMD `sev_mcmd_launch_start`) — then the policy itself.
 * Returns the guest whose key is shared, if any.
 */
export function checkStart(
  fw: FirmwareState,
  handle: number,
  policy: number,
): Result<GuestContext | undefined> {
  let shareWith: GuestContext | undefined;
  if (handle !== 0) {
    shareWith = fw.guests.get(handle);
    if (!shareWith) return fail(SevStatus.INVALID_GUEST);
    if (decodePolicy(shareWith.policy).noks || shareWith.policy !== policy)
      return fail(SevStatus.POLICY_FAILURE);
  }
  const ps = checkLaunchPolicy(fw, policy);
  return ps === SevStatus.SUCCESS ? ok(shareWith) : fail(ps);
}

/**
 * Reads a peer's ECDH certificate (the GODH at LAUNCH_START, the other platform's PDH at SEND/RECEIVE_START):
 * exactly 0x824 bytes, a P-384 ECDH key, and a point on the curve (the CVE-2019-9836 fix, AMD `ecc.c`).
 */
export function readPeerDhCert(fw: FirmwareState, pa: number | undefined, len: number): Result<SevCert> {
  if (len !== 0x824) return fail(SevStatus.INVALID_LENGTH);
  const bytes = readRange(fw, pa, len);
  if (!bytes.ok) return bytes;
  let cert: SevCert;
  try {
    cert = parseSevCert(bytes.value);
  } catch {
    return fail(SevStatus.INVALID_CERTIFICATE);
  }
  if (cert.key.kind !== "ecc" || cert.usage !== Usage.PDH || !isOnCurve(cert.key.pub)) {
    return fail(SevStatus.INVALID_CERTIFICATE);
  }
  return ok(cert);
}

export function newGuest(
  fw: FirmwareState,
  init: Pick<GuestContext, "state" | "policy" | "tek" | "tik"> & { shareWith?: GuestContext },
): GuestContext {
  const handle = fw.nextHandle++;
  const share = init.shareWith;
  const g: GuestContext = {
    handle,
    state: init.state,
    policy: init.policy,
    es: decodePolicy(init.policy).es,
    keyGroup: share ? share.keyGroup : fw.nextKeyGroup++,
    vek: share ? share.vek : fw.rng.bytes(16),
    asid: 0,
    active: false,
    tek: init.tek,
    tik: init.tik,
    ld: createHash("sha256"),
    measure: undefined,
    vmsaCount: 0,
  };
  fw.guests.set(handle, g);
  if (fw.state === "INIT") fw.state = "WORKING";
  return g;
}

/** INACTIVE unless the guest's key is programmed (KVM activates right after LAUNCH_START). */
export function requireActive(g: GuestContext): SevStatusCode {
  return g.active ? SevStatus.SUCCESS : SevStatus.INACTIVE;
}

export type Handler = (
  fw: FirmwareState,
  buf: CommandBuffer,
  guest: GuestContext | undefined,
) => SevStatusCode;
