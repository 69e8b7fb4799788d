export {
  buildKernelHashesTable,
  type DirectBootInput,
  decodeKernelHashesTable,
  directBootHashes,
  encodeKernelHashesTable,
  KERNEL_HASHES_TABLE_LENGTH,
  KERNEL_HASHES_TABLE_SIZE,
  type KernelHashes,
  KernelHashesGuid,
} from "./kernel-hashes.ts";
export {
  computeLaunchDigest,
  type ExpectedLaunch,
  type ExpectedLaunchInput,
  expectedLaunch,
  LAUNCH_MODES,
  LaunchDigest,
  type LaunchMode,
} from "./launch-digest.ts";
export {
  MEASUREMENT_BLOB_SIZE,
  type MeasurementInput,
  measurementMac,
  splitMeasurementBlob,
} from "./measurement.ts";
export {
  type OvmfArea,
  type OvmfFooter,
  type OvmfFooterEntry,
  OvmfGuid,
  parseOvmfFooter,
  requireSevEsResetEip,
} from "./ovmf-footer.ts";
export {
  parseSevMetadata,
  requireSevMetadata,
  SEV_METADATA_SIGNATURE,
  type SevMetadata,
  type SevMetadataSection,
  SevMetadataSectionType,
} from "./ovmf-sev-metadata.ts";
export {
  computeSnpLaunchDigest,
  DEFAULT_SNP_GUEST_FEATURES,
  type ExpectedSnpLaunch,
  type ExpectedSnpLaunchInput,
  expectedSnpLaunch,
  SNP_LAUNCH_DIGEST_SIZE,
  SNP_VMM_TYPES,
  SnpLaunchDigest,
  SnpPageType,
  type SnpVmmType,
  snpOvmfHash,
} from "./snp-launch-digest.ts";
export { cpuSignature, QEMU_VCPU_TYPES, type VcpuType, vcpuSignatureOf } from "./vcpu-types.ts";
export {
  BSP_RESET_EIP,
  buildResetVmsa,
  DEFAULT_HOST_VMM_PROFILE,
  decodeVmsa,
  encodeVmsa,
  HOST_VMM_PROFILES,
  type HostVmmProfile,
  type ResetVmsaOptions,
  type ResetVmsaPagesOptions,
  resetVmsaFields,
  resetVmsaPages,
  VMM_PROFILE_SPECS,
  VMM_PROFILES,
  VMSA_LAYOUT,
  VMSA_PAGE_SIZE,
  VMSA_SAVE_AREA_SIZE,
  type VmcbSegment,
  type VmmProfile,
  type Vmsa,
  type VmsaFieldSpec,
} from "./vmsa.ts";
