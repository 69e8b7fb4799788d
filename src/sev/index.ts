/** The emulated AMD Secure Processor (SEV firmware API) and its host-side client. */
export { AsidAllocator, type AsidPool, type PoolUsage } from "./asid-allocator.ts";
export {
  type GuestStatus,
  type Packet,
  type PlatformStatus,
  type ScratchRegion,
  SevClient,
} from "./client.ts";
export { CMD_BUFFER_SIZE, Cmd, type CmdName, cmdName } from "./commands.ts";
export {
  createEmulatedPlatform,
  type EmulatedPlatform,
  GUEST_BASE,
  SCRATCH,
  TMR_PA,
} from "./emulated-platform.ts";
export { SevFirmwareError } from "./errors.ts";
export { CHAIN_FILES, type ExportedChain, exportFullChain } from "./export.ts";
export type { FirmwareMemory, VmsaIntegrityRecorder } from "./firmware-state.ts";
export type { MemoryKeySlots } from "./key-slots.ts";
export { emulatedRootCerts, kdsSignedCek } from "./manufacturer/emulated-amd.ts";
export {
  amdKdsLocations,
  type ChipRecords,
  EmulatedKds,
  emulatedKdsLocations,
  KDS_PRODUCTS,
  type KdsLocations,
  kdsProduct,
  parseKdsChipId,
} from "./manufacturer/emulated-kds.ts";
export {
  apiSatisfies,
  type DecodedPolicy,
  decodePolicy,
  describePolicy,
  PolicyBit,
  type PolicyFlag,
} from "./policy.ts";
export {
  emulatedChipId,
  type FirmwareSnapshot,
  SecureProcessor,
  type SecureProcessorConfig,
} from "./secure-processor.ts";
export {
  GUEST_TABLE,
  GuestState,
  type GuestStateName,
  PLATFORM_TABLE,
  PlatformState,
  type PlatformStateName,
} from "./state-tables.ts";
export { formatStatus, SevStatus, type SevStatusCode, type SevStatusName, statusName } from "./status.ts";
