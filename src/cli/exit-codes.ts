/**
 * Documented exit codes (README "Exit codes"). Scripts rely on them; never renumber.
 *
 * Codes a server sends that are not ErrorCodes — the operation table's refusals (LIVE_MIGRATION_UNSUPPORTED, …)
 * and compatibility findings (GUEST_OS_UNSUPPORTED, POWER_STATE, …) — arrive as 409s and map to REFUSED through
 * `client/remote-error.ts`; the CLI prints the server's code as sent. A command over several VMs exits PARTIAL when
 * some of them failed (each failure listed with its code), and INTERRUPTED after Ctrl-C.
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
