/**
 * The guest owner's launch check, docs/sev-interface.md §8.2: recompute MEASURE from the TIK, the platform's API and build,
 * the policy, the expected launch digest and the firmware's MNONCE, then compare with the reported MEASURE in
 * constant time (virtee/sev `Session::verify`, sevctl `measurement build`). Only a match justifies releasing secrets.
 */
import { CiphervisorError } from "../errors.ts";
import { ctEqual, toHex } from "../lib/bytes.ts";
import { measurementMac, splitMeasurementBlob } from "../measure/measurement.ts";

export interface LaunchMeasurementCheck {
  /** The TIK from the session (16 bytes). */
  tik: Uint8Array;
  /** The 48-byte LAUNCH_MEASURE blob: MEASURE ‖ MNONCE (what QEMU/libvirt return, base64-decoded). */
  launchMeasureBlob: Uint8Array;
  /** The platform's PLATFORM_STATUS values, not the policy's minimum. */
  apiMajor: number;
  apiMinor: number;
  build: number;
  policy: number;
  /** The expected launch digest (`measure/expectedLaunch`). */
  launchDigest: Uint8Array;
}

export interface LaunchMeasurementResult {
  match: boolean;
  /** MEASURE recomputed from the expected inputs. */
  expected: Uint8Array;
  /** MEASURE as reported by the firmware. */
  reported: Uint8Array;
  mnonce: Uint8Array;
}

function checkU8(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) {
    throw new CiphervisorError("INVALID_INPUT", `${what} is one byte (0..255), got ${v}`);
  }
}

/**
 * Recomputes and compares the launch measurement. Never throws for a mismatch; see
 * {@link assertLaunchMeasurement} for the throwing form.
 * @throws CiphervisorError INVALID_INPUT for malformed inputs (TIK size, blob size, byte ranges)
 */
export function checkLaunchMeasurement(c: LaunchMeasurementCheck): LaunchMeasurementResult {
  if (c.tik.length !== 16)
    throw new CiphervisorError("INVALID_INPUT", `a TIK is 16 bytes, got ${c.tik.length}`);
  checkU8(c.apiMajor, "API major");
  checkU8(c.apiMinor, "API minor");
  checkU8(c.build, "build");
  if (!Number.isInteger(c.policy) || c.policy < 0 || c.policy > 0xffffffff) {
    throw new CiphervisorError("INVALID_INPUT", `a guest policy is a u32, got ${c.policy}`);
  }
  const { measure, mnonce } = splitMeasurementBlob(c.launchMeasureBlob);
  const expected = measurementMac(c.tik, {
    apiMajor: c.apiMajor,
    apiMinor: c.apiMinor,
    build: c.build,
    policy: c.policy,
    launchDigest: c.launchDigest,
    mnonce,
  });
  return { match: ctEqual(expected, measure), expected, reported: measure, mnonce };
}

/**
 * Like {@link checkLaunchMeasurement}, but a mismatch is an error.
 *
 * @example
 * ```ts
 * assertLaunchMeasurement({ tik, launchMeasureBlob, apiMajor: 1, apiMinor: 55, build: 25, policy: 0x05, launchDigest });
 * ```
 * @throws CiphervisorError MEASUREMENT_MISMATCH (the message shows both MEASURE values, which are not secret)
 */
export function assertLaunchMeasurement(c: LaunchMeasurementCheck): LaunchMeasurementResult {
  const r = checkLaunchMeasurement(c);
  if (!r.match) {
    throw new CiphervisorError(
      "MEASUREMENT_MISMATCH",
      `launch measurement mismatch: the platform reported ${toHex(r.reported)}, the expected launch gives ${toHex(r.expected)}`,
      { details: { reported: toHex(r.reported), expected: toHex(r.expected), mnonce: toHex(r.mnonce) } },
    );
  }
  return r;
}
