/**
 * The API's JSON shapes as the CLI reads them (the OpenAPI document at `/docs/json` is the source). Declared here
 * rather than imported from the server, because the CLI is a client of the HTTP API and must keep working against
 * any server that speaks it.
 */

export type SecurityMode = "none" | "sev" | "sev-es";
export type PowerState = "off" | "starting" | "running" | "paused" | "stopping" | "suspended";

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

export interface ApiVmSpec {
  readonly vcpus: number;
  readonly memoryMiB: number;
  readonly guestOs: string;
  readonly firmware: "efi" | "bios";
  readonly hardwareVersion: number;
  readonly machine?: "q35" | "pc";
  readonly secureBoot?: boolean;
  readonly devices?: { readonly kind: string; readonly detail?: string }[];
  readonly attestation?: boolean;
}

export interface ApiVm {
  readonly id: string;
  readonly name: string;
  readonly clusterId: string | null;
  readonly hostId: string | null;
  readonly spec: ApiVmSpec;
  readonly powerState: PowerState;
  readonly securityMode: SecurityMode;
  readonly policy: number;
  readonly attestationState: string;
  readonly liveMigratable: { readonly status: boolean; readonly reason?: string };
  readonly labels: Readonly<Record<string, string>>;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly version: number;
}

export interface ApiPool {
  readonly first: number;
  readonly last: number;
  readonly size: number;
  readonly used: number;
  readonly free: number;
}

export interface ApiHost {
  readonly id: string;
  readonly name: string;
  readonly clusterId: string | null;
  readonly driver: string;
  readonly address: string;
  readonly cpuGeneration: string;
  readonly sevState: string;
  readonly esMode: string;
  readonly maintenance: string;
  readonly connection: string;
  readonly pools: { readonly sev: ApiPool; readonly sevEs: ApiPool };
  readonly activeVms: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly version: number;
}

export interface ApiOperation {
  readonly id: string;
  readonly kind: string;
  readonly status: "pending" | "running" | "succeeded" | "partially-failed" | "failed" | "cancelled";
  readonly actor: { readonly id: string | null; readonly name: string };
  readonly params: Readonly<Record<string, unknown>>;
  readonly progress: {
    readonly done: number;
    readonly total: number;
    readonly ok: number;
    readonly failed: number;
  };
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly attempts: number;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

export interface ApiItem {
  readonly target: string;
  readonly outcome: "ok" | "failed";
  readonly code: string | null;
  readonly reason: string | null;
  readonly details: Readonly<Record<string, unknown>> | null;
  readonly recordedAt: string;
}

/** What a mutating route answers. */
export interface OperationAnswer {
  readonly operation: ApiOperation;
  readonly results?: ApiItem[];
  readonly vm?: ApiVm;
}

export interface ApiToken {
  readonly id: string;
  readonly name: string;
  readonly roles: string[];
  readonly createdAt: string;
  readonly createdBy: string | null;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly lastUsedAt: string | null;
}

export interface ApiAuditRecord {
  readonly seq: number;
  readonly time: string;
  readonly actor: { readonly id: string | null; readonly name: string };
  readonly action: string;
  readonly target: string;
  readonly outcome: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

export interface ApiAuditVerification {
  readonly ok: boolean;
  readonly verified: number;
  readonly lastSeq: number;
  readonly lastHash: string;
  readonly firstBad: { readonly seq: number; readonly problem: string; readonly message: string } | null;
}

/** The bulk-update selector (`vms:bulk-update`, `vms:bulk-update-plan`). */
export interface ApiSelector {
  readonly all?: boolean;
  readonly ids?: readonly string[];
  readonly namePrefix?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly hostId?: string | null;
  readonly clusterId?: string;
  readonly powerState?: PowerState;
  readonly securityMode?: SecurityMode;
}

export interface ApiBulkSet {
  readonly securityMode?: SecurityMode;
  readonly policy?: number;
}

/** The what-if plan of `vms:bulk-update-plan`: the server's own types (type-only; no server code is loaded). */
export type { BulkPlan, PlannedVm, PoolImpact } from "../../control/services/bulk-plan.ts";

export interface DrainPlan {
  readonly host: string;
  readonly steps: {
    readonly vmId: string;
    readonly vm: string;
    readonly securityMode: string;
    readonly powerState: string;
    readonly path: string;
    readonly reason: string;
    readonly pool?: string;
    readonly target?: { readonly hostId: string; readonly host: string };
    readonly blocked?: string;
    readonly needsOwner?: boolean;
  }[];
}
