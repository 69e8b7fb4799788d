/**
 * The one error type of ciphervisor. Every failure a user can cause carries a stable `code` that the API maps to
 * RFC 9457 problem+json and the CLI maps to an exit code; the message is one line a person can act on and never
 * contains key material or tokens.
 *
 * @example
 * ```ts
 * throw new CiphervisorError("INVALID_INPUT", "--policy must be a 32-bit number, got 'x'");
 * ```
 */

/** Stable error codes. Add new codes here (one union for the whole project) and document them in the README. */
export type ErrorCode =
  // generic input and usage problems
  | "USAGE"
  | "INVALID_INPUT"
  | "NOT_FOUND"
  | "CONFLICT"
  | "IO"
  | "INTERNAL"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "INTERRUPTED"
  // binary formats
  | "MALFORMED"
  | "TRUNCATED"
  // certificates and chains
  | "CERT_INVALID"
  | "CHAIN_INVALID"
  | "SIGNATURE_INVALID"
  // the Secure Processor
  | "SEV_FIRMWARE"
  | "ASID_POOL_EXHAUSTED"
  // attestation
  | "MEASUREMENT_MISMATCH"
  | "REPORT_INVALID"
  // machine and hypervisor
  | "VMRUN_FAILED"
  | "GUEST_FAULT"
  | "REQUIREMENT_FAILED"
  | "OPERATION_REFUSED"
  // control plane
  /** Placement found no host for a VM; `details.candidates` says why for each host (Nova's NoValidHost). */
  | "NO_VALID_HOST";

export interface ErrorOptions {
  cause?: unknown;
  /** Structured, non-secret facts that help a caller act (field names, pool sizes, …). */
  details?: Record<string, unknown>;
}

export class CiphervisorError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CiphervisorError";
    this.code = code;
    this.details = options.details;
  }
}

/** True when `e` is a CiphervisorError, optionally with the given code. */
export function isCiphervisorError(e: unknown, code?: ErrorCode): e is CiphervisorError {
  return e instanceof CiphervisorError && (code === undefined || e.code === code);
}
