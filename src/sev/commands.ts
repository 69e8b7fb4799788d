/**
 * Firmware command ids (docs/sev-interface.md §4.1, §4.2) — the firmware's numbering, not the Linux ioctl numbers
 * (docs/sev-interface.md §15 pitfall 15) — and the size of each command buffer (all packed, §0.2).
 */
export const Cmd = {
  INIT: 0x01,
  SHUTDOWN: 0x02,
  PLATFORM_RESET: 0x03,
  PLATFORM_STATUS: 0x04,
  PEK_GEN: 0x05,
  PEK_CSR: 0x06,
  PEK_CERT_IMPORT: 0x07,
  PDH_CERT_EXPORT: 0x08,
  PDH_GEN: 0x09,
  DF_FLUSH: 0x0a,
  GET_ID: 0x0c,
  DECOMMISSION: 0x20,
  ACTIVATE: 0x21,
  DEACTIVATE: 0x22,
  GUEST_STATUS: 0x23,
  LAUNCH_START: 0x30,
  LAUNCH_UPDATE_DATA: 0x31,
  LAUNCH_UPDATE_VMSA: 0x32,
  LAUNCH_MEASURE: 0x33,
  LAUNCH_SECRET: 0x34,
  LAUNCH_FINISH: 0x35,
  SEND_START: 0x40,
  SEND_UPDATE_DATA: 0x41,
  SEND_UPDATE_VMSA: 0x42,
  SEND_FINISH: 0x43,
  SEND_CANCEL: 0x44,
  RECEIVE_START: 0x50,
  RECEIVE_UPDATE_DATA: 0x51,
  RECEIVE_UPDATE_VMSA: 0x52,
  RECEIVE_FINISH: 0x53,
  DBG_DECRYPT: 0x60,
  DBG_ENCRYPT: 0x61,
} as const;

export type CmdName = keyof typeof Cmd;
export type CmdId = (typeof Cmd)[CmdName];

const cmdNames = new Map<number, CmdName>(Object.entries(Cmd).map(([k, v]) => [v, k as CmdName] as const));

export function cmdName(id: number): string {
  return cmdNames.get(id) ?? `0x${id.toString(16)}`;
}

export function isKnownCmd(id: number): id is CmdId {
  return cmdNames.has(id);
}

/** Command-buffer sizes in bytes. Commands without a buffer have 0. */
export const CMD_BUFFER_SIZE: Readonly<Record<CmdName, number>> = {
  INIT: 0x14,
  SHUTDOWN: 0,
  PLATFORM_RESET: 0,
  PLATFORM_STATUS: 0x0c,
  PEK_GEN: 0,
  PEK_CSR: 0x0c,
  PEK_CERT_IMPORT: 0x1c,
  PDH_CERT_EXPORT: 0x1c,
  PDH_GEN: 0,
  DF_FLUSH: 0,
  GET_ID: 0x0c,
  DECOMMISSION: 0x04,
  ACTIVATE: 0x08,
  DEACTIVATE: 0x04,
  GUEST_STATUS: 0x10,
  LAUNCH_START: 0x24,
  LAUNCH_UPDATE_DATA: 0x14,
  LAUNCH_UPDATE_VMSA: 0x14,
  LAUNCH_MEASURE: 0x14,
  LAUNCH_SECRET: 0x34,
  LAUNCH_FINISH: 0x04,
  SEND_START: 0x44,
  SEND_UPDATE_DATA: 0x34,
  SEND_UPDATE_VMSA: 0x34,
  SEND_FINISH: 0x04,
  SEND_CANCEL: 0x04,
  RECEIVE_START: 0x24,
  RECEIVE_UPDATE_DATA: 0x34,
  RECEIVE_UPDATE_VMSA: 0x34,
  RECEIVE_FINISH: 0x04,
  DBG_DECRYPT: 0x1c,
  DBG_ENCRYPT: 0x1c,
};

/** Commands that act on a guest context through a handle at offset 0. */
export const GUEST_CMDS: ReadonlySet<CmdName> = new Set<CmdName>([
  "DECOMMISSION",
  "ACTIVATE",
  "DEACTIVATE",
  "GUEST_STATUS",
  "LAUNCH_UPDATE_DATA",
  "LAUNCH_UPDATE_VMSA",
  "LAUNCH_MEASURE",
  "LAUNCH_SECRET",
  "LAUNCH_FINISH",
  "SEND_START",
  "SEND_UPDATE_DATA",
  "SEND_UPDATE_VMSA",
  "SEND_FINISH",
  "SEND_CANCEL",
  "RECEIVE_UPDATE_DATA",
  "RECEIVE_UPDATE_VMSA",
  "RECEIVE_FINISH",
  "DBG_DECRYPT",
  "DBG_ENCRYPT",
]);
