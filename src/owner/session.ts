/**
 * The guest owner's side of LAUNCH_START: a launch session for one platform, docs/sev-interface.md §9 (and the session
 * buffer of §4.4, encoded by `crypto/session.ts`).
 *
 * 1. a fresh GODH P-384 key pair; its public key travels as a 0x824-byte SEV certificate with usage PDH (0x1003),
 *    algo ECDH_SHA256 (0x3), API 0.0 and both signature slots empty — what virtee/sev (and so sevctl) produce;
 * 2. random TEK and TIK (16 bytes each), a random session nonce and wrap IV;
 * 3. `Z = ECDH(godh_priv, PDH)` (48 bytes, big-endian x), refused when the PDH point is not on P-384 (§11.4);
 * 4. KEK/KIK from Z and the nonce, `wrap_tk`, `wrap_mac`, `policy_mac` (`wrapSession`).
 *
 * The PDH's certificate chain should be verified first (`owner verify-chain`); this module takes the PDH as given,
 * as sevctl `session` does. TEK and TIK stay with the caller: nothing here logs or prints them.
 */

import { Algo, eccKeyOf, encodeSevCert, parseSevCert, type SevCert, Usage } from "../certs/sev-cert.ts";
import { ecdh, generateEcKeyPair, isOnCurve } from "../crypto/ec.ts";
import { type RandomSource, systemRandom } from "../crypto/random.ts";
import { encodeSession, type SessionBuffer, type TransportKeys, wrapSession } from "../crypto/session.ts";
import { CiphervisorError } from "../errors.ts";

export interface LaunchSession {
  /** The guest policy the session is bound to (policy_mac covers it). */
  policy: number;
  /** The GODH certificate for LAUNCH_START's dh_cert (0x824 bytes). */
  godhCert: Uint8Array;
  /** The 0x80-byte session buffer for LAUNCH_START. */
  session: Uint8Array;
  /** The same buffer, field by field. */
  buffer: SessionBuffer;
  /** TEK and TIK: secret, for `secret build` and `verify-measurement` only. */
  keys: TransportKeys;
}

/**
 * Creates a launch session for a platform's PDH.
 *
 * @param pdh the PDH certificate (raw 0x824 bytes or parsed)
 * @param policy the guest policy (u32) the owner will launch with
 * @param rng randomness for the GODH key, TEK, TIK, nonce and wrap IV (the OS CSPRNG by default)
 * @example
 * ```ts
 * const s = createLaunchSession(readFileSync("pdh.cert"), 0x05);
 * writeFileSync("vm_session.b64", Buffer.from(s.session).toString("base64"));
 * ```
 * @throws CiphervisorError CERT_INVALID when the certificate is not a PDH or its point is not on P-384
 */
export function createLaunchSession(
  pdh: Uint8Array | SevCert,
  policy: number,
  rng: RandomSource = systemRandom,
): LaunchSession {
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff) {
    throw new CiphervisorError("INVALID_INPUT", `a guest policy is a u32, got ${policy}`);
  }
  const cert = pdh instanceof Uint8Array ? parseSevCert(pdh, "PDH certificate") : pdh;
  if (cert.usage !== Usage.PDH) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `PDH certificate: key usage is 0x${cert.usage.toString(16)}, a session needs the PDH (0x1003)`,
    );
  }
  const pdhKey = eccKeyOf(cert, "PDH certificate");
  // Checked here as well as inside ecdh() so the failure names the certificate, not a generic ECDH input.
  if (!isOnCurve(pdhKey)) {
    throw new CiphervisorError("CERT_INVALID", "PDH certificate: its public key is not a point on P-384");
  }

  const godh = generateEcKeyPair(rng);
  const z = ecdh(godh.d, pdhKey);
  const keys: TransportKeys = { tek: rng.bytes(16), tik: rng.bytes(16) };
  const nonce = rng.bytes(16);
  const wrapIv = rng.bytes(16);
  const buffer = wrapSession(z, keys, policy >>> 0, nonce, wrapIv);
  const godhCert = encodeSevCert({
    apiMajor: 0,
    apiMinor: 0,
    usage: Usage.PDH,
    algo: Algo.ECDH_SHA256,
    pub: godh.pub,
  });
  return { policy: policy >>> 0, godhCert, session: encodeSession(buffer), buffer, keys };
}

/** The four files sevctl `session` writes, by name (src/session.rs). */
export interface SessionFiles {
  /** `NAME_godh.b64`: base64 of the GODH certificate, no trailing newline. */
  godh: { name: string; contents: Uint8Array };
  /** `NAME_session.b64`: base64 of the 0x80-byte session buffer, no trailing newline. */
  session: { name: string; contents: Uint8Array };
  /** `NAME_tek.bin`: the 16 raw TEK bytes. */
  tek: { name: string; contents: Uint8Array };
  /** `NAME_tik.bin`: the 16 raw TIK bytes. */
  tik: { name: string; contents: Uint8Array };
}

/**
 * The file names and contents sevctl writes for a session named `name` (QEMU/libvirt take the two base64 files as
 * `dh-cert-file` / `session-file`).
 */
export function sessionFiles(name: string, s: LaunchSession): SessionFiles {
  if (name.length === 0 || /[/\\\0]/.test(name)) {
    throw new CiphervisorError("INVALID_INPUT", `a session name is a plain file-name prefix, got '${name}'`);
  }
  const b64 = (b: Uint8Array) => new TextEncoder().encode(Buffer.from(b).toString("base64"));
  return {
    godh: { name: `${name}_godh.b64`, contents: b64(s.godhCert) },
    session: { name: `${name}_session.b64`, contents: b64(s.session) },
    tek: { name: `${name}_tek.bin`, contents: s.keys.tek.slice() },
    tik: { name: `${name}_tik.bin`, contents: s.keys.tik.slice() },
  };
}
