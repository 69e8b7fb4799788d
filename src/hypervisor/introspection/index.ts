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
export { HypervisorView, type SaveAreaView, type ViewedGuest } from "./hypervisor-view.ts";
export { createLab, type Lab, type LabOptions } from "./lab.ts";
