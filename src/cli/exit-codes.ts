/**
 * Documented exit codes (README "Exit codes"). Scripts rely on them; never renumber.
 */
import type { ErrorCode } from "../errors.ts";

export const ExitCode = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  PARTIAL: 3,
  NOT_FOUND: 4,
  AUTH: 5,
  REFUSED: 6,
  INTERRUPTED: 130,
} as const;

/** One table: which error code ends the process with which exit code. Unlisted codes exit 1. */
const byCode: Partial<Record<ErrorCode, number>> = {
  USAGE: ExitCode.USAGE,
  INVALID_INPUT: ExitCode.USAGE,
  NOT_FOUND: ExitCode.NOT_FOUND,
  UNAUTHENTICATED: ExitCode.AUTH,
  FORBIDDEN: ExitCode.AUTH,
  CONFLICT: ExitCode.REFUSED,
  OPERATION_REFUSED: ExitCode.REFUSED,
  REQUIREMENT_FAILED: ExitCode.REFUSED,
  ASID_POOL_EXHAUSTED: ExitCode.REFUSED,
  NO_VALID_HOST: ExitCode.REFUSED,
  INTERRUPTED: ExitCode.INTERRUPTED,
};

export function exitCodeFor(code: ErrorCode): number {
  return byCode[code] ?? ExitCode.ERROR;
}
