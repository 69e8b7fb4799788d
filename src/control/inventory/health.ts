/**
 * What a damaged inventory looks like to the rest of the control plane. A store can be unable to take writes
 * (corrupt, truncated, read-only) or not answer at all (PostgreSQL unreachable); each kind has one code, so
 * `/readyz`, the write refusal and the CLI say which instead of one "not ready" for all of them.
 *
 * Why a damaged store still serves reads: an operator restoring a backup needs to see what the inventory held, and
 * `/readyz` must be able to say what is wrong. Writing into a corrupt file would spread the damage (SQLite may
 * overwrite the pages it cannot parse), so writes stop until a check finds the store healthy again.
 */
import { CiphervisorError, type ErrorCode } from "../../errors.ts";

/** The kinds of damage a store check reports, with the code each is answered with. */
export const STORE_DAMAGE = {
  corrupt: { code: "STORE_CORRUPT", refusesWrites: true },
  truncated: { code: "STORE_CORRUPT", refusesWrites: true },
  "read-only": { code: "STORE_READ_ONLY", refusesWrites: true },
  // A lost connection is transient: each query fails on its own (mapped to the same code) and recovers with it.
  unreachable: { code: "STORE_UNREACHABLE", refusesWrites: false },
} as const satisfies Record<string, { code: ErrorCode; refusesWrites: boolean }>;

export type StoreDamageKind = keyof typeof STORE_DAMAGE;

/** One finding of a store check. */
export interface StoreDamage {
  readonly kind: StoreDamageKind;
  readonly code: ErrorCode;
  /** One line a person can act on; names no file path (it is answered on the public `/readyz`). */
  readonly message: string;
  /** What the check saw, for operators (the first few quick_check lines, sizes); never secrets. */
  readonly findings: readonly string[];
}

export interface StoreCheckOptions {
  /**
   * Run the full `PRAGMA integrity_check` instead of `quick_check` (SQLite). At 200,000 VMs (148 MB) quick_check
   * takes ≈ 0.2 s and integrity_check ≈ 2.4 s, so the full check is for an operator, never for every start.
   */
  readonly full?: boolean;
}

/** Builds a finding of `kind`. */
export function storeDamage(
  kind: StoreDamageKind,
  message: string,
  findings: readonly string[] = [],
): StoreDamage {
  return { kind, code: STORE_DAMAGE[kind].code, message, findings };
}

/** True when a store with this finding must not be written to. */
export function refusesWrites(damage: StoreDamage | undefined): damage is StoreDamage {
  return damage !== undefined && STORE_DAMAGE[damage.kind].refusesWrites;
}

/** The error a request meets on a damaged store. */
export function storeDamageError(damage: StoreDamage): CiphervisorError {
  return new CiphervisorError(damage.code, damage.message, { details: { damage: damage.kind } });
}
