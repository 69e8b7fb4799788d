/**
 * The emulated EPYC hardware (docs/sev-interface.md §7, §12, §13): CPU models, CPUID 0x8000001F and ASID pools, DRAM,
 * the memory path and the nested page table, VMRUN/#VMEXIT with the VMCB, the encrypted VMSA and its integrity
 * record in trusted memory, the GHCB, the guest ISA — and, under host/, the reference host software (KVM-like exit
 * and VMGEXIT handling, devices, launch) that the emulated hypervisor runs on it.
 */

export { ApCreationRequest, apCreationExitInfo1, SNP_AP_CREATION_EXIT } from "./ap-creation.ts";
export {
  CPU_MODELS,
  type CpuModel,
  checkMinSevAsid,
  cpuModel,
  GENERATIONS,
  type Generation,
} from "./cpu-models.ts";
export {
  type AsidPools,
  type AsidRange,
  asidClass,
  asidPools,
  type CpuidLeaf,
  hostCpuid8000001f,
  SEV_FEATURE_BITS,
} from "./cpuid.ts";
export { Dram, PAGE_SIZE, type SystemMemory } from "./dram.ts";
export type { MachineObserver } from "./execution.ts";
export {
  EXIT_CODES,
  type ExitClass,
  exitCodeName,
  exitCodeRow,
  isNonAutomatic,
  SvmExit,
  VMEXIT_INVALID,
} from "./exit-codes.ts";
export {
  EXPOSABLE_FIELDS,
  type ExposableField,
  GHCB_SIZE,
  GhcbError,
  GhcbField,
  GhcbHvFeature,
  GhcbMsr,
  GhcbResponse,
  GhcbView,
  KVM_HV_FEATURES,
  MSR_GHCB,
  MSR_SEV_STATUS,
} from "./ghcb.ts";
export { decodeInstruction, encodeInstruction, GPR_NAMES, type Instruction, ISA, Op, Reg } from "./isa.ts";
export { Machine, type MachineConfig, SEV_FEATURE_SNP_ACTIVE, type VmExit } from "./machine.ts";
export { NAE_EXITS, naeExit } from "./nae-exits.ts";
export { NATIVE_CODE_BASE, type NativeCpu, type NativeGuestCode, type NativeStep } from "./native-code.ts";
export { NestedPageTable, type NptEntry } from "./nested-page-table.ts";
export {
  PSC_MAX_ENTRIES,
  PscDescriptor,
  type PscEntry,
  PscError,
  PscOp,
  pscMsrRequest,
  SNP_PSC_EXIT,
} from "./page-state-change.ts";
export {
  NPF_ENC,
  NPF_SIZEM,
  NPF_VMPL,
  PF_RMP,
  RMP_RETURN_CODES,
  Rmp,
  type RmpEntry,
  RmpPageSize,
  RmpReturn,
  type RmpUpdateInput,
  VC_PAGE_NOT_VALIDATED,
  VmplPerm,
} from "./rmp.ts";
export { VmsaIntegrityStore } from "./trusted-memory.ts";
export { DEFAULT_INTERCEPTS, type SecurityMode, Vmcb, type VmcbControl } from "./vmcb.ts";
export { SEV_FEATURE_VMSA_REG_PROT } from "./vmsa-protection.ts";
