/**
 * Documented exit codes (README "Exit codes"). Scripts rely on them; never renumber.
 *
 * The exit code follows the class `errors.ts` gives each stable code, so a refusal the server answers
 * (LIVE_MIGRATION_UNSUPPORTED, GUEST_OS_UNSUPPORTED, NO_VALID_HOST, …) ends the CLI the same way wherever it came
 * from. A command over several VMs exits PARTIAL when some of them failed (each failure listed with its code), and
 * INTERRUPTED after Ctrl-C.
 */
import { type ErrorClass, type ErrorCode, errorClass } from "../errors.ts";

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

/** One table: which class of code ends the process with which exit code. */
const BY_CLASS: Readonly<Record<ErrorClass, number>> = {
  usage: ExitCode.USAGE,
  invalid: ExitCode.USAGE,
  "bad-data": ExitCode.ERROR,
  unauthenticated: ExitCode.AUTH,
  forbidden: ExitCode.AUTH,
  "not-found": ExitCode.NOT_FOUND,
  conflict: ExitCode.REFUSED,
  refused: ExitCode.REFUSED,
  "check-failed": ExitCode.ERROR,
  "host-failure": ExitCode.ERROR,
  // The server limits failed authentication only: the token is what needs fixing, as for a 401.
  "rate-limited": ExitCode.AUTH,
  unavailable: ExitCode.ERROR,
  interrupted: ExitCode.INTERRUPTED,
  internal: ExitCode.ERROR,
};

export function exitCodeFor(code: ErrorCode): number {
  return BY_CLASS[errorClass(code)];
}
