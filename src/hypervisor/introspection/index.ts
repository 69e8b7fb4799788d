/**
 * The hypervisor's view of a guest — exactly what hardware lets it read and write — and the experiments built on
 * it (the lab bench, the canary experiment behind `ciphervisor demo hypervisor-view`).
 */
export {
  type CanaryExperimentOptions,
  type CanaryExperimentResult,
  canaryExperimentJson,
  type ExitView,
  findValue,
  hex64,
  runCanaryExperiment,
} from "./canary-experiment.ts";
export { attemptHostWrite, describeHostWrite, type HostWriteAttempt, snpVerdict } from "./host-write.ts";
export { HypervisorView, type SaveAreaView, type ViewedGuest } from "./hypervisor-view.ts";
export { createLab, type Lab, type LabOptions } from "./lab.ts";
export { createModeLab, type ModeLab } from "./mode-lab.ts";
export { createSnpLab, type SnpLab, type SnpLabOptions } from "./snp-lab.ts";
