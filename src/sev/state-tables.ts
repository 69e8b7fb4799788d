/**
 * The firmware's state machines as data (docs/sev-interface.md §2 and §3; AMD's `state_tbl_sev`). The dispatcher and
 * the exhaustive tests both read these tables.
 */
import type { CmdName } from "./commands.ts";

export const PlatformState = { UNINIT: 0, INIT: 1, WORKING: 2 } as const;
export type PlatformStateName = keyof typeof PlatformState;

/** Guest states as GUEST_STATUS reports them (AMD's firmware calls 0 INVALID). */
export const GuestState = {
  UNINIT: 0,
  LUPDATE: 1,
  LSECRET: 2,
  RUNNING: 3,
  SUPDATE: 4,
  RUPDATE: 5,
  SENT: 6,
} as const;
export type GuestStateName = keyof typeof GuestState;

const ANY: PlatformStateName[] = ["UNINIT", "INIT", "WORKING"];
const LIVE: PlatformStateName[] = ["INIT", "WORKING"];

/** Platform states in which each command is accepted; any other → INVALID_PLATFORM_STATE. */
export const PLATFORM_TABLE: Readonly<Record<CmdName, readonly PlatformStateName[]>> = {
  INIT: ["UNINIT"],
  // SHUTDOWN in UNINIT is accepted as a no-op (docs/sev-interface.md §2 [unconfirmed]); Linux relies on that.
  SHUTDOWN: ANY,
  PLATFORM_RESET: ["UNINIT"],
  PLATFORM_STATUS: ANY,
  PEK_GEN: ["INIT"],
  PEK_CSR: ["INIT"],
  PEK_CERT_IMPORT: ["INIT"],
  PDH_CERT_EXPORT: LIVE,
  PDH_GEN: LIVE,
  DF_FLUSH: LIVE,
  GET_ID: ANY,
  DECOMMISSION: LIVE,
  ACTIVATE: LIVE,
  DEACTIVATE: LIVE,
  GUEST_STATUS: LIVE,
  LAUNCH_START: LIVE,
  LAUNCH_UPDATE_DATA: LIVE,
  LAUNCH_UPDATE_VMSA: LIVE,
  LAUNCH_MEASURE: LIVE,
  LAUNCH_SECRET: LIVE,
  LAUNCH_FINISH: LIVE,
  SEND_START: LIVE,
  SEND_UPDATE_DATA: LIVE,
  SEND_UPDATE_VMSA: LIVE,
  SEND_FINISH: LIVE,
  SEND_CANCEL: LIVE,
  RECEIVE_START: LIVE,
  RECEIVE_UPDATE_DATA: LIVE,
  RECEIVE_UPDATE_VMSA: LIVE,
  RECEIVE_FINISH: LIVE,
  DBG_DECRYPT: LIVE,
  DBG_ENCRYPT: LIVE,
};

/** Commands every live guest accepts (DECOMMISSION from any live state per `state_tbl_sev`). */
const EVERY_LIVE: CmdName[] = ["ACTIVATE", "DEACTIVATE", "DECOMMISSION", "GUEST_STATUS"];

/**
 * Guest commands accepted in each state of an existing guest context, and the state each moves to. Any pair not
 * listed → INVALID_GUEST_STATE, nothing changed.
 */
export const GUEST_TABLE: Readonly<
  Record<Exclude<GuestStateName, "UNINIT">, Partial<Record<CmdName, GuestStateName | "same">>>
> = {
  LUPDATE: {
    ...same(EVERY_LIVE),
    LAUNCH_UPDATE_DATA: "same",
    LAUNCH_UPDATE_VMSA: "same",
    LAUNCH_MEASURE: "LSECRET",
  },
  LSECRET: { ...same(EVERY_LIVE), LAUNCH_SECRET: "same", LAUNCH_FINISH: "RUNNING" },
  RUNNING: { ...same(EVERY_LIVE), SEND_START: "SUPDATE", DBG_DECRYPT: "same", DBG_ENCRYPT: "same" },
  SUPDATE: {
    ...same(EVERY_LIVE),
    SEND_UPDATE_DATA: "same",
    SEND_UPDATE_VMSA: "same",
    SEND_FINISH: "SENT",
    SEND_CANCEL: "RUNNING",
  },
  RUPDATE: {
    ...same(EVERY_LIVE),
    RECEIVE_UPDATE_DATA: "same",
    RECEIVE_UPDATE_VMSA: "same",
    RECEIVE_FINISH: "RUNNING",
  },
  SENT: { DEACTIVATE: "same", DECOMMISSION: "same", GUEST_STATUS: "same" },
};

function same(cmds: CmdName[]): Partial<Record<CmdName, "same">> {
  return Object.fromEntries(cmds.map((c) => [c, "same"]));
}

export function guestStateName(v: number): GuestStateName {
  const e = Object.entries(GuestState).find(([, n]) => n === v);
  return (e?.[0] ?? "UNINIT") as GuestStateName;
}
