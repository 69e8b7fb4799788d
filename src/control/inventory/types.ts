/**
 * The inventory's objects as the rest of the control plane sees them: clusters, hosts, VMs, operations (tasks) and
 * their per-item results, API tokens. Enumerations are `as const` tables so validation, the API schemas and the docs
 * all read the same list.
 */
import type { DeviceKind } from "../../hypervisor/types.ts";
import { GENERATIONS, type Generation } from "../../machine/cpu-models.ts";
import { HOST_VMM_PROFILES, type HostVmmProfile } from "../../measure/vmsa.ts";
import { POWER_STATES, type PowerState, SECURITY_MODES, type SecurityMode } from "../../vocabulary.ts";
import type { JsonObject } from "../json.ts";

/** A VM's mode and power state: the project's one vocabulary (`src/vocabulary.ts`). */
export { POWER_STATES, type PowerState, SECURITY_MODES, type SecurityMode };

/**
 * Where a VM stands in the guest-owner attestation flow (docs/product-behaviour.md §7): the control plane only relays
 * raw values, so there is deliberately no "verified" state.
 */
export const ATTESTATION_STATES = [
  "none",
  "awaiting-session",
  "session-set",
  "measured",
  "secret-injected",
  /** LAUNCH_FINISH ran without a secret: the guest runs, the owner injected nothing. */
  "finished",
  "failed",
] as const;
export type AttestationState = (typeof ATTESTATION_STATES)[number];

/** The host's SEV platform state as vSphere's `HostSevInfo.sevState` names it. */
export const HOST_SEV_STATES = ["uninitialized", "initialized", "working"] as const;
export type HostSevState = (typeof HOST_SEV_STATES)[number];

/** What the host's low ASID pool serves: SEV-ES or SEV-SNP guests, never both (CVE-2025-48514). */
export const HOST_ES_MODES = ["sev-es", "snp"] as const;
export type HostEsMode = (typeof HOST_ES_MODES)[number];

export const HOST_MAINTENANCE_STATES = ["none", "entering", "in-maintenance"] as const;
export type HostMaintenanceState = (typeof HOST_MAINTENANCE_STATES)[number];

export const HOST_CONNECTION_STATES = ["connected", "disconnected"] as const;
export type HostConnectionState = (typeof HOST_CONNECTION_STATES)[number];

export const HOST_DRIVERS = ["emulated", "libvirt"] as const;
export type HostDriver = (typeof HOST_DRIVERS)[number];

/**
 * A host's CPU generation as the control plane records it: an EPYC generation (`machine/cpu-models.ts`), or
 * `unknown` for a host that reports no SEV — a libvirt host on an Intel CPU, with SEV off in the BIOS or KVM, or
 * libvirt's test driver. Such a host has no SEV and no SEV-ES key slots and runs ordinary VMs only. The emulated
 * hosts are always a real generation.
 */
export const UNKNOWN_GENERATION = "unknown";
export type HostGeneration = Generation | typeof UNKNOWN_GENERATION;
export const HOST_GENERATIONS: readonly HostGeneration[] = [...GENERATIONS, UNKNOWN_GENERATION];

/**
 * How a host's QEMU creates SEV/SEV-ES VMs, i.e. which VMSAs its SEV-ES launches measure (docs/sev-interface.md
 * §8.5): `qemu-legacy` (QEMU's default, and what a database from before this column reads as) or `qemu` (INIT2).
 */
export { HOST_VMM_PROFILES, type HostVmmProfile };

/**
 * Operation lifecycle. `pending` waits in the queue; `running` is claimed by exactly one worker; the three final
 * states depend on the per-item outcomes.
 */
export const OPERATION_STATUSES = [
  "pending",
  "running",
  "succeeded",
  "partially-failed",
  "failed",
  "cancelled",
] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];
export const FINAL_OPERATION_STATUSES: readonly OperationStatus[] = [
  "succeeded",
  "partially-failed",
  "failed",
  "cancelled",
];

export const ITEM_OUTCOMES = ["ok", "failed"] as const;
export type ItemOutcome = (typeof ITEM_OUTCOMES)[number];

/** Who did something: a token's id and name (never the token itself), or the control plane (`id: null`). */
export interface Actor {
  readonly id: string | null;
  readonly name: string;
}

/** A page request: at most `limit` items after the opaque `cursor` of a previous page. */
export interface PageRequest {
  readonly limit?: number;
  readonly cursor?: string | null;
}

/**
 * The columns a VM list can be sorted by (the dashboard's columns): `host` is the host's id on the VM row, not its
 * name (a name order would join hosts, and no index could then page it), `mode` the security mode.
 */
export const VM_SORT_KEYS = ["name", "host", "power", "mode", "guestOs", "policy"] as const;
export type VmSortKey = (typeof VM_SORT_KEYS)[number];

/**
 * The orders a VM list can take: by id (the default: creation order), or by a sort key ascending (`host`) or
 * descending (`-host`). Every order is a keyset on (column, id) with an index on (column, id), so a page over
 * 200,000 VMs stays an index range scan whatever the order; ties on the column are broken by id.
 */
export type VmOrder = "id" | VmSortKey | `-${VmSortKey}`;
export const VM_ORDERS: readonly VmOrder[] = ["id", ...VM_SORT_KEYS.flatMap((k) => [k, `-${k}` as const])];

/** One page of a list, in stable order; `nextCursor` is null on the last page. */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

export interface Cluster {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Incremented on every change; pass it back as `expectedVersion` for optimistic concurrency. */
  readonly version: number;
}

export interface NewCluster {
  readonly id?: string;
  readonly name: string;
  readonly description?: string;
}

export interface ClusterPatch {
  readonly name?: string;
  readonly description?: string;
}

export interface Host {
  readonly id: string;
  readonly name: string;
  readonly clusterId: string | null;
  readonly driver: HostDriver;
  /** How the driver reaches the host (an emulated host name, a libvirt URI). Never holds credentials. */
  readonly address: string;
  readonly cpuGeneration: HostGeneration;
  readonly sevState: HostSevState;
  readonly esMode: HostEsMode;
  /** The host's VMM profile, as its driver reported it at registration. */
  readonly vmmProfile: HostVmmProfile;
  /** Size of the SEV-only ASID pool, read from the platform. */
  readonly sevAsids: number;
  /**
   * Size of the low ASID range 1..min_sev_asid-1 that SEV-ES and SEV-SNP guests draw from, read from the platform
   * (0 when the BIOS split leaves none).
   */
  readonly esAsids: number;
  /**
   * ASIDs 1..snpAsids of that range set apart for SEV-SNP under Ciphertext Hiding (Linux 6.18): then SEV-ES keeps
   * snpAsids+1..esAsids and both modes run on the host. 0: the whole range serves the one mode `esMode` names.
   */
  readonly snpAsids: number;
  readonly maintenance: HostMaintenanceState;
  readonly connection: HostConnectionState;
  /**
   * The SEV firmware's API version and build, as the host last reported it (PLATFORM_STATUS, libvirt's
   * domcapabilities). Kept on the record so that whoever may read hosts sees it without `attestation.read`; null
   * for a host registered before migration 0004 and not reached since, or one without SEV.
   */
  readonly firmware: HostFirmware | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly version: number;
}

export interface NewHost {
  readonly id?: string;
  readonly name: string;
  readonly clusterId?: string | null;
  readonly driver?: HostDriver;
  readonly address?: string;
  readonly cpuGeneration: HostGeneration;
  readonly sevState?: HostSevState;
  readonly esMode?: HostEsMode;
  /** Default `qemu-legacy`. */
  readonly vmmProfile?: HostVmmProfile;
  readonly sevAsids: number;
  readonly esAsids: number;
  /** Default 0 (no Ciphertext Hiding split). */
  readonly snpAsids?: number;
  readonly maintenance?: HostMaintenanceState;
  readonly connection?: HostConnectionState;
  /** Default null (not reported). */
  readonly firmware?: HostFirmware | null;
}

/** A host's SEV firmware version: PLATFORM_STATUS's API_MAJOR, API_MINOR and BUILD (one byte each). */
export interface HostFirmware {
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly build: number;
}

export type HostPatch = Partial<Omit<NewHost, "id">>;

export interface HostFilter {
  readonly clusterId?: string;
  readonly cpuGeneration?: HostGeneration;
  readonly maintenance?: HostMaintenanceState;
}

/** Virtual devices a VM can have (the hypervisor's `DeviceKind`); `pci-passthrough` cannot run encrypted. */
export const DEVICE_KINDS = [
  "virtio-disk",
  "virtio-net",
  "sata-disk",
  "usb-controller",
  "pci-passthrough",
] as const satisfies readonly DeviceKind[];

/** One virtual device of a VM. */
export type VmDevice = {
  readonly kind: DeviceKind;
  /** Informational (a disk size, a host PCI address); never a secret. */
  readonly detail?: string;
};

/** What a VM is made of; the compatibility checks read it. Stored as canonical JSON, so it can grow. */
export type VmSpec = {
  readonly vcpus: number;
  readonly memoryMiB: number;
  /** A guest OS profile name (guest/ owns the list). */
  readonly guestOs: string;
  readonly firmware: "efi" | "bios";
  /** Virtual hardware version, vSphere-style. */
  readonly hardwareVersion: number;
  readonly machine?: "q35" | "pc";
  readonly secureBoot?: boolean;
  /** Virtual devices (default: none beyond the boot disk the emulator always has). */
  readonly devices?: VmDevice[];
  /** Start paused after LAUNCH_MEASURE so the guest owner can attest (encrypted VMs only). */
  readonly attestation?: boolean;
  /** What the VM boots from the image catalog, when not the built-in emulated UEFI alone. */
  readonly boot?: VmBoot;
  /** SEV-SNP launch options, with the names of QEMU's `sev-snp-guest` properties; only for `sev-snp` VMs. */
  readonly snp?: VmSnpOptions;
  /**
   * The guest owner's session for the next launch (LAUNCH_START), base64. Set only through the attestation API;
   * used once, while `attestationState` is `session-set`. Never part of an API response (not in the schema).
   */
  readonly launchSession?: LaunchSessionFiles;
};

/**
 * A VM's boot images, by catalog name (docs/sev-interface.md §8.1, §8.3): a firmware image instead of the built-in
 * UEFI, and for a measured direct boot a kernel, an optional initrd and a command line, which QEMU's kernel-hashes
 * table binds into the launch digest. The catalog refuses to delete an image a VM names here.
 */
export type VmBoot = {
  readonly firmwareImage?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  /** The kernel command line (measured with its NUL); only with `kernel`. */
  readonly cmdline?: string;
};

/**
 * What SNP_LAUNCH_FINISH takes from the host for a VM (SNP ABI 56860, SNP_LAUNCH_FINISH), as QEMU's `sev-snp-guest`
 * object takes them: base64 text. `hostData` (host-data, 32 bytes) is carried into every attestation report as
 * HOST_DATA; `idBlock` (id-block, 96 bytes) with `idAuth` (id-auth, 4096 bytes) is the guest owner's signed
 * statement of the expected launch digest and policy — the launch fails if either differs — and its key's digest
 * is reported as ID_KEY_DIGEST; `authorKeyEnabled` (author-key-enabled) says `idAuth` also carries the author key.
 */
export type VmSnpOptions = {
  readonly hostData?: string;
  readonly idBlock?: string;
  readonly idAuth?: string;
  readonly authorKeyEnabled?: boolean;
};

/** A guest owner's launch session as sevctl writes it: the GODH certificate (0x824 bytes), the session blob (0x80). */
export type LaunchSessionFiles = {
  readonly godhCert: string;
  readonly session: string;
};

export interface Vm {
  readonly id: string;
  readonly name: string;
  readonly clusterId: string | null;
  /** The host the VM is placed on, or null when unplaced. */
  readonly hostId: string | null;
  readonly spec: VmSpec;
  readonly powerState: PowerState;
  readonly securityMode: SecurityMode;
  /** The 32-bit SEV guest policy bound at launch (0 for ordinary VMs). */
  readonly policy: number;
  readonly attestationState: AttestationState;
  /** Selector labels (key → value). */
  readonly labels: Readonly<Record<string, string>>;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly version: number;
}

/**
 * A VM as stored, its spec and labels still the canonical JSON text they were written as (validated then): what a
 * list route serializes without parsing and re-validating every row (`VmStore.listStored`).
 */
export interface StoredVm extends Omit<Vm, "spec" | "labels"> {
  readonly specJson: string;
  readonly labelsJson: string;
}

export interface NewVm {
  readonly id?: string;
  readonly name: string;
  readonly clusterId?: string | null;
  readonly hostId?: string | null;
  readonly spec: VmSpec;
  readonly powerState?: PowerState;
  readonly securityMode?: SecurityMode;
  readonly policy?: number;
  readonly attestationState?: AttestationState;
  readonly labels?: Readonly<Record<string, string>>;
}

export type VmPatch = Partial<Omit<NewVm, "id">>;

export interface VmFilter {
  readonly ids?: readonly string[];
  readonly clusterId?: string;
  /** A host id, or null for unplaced VMs. */
  readonly hostId?: string | null;
  readonly powerState?: PowerState;
  readonly securityMode?: SecurityMode;
  readonly namePrefix?: string;
  /** Every given label must match exactly. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** How many placed VMs of one security mode and power state a host has (`VmStore.usage`). */
export interface VmUsage {
  readonly hostId: string;
  readonly securityMode: SecurityMode;
  readonly powerState: PowerState;
  readonly count: number;
}

/** One VM change of a bulk update. */
export interface VmUpdate {
  readonly id: string;
  readonly patch: VmPatch;
}

export type OperationError = {
  readonly code: string;
  readonly message: string;
};

export interface Operation {
  readonly id: string;
  /** What the operation does, e.g. `vm.bulk-update`, `host.enter-maintenance`. */
  readonly kind: string;
  readonly status: OperationStatus;
  readonly idempotencyKey: string | null;
  readonly actor: Actor;
  readonly params: JsonObject;
  /** Items to process (VMs, hosts); `done = okCount + failedCount`. */
  readonly total: number;
  readonly done: number;
  readonly okCount: number;
  readonly failedCount: number;
  readonly error: OperationError | null;
  /** The worker that claimed it, while running or after it finished. */
  readonly claimedBy: string | null;
  /** Until when the claim holds; an expired claim may be taken over (the worker died). */
  readonly leaseUntil: string | null;
  readonly attempts: number;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly updatedAt: string;
}

export interface NewOperation {
  readonly kind: string;
  readonly actor: Actor;
  readonly params?: JsonObject;
  readonly total?: number;
  /** Same key → same operation (the `Idempotency-Key` header). Reusing a key for another request is a CONFLICT. */
  readonly idempotencyKey?: string | null;
}

export interface CreatedOperation {
  readonly operation: Operation;
  /** False when the idempotency key matched an existing operation, which is returned unchanged. */
  readonly created: boolean;
}

export interface OperationFilter {
  readonly status?: OperationStatus;
  readonly kind?: string;
}

export interface ClaimOptions {
  /** A stable name for the claiming worker (node id + process), stored as `claimedBy`. */
  readonly worker: string;
  /** How long the claim holds without renewal. */
  readonly leaseMs: number;
  /** Only claim operations of these kinds. */
  readonly kinds?: readonly string[];
  /**
   * Never these operations: the ones the claimer still runs. A node whose event loop stalled past its own lease
   * must not claim its running operation a second time (it renews the lease instead, or loses it to another node).
   */
  readonly exclude?: readonly string[];
}

/** The result of processing one item (e.g. one VM) of an operation. */
export interface OperationItemResult {
  readonly target: string;
  readonly outcome: ItemOutcome;
  /** A stable error code when failed (an ErrorCode or an operation-table code). */
  readonly code?: string | null;
  readonly reason?: string | null;
  readonly details?: JsonObject | null;
}

export interface OperationItem extends OperationItemResult {
  readonly operationId: string;
  readonly code: string | null;
  readonly reason: string | null;
  readonly details: JsonObject | null;
  readonly recordedAt: string;
}

export interface FinishOptions {
  /** Defaults from the item counts: no failure → succeeded, no success → failed, else partially-failed. */
  readonly status?: Exclude<OperationStatus, "pending" | "running">;
  readonly error?: OperationError | null;
  /** When given, only this worker's claim may finish the operation. */
  readonly worker?: string;
}

/** A stored API token. The secret itself is never stored or returned; only its SHA-256 is kept. */
export interface TokenRecord {
  readonly id: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly createdAt: string;
  readonly createdBy: string | null;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly lastUsedAt: string | null;
}

export interface NewTokenRow {
  readonly id?: string;
  readonly name: string;
  /** Lower-case hex SHA-256 of the secret. */
  readonly hash: string;
  readonly roles: readonly string[];
  readonly createdBy?: string | null;
  readonly expiresAt?: string | null;
}

/** What an image in the catalog is: a UEFI firmware (OVMF) image, or a direct-boot kernel or initrd. */
export const IMAGE_KINDS = ["firmware", "kernel", "initrd"] as const;
export type ImageKind = (typeof IMAGE_KINDS)[number];

/**
 * What a firmware image's OVMF footer table declares (docs/sev-interface.md §8.4), read once at upload so the
 * checks before a launch need not read the image: an SEV-ES VM needs the AP reset block, a measured direct boot the
 * kernel-hashes area.
 */
export type FirmwareFacts = {
  readonly footer: boolean;
  /** The SEV-ES AP reset EIP, or null without a reset block. */
  readonly sevEsResetEip: number | null;
  readonly secretArea: boolean;
  readonly kernelHashesArea: boolean;
};

/** One image of the catalog. Its bytes are stored once per SHA-256 (content-addressed) outside the database. */
export interface Image {
  readonly id: string;
  readonly name: string;
  readonly kind: ImageKind;
  /** Lower-case hex SHA-256 of the bytes: the blob's address, and what a launch reports as measured. */
  readonly sha256: string;
  readonly size: number;
  /** Firmware images only. */
  readonly firmware: FirmwareFacts | null;
  readonly createdAt: string;
  readonly createdBy: string | null;
}

export interface NewImage {
  readonly id?: string;
  readonly name: string;
  readonly kind: ImageKind;
  readonly sha256: string;
  readonly size: number;
  readonly firmware?: FirmwareFacts | null;
  readonly createdBy?: string | null;
}
