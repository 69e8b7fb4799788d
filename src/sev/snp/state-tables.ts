/**
 * The SEV-SNP firmware's state machines as data (SNP ABI 56860, the platform and guest state chapters:
 * docs/sev-interface.md §14 "Guest states"). The dispatcher and the exhaustive tests both read these tables, as the
 * SEV ones in `../state-tables.ts` are read.
 *
 * - Platform: UNINIT 0 → SNP_INIT / SNP_INIT_EX → INIT 1 → SNP_SHUTDOWN(_EX) → UNINIT. SNP has no WORKING state.
 * - Guest: SNP_GCTX_CREATE makes a context in INIT 0; SNP_LAUNCH_START → LAUNCH 1; SNP_LAUNCH_UPDATE stays;
 *   SNP_LAUNCH_FINISH → RUNNING 2; SNP_DECOMMISSION deletes it from any state.
 */
import { SevStatus } from "../status.ts";
import type { SnpCmdName, SnpGctxCmdName } from "./commands.ts";

export const SnpPlatformState = { UNINIT: 0, INIT: 1 } as const;
export type SnpPlatformStateName = keyof typeof SnpPlatformState;

/** Guest states as SNP_GUEST_STATUS reports them. */
export const SnpGuestState = { INIT: 0, LAUNCH: 1, RUNNING: 2 } as const;
export type SnpGuestStateName = keyof typeof SnpGuestState;

export const SNP_PLATFORM_STATES: readonly SnpPlatformStateName[] = ["UNINIT", "INIT"];
export const SNP_GUEST_STATES: readonly SnpGuestStateName[] = ["INIT", "LAUNCH", "RUNNING"];

const ANY: SnpPlatformStateName[] = ["UNINIT", "INIT"];
const INIT: SnpPlatformStateName[] = ["INIT"];

/**
 * Platform states in which each command is accepted; any other → INVALID_PLATFORM_STATE. SNP_SHUTDOWN(_EX) in
 * UNINIT is a no-op, as SHUTDOWN is for SEV (docs/sev-interface.md §2).
 */
export const SNP_PLATFORM_TABLE: Readonly<Record<SnpCmdName, readonly SnpPlatformStateName[]>> = {
  SNP_INIT: ["UNINIT"],
  SNP_INIT_EX: ["UNINIT"],
  SNP_SHUTDOWN: ANY,
  SNP_SHUTDOWN_EX: ANY,
  SNP_PLATFORM_STATUS: ANY,
  SNP_DF_FLUSH: INIT,
  SNP_GCTX_CREATE: INIT,
  SNP_DECOMMISSION: INIT,
  SNP_ACTIVATE: INIT,
  SNP_GUEST_STATUS: INIT,
  SNP_GUEST_REQUEST: INIT,
  SNP_LAUNCH_START: INIT,
  SNP_LAUNCH_UPDATE: INIT,
  SNP_LAUNCH_FINISH: INIT,
  SNP_PAGE_RECLAIM: INIT,
};

/** A cell of the guest table: the state the command moves the guest to ("same": stays), or the refusal. */
export type SnpGuestCell = SnpGuestStateName | "same" | typeof SevStatus.INVALID_GUEST_STATE;

const REFUSED = SevStatus.INVALID_GUEST_STATE;

/**
 * Every (guest state × guest command) pair, written out. SNP_ACTIVATE needs a launched guest (LAUNCH or RUNNING:
 * KVM activates right after SNP_LAUNCH_START); SNP_GUEST_REQUEST needs RUNNING (the guest only runs after
 * SNP_LAUNCH_FINISH). A refused pair changes nothing.
 */
export const SNP_GUEST_TABLE: Readonly<
  Record<SnpGuestStateName, Readonly<Record<SnpGctxCmdName, SnpGuestCell>>>
> = {
  INIT: {
    SNP_DECOMMISSION: "same",
    SNP_ACTIVATE: REFUSED,
    SNP_GUEST_STATUS: "same",
    SNP_GUEST_REQUEST: REFUSED,
    SNP_LAUNCH_START: "LAUNCH",
    SNP_LAUNCH_UPDATE: REFUSED,
    SNP_LAUNCH_FINISH: REFUSED,
  },
  LAUNCH: {
    SNP_DECOMMISSION: "same",
    SNP_ACTIVATE: "same",
    SNP_GUEST_STATUS: "same",
    SNP_GUEST_REQUEST: REFUSED,
    SNP_LAUNCH_START: REFUSED,
    SNP_LAUNCH_UPDATE: "same",
    SNP_LAUNCH_FINISH: "RUNNING",
  },
  RUNNING: {
    SNP_DECOMMISSION: "same",
    SNP_ACTIVATE: "same",
    SNP_GUEST_STATUS: "same",
    SNP_GUEST_REQUEST: "same",
    SNP_LAUNCH_START: REFUSED,
    SNP_LAUNCH_UPDATE: REFUSED,
    SNP_LAUNCH_FINISH: REFUSED,
  },
};

export function snpGuestStateName(v: number): SnpGuestStateName | undefined {
  return SNP_GUEST_STATES.find((s) => SnpGuestState[s] === v);
}
