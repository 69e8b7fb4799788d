/** The emulated hypervisor host (ESXi's role) and its tables. */
export { BUILTIN_LAYOUT, BUILTIN_UEFI_NAME, builtinUefiImage } from "./builtin-uefi.ts";
export { DEFAULT_WORKLOAD } from "./default-workload.ts";
export { FramePool } from "./frames.ts";
export { Host, type HostConfig } from "./host.ts";
export { HypervisorView, type SaveAreaView } from "./introspection/hypervisor-view.ts";
export { HostDevices, type HostRegs } from "./kvm/devices.ts";
export { type HandledExit, type HostOutcome, type HostVm, handleExit } from "./kvm/exit-handler.ts";
export { type LaunchedGuest, type LaunchFirmware, launchGuest } from "./kvm/launch.ts";
export type { VcpuMpState, VcpuStatus, VcpuVmsaSource } from "./kvm/snp-vcpus.ts";
export { type GhcbExchange, handleVmgexit } from "./kvm/vmgexit.ts";
export { QEMU_VCPU_MODEL, resolveFirmware } from "./launch.ts";
export {
  assertAllowed,
  liveMigratable,
  OPERATION_RULES,
  OPERATIONS,
  type Operation,
  type RefusalCode,
  type Rule,
  ruleFor,
  SECURITY_MODES,
  type SecurityMode,
} from "./operation-rules.ts";
export {
  MIN_HARDWARE_VERSION_ENCRYPTED,
  type RequirementCode,
  type RequirementFinding,
  requirementFindings,
} from "./requirements.ts";
export type {
  DeviceKind,
  DeviceSpec,
  DirectBootSpec,
  DrainStep,
  FirmwareSpec,
  GuestOwnerSession,
  HostCapabilities,
  HostPlatform,
  LaunchSpec,
  PoolReport,
  RunState,
  SevState,
  StartResult,
  VmStatus,
} from "./types.ts";
export { defaultPolicy, effectivePolicy, validateVmSpec } from "./vm-spec.ts";
