/**
 * The guest-owner session (docs/sev-interface.md §4.4 session buffer, §9 derivations). Both sides use this file: the
 * guest owner wraps TEK ‖ TIK for a platform's PDH; the emulated firmware unwraps them in LAUNCH_START.
 *
 * Session buffer, 0x80 bytes:
 *
 * | offset | size | field |
 * |--------|------|-------|
 * | 0x00 | 16 | nonce |
 * | 0x10 | 32 | wrap_tk = AES-128-CTR(KEK, wrap_iv)(TEK ‖ TIK) |
 * | 0x30 | 16 | wrap_iv |
 * | 0x40 | 32 | wrap_mac = HMAC-SHA256(KIK, wrap_tk) |
 * | 0x60 | 32 | policy_mac = HMAC-SHA256(TIK, u32le(policy)) |
 */
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter, ctEqual, u32le } from "../lib/bytes.ts";
import { aes128Ctr } from "./aes.ts";
import { hmacSha256 } from "./hash.ts";
import { deriveSessionKeys } from "./kdf.ts";

export const SESSION_SIZE = 0x80;

export interface SessionBuffer {
  nonce: Uint8Array;
  wrapTk: Uint8Array;
  wrapIv: Uint8Array;
  wrapMac: Uint8Array;
  policyMac: Uint8Array;
}

/** Transport keys: TEK encrypts (AES-128-CTR), TIK authenticates (HMAC-SHA256). 16 bytes each. */
export interface TransportKeys {
  tek: Uint8Array;
  tik: Uint8Array;
}

export function encodeSession(s: SessionBuffer): Uint8Array {
  return new ByteWriter(SESSION_SIZE)
    .set(0x00, s.nonce)
    .set(0x10, s.wrapTk)
    .set(0x30, s.wrapIv)
    .set(0x40, s.wrapMac)
    .set(0x60, s.policyMac).bytes;
}

export function parseSession(bytes: Uint8Array): SessionBuffer {
  if (bytes.length !== SESSION_SIZE) {
    throw new CiphervisorError("MALFORMED", `a session buffer is ${SESSION_SIZE} bytes, got ${bytes.length}`);
  }
  const r = new ByteReader(bytes, "session buffer");
  return {
    nonce: r.slice(0x00, 16),
    wrapTk: r.slice(0x10, 32),
    wrapIv: r.slice(0x30, 16),
    wrapMac: r.slice(0x40, 32),
    policyMac: r.slice(0x60, 32),
  };
}

export function policyMac(tik: Uint8Array, policy: number): Uint8Array {
  return hmacSha256(tik, u32le(policy));
}

/**
 * Guest-owner side: wraps `keys` under the KEK/KIK derived from the ECDH secret `z` and a nonce.
 * `nonce` and `wrapIv` must be fresh random bytes.
 */
export function wrapSession(
  z: Uint8Array,
  keys: TransportKeys,
  policy: number,
  nonce: Uint8Array,
  wrapIv: Uint8Array,
): SessionBuffer {
  const { kek, kik } = deriveSessionKeys(z, nonce);
  const wrapTk = aes128Ctr(kek, wrapIv, new Uint8Array([...keys.tek, ...keys.tik]));
  return { nonce, wrapTk, wrapIv, wrapMac: hmacSha256(kik, wrapTk), policyMac: policyMac(keys.tik, policy) };
}

export type UnwrapResult =
  | { ok: true; keys: TransportKeys }
  | { ok: false; failure: "WRAP_MAC" | "POLICY_MAC" };

/** Firmware side: checks wrap_mac, unwraps TEK ‖ TIK, then checks policy_mac against the launch policy (§9.3). */
export function unwrapSession(z: Uint8Array, s: SessionBuffer, policy: number): UnwrapResult {
  const { kek, kik } = deriveSessionKeys(z, s.nonce);
  if (!ctEqual(hmacSha256(kik, s.wrapTk), s.wrapMac)) return { ok: false, failure: "WRAP_MAC" };
  const tk = aes128Ctr(kek, s.wrapIv, s.wrapTk);
  const keys = { tek: tk.slice(0, 16), tik: tk.slice(16, 32) };
  if (!ctEqual(policyMac(keys.tik, policy), s.policyMac)) return { ok: false, failure: "POLICY_MAC" };
  return { ok: true, keys };
}
