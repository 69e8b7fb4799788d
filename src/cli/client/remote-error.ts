/**
 * Errors that come from talking to a server. The server's problem+json `code` is kept as it was sent (an operation
 * table refusal such as LIVE_MIGRATION_UNSUPPORTED, a compatibility code such as GUEST_OS_UNSUPPORTED, or an error
 * code), so scripts see the same code from the API and the CLI; the base `code` is the nearest project ErrorCode,
 * which picks the documented exit code.
 */
import { CiphervisorError, type ErrorCode } from "../../errors.ts";

const KNOWN: ReadonlySet<string> = new Set<ErrorCode>([
  "USAGE",
  "INVALID_INPUT",
  "NOT_FOUND",
  "CONFLICT",
  "IO",
  "INTERNAL",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "INTERRUPTED",
  "MALFORMED",
  "TRUNCATED",
  "CERT_INVALID",
  "CHAIN_INVALID",
  "SIGNATURE_INVALID",
  "SEV_FIRMWARE",
  "ASID_POOL_EXHAUSTED",
  "MEASUREMENT_MISMATCH",
  "REPORT_INVALID",
  "VMRUN_FAILED",
  "GUEST_FAULT",
  "REQUIREMENT_FAILED",
  "OPERATION_REFUSED",
  "NO_VALID_HOST",
]);

/** The project ErrorCode nearest to a server code and HTTP status (refusals and compatibility codes are 409s). */
export function baseCode(code: string, status: number): ErrorCode {
  if (KNOWN.has(code)) return code as ErrorCode;
  if (status === 400 || status === 413 || status === 415 || status === 422) return "INVALID_INPUT";
  if (status === 401) return "UNAUTHENTICATED";
  if (status === 403) return "FORBIDDEN";
  if (status === 404) return "NOT_FOUND";
  if (status === 409) return "OPERATION_REFUSED";
  if (status === 503) return "IO";
  return "INTERNAL";
}

/**
 * An error whose printed code is more precise than its ErrorCode: a server's refusal code, or one of the CLI's own
 * (CONFIRMATION_REQUIRED). The ErrorCode still chooses the exit code.
 */
export class CodedError extends CiphervisorError {
  readonly shownCode: string;

  constructor(
    shownCode: string,
    base: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(base, message, options);
    this.name = "CodedError";
    this.shownCode = shownCode;
  }
}

/** A failure reported by (or on the way to) the server. `shownCode` is what the CLI prints in brackets. */
export class RemoteError extends CodedError {
  /** The HTTP status, 0 when no response arrived. */
  readonly status: number;

  constructor(
    shownCode: string,
    status: number,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; base?: ErrorCode } = {},
  ) {
    super(shownCode, options.base ?? baseCode(shownCode, status), message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      ...(options.details === undefined ? {} : { details: options.details }),
    });
    this.name = "RemoteError";
    this.status = status;
  }
}

/** The code to print for any CiphervisorError: the server's when it came from one. */
export function shownCode(e: CiphervisorError): string {
  return e instanceof CodedError ? e.shownCode : e.code;
}
