/**
 * The control plane: inventory (storage), audit chain, roles and tokens; host drivers; compatibility checks and
 * placement; the operations engine and the services it runs; demo datacenters.
 */
export * from "./audit/index.ts";
export {
  allHosts,
  hostViews,
  type Reservation,
  type ReserveOptions,
  reserveSlot,
  summarizeUsage,
} from "./capacity.ts";
export {
  type CompatCode,
  type CompatFinding,
  configFindings,
  hostFacts,
  hostFindings,
  hypervisorSpec,
  modeChangeFindings,
  type PoolUse,
  poolReports,
  SLOT_STATES,
} from "./compat.ts";
export {
  type ControlPlane,
  type ControlPlaneOptions,
  createControlPlane,
  OPERATION_KINDS,
  type OperationKind,
} from "./control-plane.ts";
export { buildDemo, buildFleet, DEMO_ACTOR } from "./demo.ts";
export {
  createEmulatedHost,
  type DriverFinding,
  type DriverHost,
  DriverRegistry,
  EmulatedDriver,
  type EmulatedHostOptions,
  type EmulatedMachine,
  type EmulatedMachineFactory,
  emulatedDriver,
  type HostDriver as HostDriverApi,
  type LaunchSecret,
  type PerformArgs,
} from "./drivers/index.ts";
export * from "./inventory/index.ts";
export { canonicalJson, type JsonObject, type JsonValue } from "./json.ts";
export { OperationEngine } from "./operations/engine.ts";
export { mapLimit } from "./operations/limit.ts";
export { type SubmitRequest, submitOperation } from "./operations/submit.ts";
export type { Logger, RunContext, Runner, RunResult } from "./operations/types.ts";
export {
  type CandidateVerdict,
  choosePlacement,
  type HostView,
  noValidHost,
  type PlacementDecision,
  type PlaceOptions,
} from "./placement.ts";
export * from "./rbac.ts";
export {
  type ChangeKind,
  classifyChange,
  type Protection,
  resolvePolicy,
  validatePolicy,
} from "./security-change.ts";
export { type RegisterHostRequest, registerHost, removeHost } from "./services/hosts.ts";
export { type DrainPlanStep, drainPlan } from "./services/maintenance.ts";
export * from "./tokens.ts";
