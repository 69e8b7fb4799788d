/**
 * The launch measurement MAC (docs/sev-interface.md §8.2, §15 pitfall 7):
 *
 * `MEASURE = HMAC-SHA256(TIK, 0x04 ‖ api_major ‖ api_minor ‖ build ‖ u32le(policy) ‖ LD(32) ‖ MNONCE(16))`
 *
 * LAUNCH_MEASURE returns MEASURE ‖ MNONCE (48 bytes); QEMU and libvirt hand that blob out base64-encoded.
 */
import { hmacSha256 } from "../crypto/hash.ts";
import { CiphervisorError } from "../errors.ts";
import { concat, u32le } from "../lib/bytes.ts";

export const MEASUREMENT_BLOB_SIZE = 0x30;

export interface MeasurementInput {
  apiMajor: number;
  apiMinor: number;
  build: number;
  policy: number;
  launchDigest: Uint8Array;
  mnonce: Uint8Array;
}

/** @example `const m = measurementMac(tik, { apiMajor: 0, apiMinor: 18, build: 15, policy: 0, launchDigest, mnonce })` */
export function measurementMac(tik: Uint8Array, m: MeasurementInput): Uint8Array {
  if (m.launchDigest.length !== 32)
    throw new CiphervisorError("INVALID_INPUT", "a launch digest is 32 bytes");
  if (m.mnonce.length !== 16) throw new CiphervisorError("INVALID_INPUT", "an mnonce is 16 bytes");
  return hmacSha256(
    tik,
    concat(
      new Uint8Array([0x04, m.apiMajor, m.apiMinor, m.build]),
      u32le(m.policy),
      m.launchDigest,
      m.mnonce,
    ),
  );
}

/** Splits a 48-byte LAUNCH_MEASURE blob into MEASURE and MNONCE. */
export function splitMeasurementBlob(blob: Uint8Array): { measure: Uint8Array; mnonce: Uint8Array } {
  if (blob.length !== MEASUREMENT_BLOB_SIZE) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `a launch-measure blob is ${MEASUREMENT_BLOB_SIZE} bytes (MEASURE ‖ MNONCE), got ${blob.length}`,
    );
  }
  return { measure: blob.slice(0, 32), mnonce: blob.slice(32, 48) };
}
