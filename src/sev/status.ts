/**
 * SEV firmware status codes (docs/sev-interface.md §5; torvalds/linux include/uapi/linux/psp-sev.h). The emulated
 * Secure Processor answers every command with one of these, exactly as the real firmware does.
 */
export const SevStatus = {
  SUCCESS: 0x00,
  INVALID_PLATFORM_STATE: 0x01,
  INVALID_GUEST_STATE: 0x02,
  INVALID_CONFIG: 0x03,
  INVALID_LENGTH: 0x04,
  ALREADY_OWNED: 0x05,
  INVALID_CERTIFICATE: 0x06,
  POLICY_FAILURE: 0x07,
  INACTIVE: 0x08,
  INVALID_ADDRESS: 0x09,
  BAD_SIGNATURE: 0x0a,
  BAD_MEASUREMENT: 0x0b,
  ASID_OWNED: 0x0c,
  INVALID_ASID: 0x0d,
  WBINVD_REQUIRED: 0x0e,
  DFFLUSH_REQUIRED: 0x0f,
  INVALID_GUEST: 0x10,
  INVALID_COMMAND: 0x11,
  ACTIVE: 0x12,
  HWERROR_PLATFORM: 0x13,
  HWERROR_UNSAFE: 0x14,
  UNSUPPORTED: 0x15,
  INVALID_PARAM: 0x16,
  RESOURCE_LIMIT: 0x17,
  SECURE_DATA_INVALID: 0x18,
  INVALID_PAGE_SIZE: 0x19,
  INVALID_PAGE_STATE: 0x1a,
  INVALID_MDATA_ENTRY: 0x1b,
  INVALID_PAGE_OWNER: 0x1c,
  AEAD_OFLOW: 0x1d,
  RING_BUFFER_EXIT: 0x1f,
  RMP_INIT_REQUIRED: 0x20,
  BAD_SVN: 0x21,
  BAD_VERSION: 0x22,
  SHUTDOWN_REQUIRED: 0x23,
  UPDATE_FAILED: 0x24,
  RESTORE_REQUIRED: 0x25,
  RMP_INIT_FAILED: 0x26,
  INVALID_KEY: 0x27,
} as const;

export type SevStatusName = keyof typeof SevStatus;
export type SevStatusCode = (typeof SevStatus)[SevStatusName];

const names = new Map<number, SevStatusName>(
  Object.entries(SevStatus).map(([k, v]) => [v, k as SevStatusName] as const),
);

/** "INVALID_GUEST_STATE (0x02)" — the form used in every message. */
export function formatStatus(code: number): string {
  return `${names.get(code) ?? "UNKNOWN"} (0x${code.toString(16).padStart(2, "0")})`;
}

export function statusName(code: number): SevStatusName | "UNKNOWN" {
  return names.get(code) ?? "UNKNOWN";
}
