/**
 * The API's JSON shapes as the CLI reads them: `Static` types of the server's own TypeBox schemas, imported as
 * types only (no server code is loaded at run time), so a field the API adds, renames or narrows reaches the CLI
 * through the compiler instead of a second copy. `$ref`-linked parts (a VM's spec, an answer's operation) have no
 * static type of their own in TypeBox, so they are put back together here from the schemas they name.
 */
import type { Static } from "typebox";
import type {
  AuditRecordSchema,
  AuditVerificationSchema,
  MeSchema,
  TokenSchema,
} from "../../api/schemas/admin.ts";
import type {
  LaunchFinishAnswer,
  LaunchMeasurementSchema,
  LaunchSessionAnswer,
  SevInfoSchema,
} from "../../api/schemas/attestation.ts";
import type {
  OperationItemSchema,
  OperationSchema,
  OperationSummarySchema,
} from "../../api/schemas/common.ts";
import type { VmConsoleSchema } from "../../api/schemas/console.ts";
import type { HostSchema } from "../../api/schemas/host.ts";
import type { DryRunPlanSchema, PlanItemSchema, PoolImpactSchema } from "../../api/schemas/plan.ts";
import type {
  BulkPowerBody,
  BulkSetSchema,
  CreateVmBody,
  PowerStateSchema,
  SecurityModeSchema,
  SelectorSchema,
  VmSchema,
  VmSpecSchema,
} from "../../api/schemas/vm.ts";

export type SecurityMode = Static<typeof SecurityModeSchema>;
export type PowerState = Static<typeof PowerStateSchema>;

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

export type ApiVmSpec = Static<typeof VmSpecSchema>;
export type ApiVm = Omit<Static<typeof VmSchema>, "spec"> & { readonly spec: ApiVmSpec };
export type ApiCreateVm = Omit<Static<typeof CreateVmBody>, "spec"> & { readonly spec: ApiVmSpec };
export type ApiHost = Static<typeof HostSchema>;
export type ApiOperation = Static<typeof OperationSchema>;
export type ApiItem = Static<typeof OperationItemSchema>;
export type ApiToken = Static<typeof TokenSchema>;
export type ApiAuditRecord = Static<typeof AuditRecordSchema>;
export type ApiAuditVerification = Static<typeof AuditVerificationSchema>;
export type ApiMe = Static<typeof MeSchema>;

/** What a mutating route answers. */
export interface OperationAnswer {
  readonly operation: ApiOperation;
  readonly results?: ApiItem[];
  readonly vm?: ApiVm;
}

export type OperationSummary = Omit<Static<typeof OperationSummarySchema>, "operation" | "failures"> & {
  readonly operation: ApiOperation;
  readonly failures: ApiItem[];
};

/** The selector of `vms:bulk-update` and `vms:bulk-power`. */
export type ApiSelector = Static<typeof SelectorSchema>;
export type ApiBulkSet = Static<typeof BulkSetSchema>;
export type ApiBulkPowerAction = Static<typeof BulkPowerBody>["action"];

/** The answer of every mutating route on `?dryRun=true`. */
export type ApiPlan = Static<typeof DryRunPlanSchema>;
export type ApiPlanItem = Static<typeof PlanItemSchema>;
export type ApiPoolImpact = Static<typeof PoolImpactSchema>;

/** The attestation routes' answers. */
export type ApiSevInfo = Static<typeof SevInfoSchema>;
export type ApiLaunchSession = Static<typeof LaunchSessionAnswer>;
export type ApiLaunchMeasurement = Static<typeof LaunchMeasurementSchema>;
export type ApiLaunchFinish = Static<typeof LaunchFinishAnswer>;
export type ApiVmConsole = Static<typeof VmConsoleSchema>;
