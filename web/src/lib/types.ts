/** The API's response shapes the dashboard reads (src/api/schemas/ is the source of truth; fields it ignores are left out). */

export type SecurityMode = "none" | "sev" | "sev-es" | "sev-snp";

export interface Problem {
  readonly type?: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly errors?: readonly { in: string; path: string; message: string }[];
}

export interface Me {
  readonly tokenId: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
}

export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor: string | null;
}

export interface Vm {
  readonly id: string;
  readonly name: string;
  readonly clusterId: string | null;
  readonly hostId: string | null;
  readonly spec: { readonly guestOs: string; readonly vcpus: number; readonly memoryMiB: number };
  readonly powerState: string;
  readonly securityMode: SecurityMode;
  readonly policy: number;
  readonly attestationState: string;
  readonly liveMigratable: { readonly status: boolean; readonly reason?: string };
  readonly labels: Readonly<Record<string, string>>;
}

export interface Pool {
  readonly first: number;
  readonly last: number;
  readonly size: number;
  readonly used: number;
  readonly free: number;
}

export interface Host {
  readonly id: string;
  readonly name: string;
  readonly driver: string;
  readonly cpuGeneration: string;
  readonly sevState: string;
  readonly esMode: string;
  readonly vmmProfile: string;
  readonly maintenance: string;
  readonly connection: string;
  /** The SEV firmware's API version and build from the host record; null when the host has not reported them. */
  readonly firmware: { readonly apiMajor: number; readonly apiMinor: number; readonly build: number } | null;
  readonly pools: { readonly sev: Pool; readonly sevEs: Pool; readonly snp: Pool };
  readonly activeVms: number;
}

export interface Operation {
  readonly id: string;
  readonly kind: string;
  readonly status: string;
  readonly actor: { readonly name: string };
  readonly progress: {
    readonly done: number;
    readonly total: number;
    readonly ok: number;
    readonly failed: number;
  };
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
}

export interface OperationItem {
  readonly target: string;
  readonly outcome: string;
  readonly code: string | null;
  readonly reason: string | null;
  readonly details: Readonly<Record<string, unknown>> | null;
}

export interface OperationAnswer {
  readonly operation: Operation;
  readonly results?: readonly OperationItem[];
}

export interface Protection {
  readonly securityMode: SecurityMode;
  readonly policy: number;
}

export interface PlanItem {
  readonly target: string;
  readonly name: string;
  readonly kind: string;
  readonly outcome: "change" | "unchanged" | "refused";
  readonly action?: string;
  readonly host?: string | null;
  readonly powerState?: string;
  readonly restart?: boolean;
  readonly before?: Protection;
  readonly after?: Protection;
  readonly code?: string;
  readonly reason?: string;
}

export interface PoolImpact {
  readonly hostId: string;
  readonly host: string;
  readonly pool: "sev" | "sev-es" | "sev-snp";
  readonly size: number;
  readonly used: number;
  readonly usedAfter: number;
  readonly vms: number;
  readonly vmsAfter: number;
}

export interface DryRunPlan {
  readonly dryRun: true;
  readonly action: string;
  readonly total: number;
  readonly change: number;
  readonly unchanged: number;
  readonly refused: number;
  readonly restart: number;
  readonly items: readonly PlanItem[];
  readonly capacity: readonly PoolImpact[];
}

export interface AuditRecord {
  readonly seq: number;
  readonly time: string;
  readonly actor: { readonly name: string };
  readonly action: string;
  readonly target: string;
  readonly outcome: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly verified: number;
  readonly lastSeq: number;
  readonly firstBad: { readonly seq: number; readonly problem: string; readonly message: string } | null;
}

export interface HypervisorRegister {
  readonly reg: string;
  readonly guest: string;
  readonly hypervisor: string;
  readonly foundAt: string | null;
  readonly exposedByGuest: boolean;
}

export interface HypervisorViewAnswer {
  readonly vmId: string;
  readonly vm: string;
  readonly mode: SecurityMode;
  readonly generation: string;
  readonly guestOs: string;
  readonly lab: string;
  readonly saveArea: { readonly kind: string; readonly label: string };
  readonly columns: { readonly guest: string; readonly hypervisor: string };
  readonly exits: readonly { kind: string; vmexit: number; registers: readonly HypervisorRegister[] }[];
  readonly ghcb: { readonly exposed: readonly string[] };
  readonly memory: {
    readonly gpa: number;
    readonly hpa: number;
    readonly guest: string;
    readonly hypervisor: string;
    readonly canaries: readonly { value: string; visible: boolean }[];
  };
  readonly summary: {
    readonly registersHeld: number;
    readonly registersVisible: number;
    readonly visibleNotExposed: number;
    readonly memoryCanaries: number;
    readonly memoryCanariesVisible: number;
  };
  /** SEV-SNP only: the hypervisor's replay of the private page, and the RMP's answer. */
  readonly hostWrite?: {
    readonly vmexit: number;
    readonly gpa: number;
    readonly hpa: number;
    readonly refused: boolean;
    readonly unchanged: boolean;
    readonly fault?: { readonly code: string; readonly errorCode: string; readonly message: string };
  };
  readonly verdict: string;
}

export interface LaunchMeasurement {
  readonly vm: string;
  readonly host: string;
  readonly measurement: string;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly build: number;
  readonly policy: number;
  readonly loaderSha256: string;
  readonly attestationState: string;
  readonly securityMode: string;
  readonly vmmProfile: string;
  readonly vcpus: number;
  readonly vcpuType?: string;
  readonly cpuSignature?: { readonly value: number };
  readonly images?: Readonly<Record<string, { readonly sha256: string; readonly name?: string } | undefined>>;
  readonly ownerMeasure: readonly string[];
}
