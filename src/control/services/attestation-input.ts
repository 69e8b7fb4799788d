/**
 * Checking what a guest owner sends for an attested launch (docs/product-behaviour.md §7): the session (GODH certificate
 * and session blob, as sevctl writes them) and the LAUNCH_SECRET packet. Pure: no inventory, no host. Messages name
 * the field and the sizes, never the bytes.
 */
import { parseSevCert, SEV_CERT_SIZE } from "../../certs/sev-cert.ts";
import { CiphervisorError } from "../../errors.ts";
import type { LaunchSecret } from "../drivers/driver.ts";
import type { LaunchSessionFiles } from "../inventory/types.ts";

/** The session buffer LAUNCH_START takes (nonce, wrapped TEK/TIK, their IV and MAC, the policy MAC). */
export const SESSION_SIZE = 0x80;
/** The LAUNCH_SECRET packet header (flags, IV, MAC). */
export const SECRET_HEADER_SIZE = 0x34;
/**
 * An upper bound on the encrypted payload: Linux/KVM refuse LAUNCH_SECRET blobs over 16 KiB, and the host refuses
 * anything larger than its firmware's secret area.
 */
export const MAX_SECRET_PAYLOAD = 16 * 1024;

/** Decodes strict base64 (whitespace around it tolerated, as files from sevctl end with a newline). */
export function decodeBase64(value: string, field: string): Uint8Array {
  const t = value.trim();
  if (t.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) {
    throw new CiphervisorError("INVALID_INPUT", `${field} must be base64`, { details: { field } });
  }
  return new Uint8Array(Buffer.from(t, "base64"));
}

function exactly(bytes: Uint8Array, size: number, field: string, what: string): void {
  if (bytes.length !== size) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${field} must be ${what} of 0x${size.toString(16)} bytes, got 0x${bytes.length.toString(16)}`,
      { details: { field } },
    );
  }
}

/**
 * Checks a session request: the GODH is a well-formed SEV certificate of 0x824 bytes (parsed, so a truncated or
 * garbled file fails here rather than at LAUNCH_START), the session blob is 0x80 bytes. Returns the canonical
 * base64 to store.
 */
export function checkLaunchSession(body: { godhCert: string; session: string }): LaunchSessionFiles {
  const godh = decodeBase64(body.godhCert, "godhCert");
  exactly(godh, SEV_CERT_SIZE, "godhCert", "a SEV certificate");
  try {
    parseSevCert(godh, "godhCert");
  } catch (e) {
    const why = e instanceof Error ? e.message : "not a SEV certificate";
    throw new CiphervisorError("INVALID_INPUT", why, { details: { field: "godhCert" } });
  }
  const session = decodeBase64(body.session, "session");
  exactly(session, SESSION_SIZE, "session", "a session blob");
  return {
    godhCert: Buffer.from(godh).toString("base64"),
    session: Buffer.from(session).toString("base64"),
  };
}

/** Checks a LAUNCH_SECRET request: a 0x34-byte header and a non-empty, bounded payload whose size is a multiple of 16. */
export function checkLaunchSecret(body: { header: string; secret: string }): LaunchSecret {
  const header = decodeBase64(body.header, "header");
  exactly(header, SECRET_HEADER_SIZE, "header", "a LAUNCH_SECRET packet header");
  const payload = decodeBase64(body.secret, "secret");
  if (payload.length === 0 || payload.length > MAX_SECRET_PAYLOAD || payload.length % 16 !== 0) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `secret must be an encrypted payload of 16..${MAX_SECRET_PAYLOAD} bytes in 16-byte blocks, got ${payload.length}`,
      { details: { field: "secret" } },
    );
  }
  return { header, payload };
}
