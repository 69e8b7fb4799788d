/**
 * SEV-SNP firmware command ids (SNP ABI 56860, the command-identifier table of its command chapter;
 * docs/sev-interface.md §14 lists every id) and the size of each command buffer the emulated firmware implements.
 * The ids are the firmware's, the same numbers Linux's `enum sev_cmd` carries (SEV_CMD_SNP_*), not ioctl numbers.
 *
 * Every buffer is packed and little-endian. The layouts (offsets in bytes):
 *
 * | command | buffer |
 * |---|---|
 * | SNP_INIT | none |
 * | SNP_INIT_EX | flags u32 @0 (bit 0 INIT_RMP, 1 LIST_PADDR_EN, 2 RAPL_DIS, 3 CIPHERTEXT_HIDING_EN), rsvd u32 @4, LIST_PADDR u64 @8, MAX_SNP_ASID u16 @0x10, rsvd to 0x40 |
 * | SNP_SHUTDOWN | none |
 * | SNP_SHUTDOWN_EX | LENGTH u32 @0, flags u32 @4 (bit 0 IOMMU_SNP_SHUTDOWN, 1 X86_SNP_SHUTDOWN) |
 * | SNP_PLATFORM_STATUS | STATUS_PADDR u64 @0 (the firmware writes the 0x20-byte status structure there) |
 * | SNP_DF_FLUSH | none |
 * | SNP_GCTX_CREATE, SNP_DECOMMISSION | GCTX_PADDR u64 @0 |
 * | SNP_ACTIVATE | GCTX_PADDR u64 @0, ASID u32 @8 |
 * | SNP_GUEST_STATUS | GCTX_PADDR u64 @0, STATUS_PADDR u64 @8 |
 * | SNP_GUEST_REQUEST | GCTX_PADDR u64 @0, REQUEST_PADDR u64 @8, RESPONSE_PADDR u64 @0x10 |
 * | SNP_LAUNCH_START | GCTX_PADDR u64 @0, POLICY u64 @8, MA_GCTX_PADDR u64 @0x10, flags u32 @0x18 (bit 0 MA_EN, 1 IMI_EN), DESIRED_TSC_KHZ u32 @0x1C, GOSVW[16] @0x20 |
 * | SNP_LAUNCH_UPDATE | GCTX_PADDR u64 @0, u32 @8 (bit 0 PAGE_SIZE, bits 3:1 PAGE_TYPE, bit 4 IMI_PAGE), rsvd u32 @0xC, PAGE_PADDR u64 @0x10, u32 @0x18 (bits 15:8 VMPL1, 23:16 VMPL2, 31:24 VMPL3 permissions), rsvd u32 @0x1C |
 * | SNP_LAUNCH_FINISH | GCTX_PADDR u64 @0, ID_BLOCK_PADDR u64 @8, ID_AUTH_PADDR u64 @0x10, u64 @0x18 (bit 0 ID_BLOCK_EN, 1 AUTH_KEY_EN, 2 VCEK_DISABLED), HOST_DATA[32] @0x20 |
 * | SNP_PAGE_RECLAIM | PADDR u64 @0 (bit 0 PAGE_SIZE: 0 = 4 KiB, 1 = 2 MiB; bits 11:1 reserved; bits 63:12 the page) |
 *
 * Not implemented here (an SNP id outside this table answers INVALID_COMMAND, as any unknown id does): ACTIVATE_EX
 * 0x95, DBG_DECRYPT / DBG_ENCRYPT 0xB0 / 0xB1, the page swap and move commands 0xC0–0xC3, PAGE_SET_STATE 0xC6,
 * UNSMASH 0xC8, CONFIG 0xC9, DOWNLOAD_FIRMWARE_EX 0xCA, COMMIT 0xCB, VLEK_LOAD 0xCD, FEATURE_INFO 0xCE.
 */
export const SnpCmd = {
  SNP_INIT: 0x81,
  SNP_SHUTDOWN: 0x82,
  SNP_PLATFORM_STATUS: 0x83,
  SNP_DF_FLUSH: 0x84,
  SNP_INIT_EX: 0x85,
  SNP_SHUTDOWN_EX: 0x86,
  SNP_DECOMMISSION: 0x90,
  SNP_ACTIVATE: 0x91,
  SNP_GUEST_STATUS: 0x92,
  SNP_GCTX_CREATE: 0x93,
  SNP_GUEST_REQUEST: 0x94,
  SNP_LAUNCH_START: 0xa0,
  SNP_LAUNCH_UPDATE: 0xa1,
  SNP_LAUNCH_FINISH: 0xa2,
  SNP_PAGE_RECLAIM: 0xc7,
} as const;

export type SnpCmdName = keyof typeof SnpCmd;
export type SnpCmdId = (typeof SnpCmd)[SnpCmdName];

const names = new Map<number, SnpCmdName>(
  Object.entries(SnpCmd).map(([k, v]) => [v, k as SnpCmdName] as const),
);

/** "SNP_LAUNCH_UPDATE", or undefined for an id this firmware does not implement. */
export function snpCmdName(id: number): SnpCmdName | undefined {
  return names.get(id);
}

export function isSnpCmd(id: number): id is SnpCmdId {
  return names.has(id);
}

/** The SNP command range of the firmware's numbering (0x80–0xCF): the dispatcher routes these to the SNP firmware. */
export function isSnpCmdRange(id: number): boolean {
  return Number.isInteger(id) && id >= 0x80 && id <= 0xcf;
}

/** Command-buffer sizes in bytes; commands without a buffer have 0. */
export const SNP_CMD_BUFFER_SIZE: Readonly<Record<SnpCmdName, number>> = {
  SNP_INIT: 0,
  SNP_SHUTDOWN: 0,
  SNP_PLATFORM_STATUS: 0x08,
  SNP_DF_FLUSH: 0,
  SNP_INIT_EX: 0x40,
  SNP_SHUTDOWN_EX: 0x08,
  SNP_DECOMMISSION: 0x08,
  SNP_ACTIVATE: 0x0c,
  SNP_GUEST_STATUS: 0x10,
  SNP_GCTX_CREATE: 0x08,
  SNP_GUEST_REQUEST: 0x18,
  SNP_LAUNCH_START: 0x30,
  SNP_LAUNCH_UPDATE: 0x20,
  SNP_LAUNCH_FINISH: 0x40,
  SNP_PAGE_RECLAIM: 0x08,
};

/** Commands that act on an existing guest context named by GCTX_PADDR at offset 0 (SNP_GCTX_CREATE makes one). */
export const SNP_GCTX_CMDS = [
  "SNP_DECOMMISSION",
  "SNP_ACTIVATE",
  "SNP_GUEST_STATUS",
  "SNP_GUEST_REQUEST",
  "SNP_LAUNCH_START",
  "SNP_LAUNCH_UPDATE",
  "SNP_LAUNCH_FINISH",
] as const satisfies readonly SnpCmdName[];
export type SnpGctxCmdName = (typeof SNP_GCTX_CMDS)[number];

export function isGctxCmd(name: SnpCmdName): name is SnpGctxCmdName {
  return (SNP_GCTX_CMDS as readonly string[]).includes(name);
}
