/**
 * Errors that come from talking to a server. The server's problem+json `code` is kept as it was sent (one of the
 * project's codes, or a firmware status name such as BAD_MEASUREMENT), so scripts see the same code from the API and
 * the CLI; the base `code` is the nearest project ErrorCode, which picks the documented exit code.
 */
import { CiphervisorError, type ErrorCode, isErrorCode } from "../../errors.ts";

/**
 * The project ErrorCode of a server code: the code itself when it is one of ours; otherwise (a firmware status
 * name such as BAD_MEASUREMENT, or a code from a newer server) the nearest one for its HTTP status.
 */
export function baseCode(code: string, status: number): ErrorCode {
  if (isErrorCode(code)) return code;
  if (status === 400 || status === 413 || status === 415 || status === 422) return "INVALID_INPUT";
  if (status === 401) return "UNAUTHENTICATED";
  if (status === 403) return "FORBIDDEN";
  if (status === 404) return "NOT_FOUND";
  if (status === 409) return "CONFLICT";
  if (status === 429) return "RATE_LIMITED";
  if (status === 503) return "IO";
  return "INTERNAL";
}

/**
 * An error whose printed code may not be a project ErrorCode (a firmware status name a server sent, such as
 * BAD_MEASUREMENT). The ErrorCode chooses the exit code.
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
