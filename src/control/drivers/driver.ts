/**
 * How the control plane reaches hosts: one interface, one implementation per kind of host. The emulated driver
 * runs hypervisor `Host`s in-process; a libvirt driver (later) will run `virsh` against a URI. Everything is
 * asynchronous because a real host is another machine.
 *
 * The control plane keeps the inventory as the source of truth and treats a host as the place a VM is *defined*
 * while it is placed there. Every call names a VM by its inventory id (unique, stable across renames, a valid
 * libvirt domain name), never by its display name.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Operation } from "../../hypervisor/operation-rules.ts";
import type { HostCapabilities, LaunchSpec, StartResult, VmStatus } from "../../hypervisor/types.ts";
import type { HostDriver as HostDriverKind, HostGeneration } from "../inventory/types.ts";

/**
 * A host's SEV platform facts as its driver reports them: the hypervisor's `HostCapabilities`, except that the
 * generation is `unknown` when the host reports no SEV (a libvirt host on Intel, with SEV off, or libvirt's test
 * driver; then `sevSupported` is false and both pools are empty). The emulated hosts always report a real one.
 */
export type DriverCapabilities = Omit<HostCapabilities, "generation"> & { generation: HostGeneration };

/** A requirement check that failed, with the hypervisor's stable code (`CPU_GENERATION`, `EFI_REQUIRED`, …). */
export interface DriverFinding {
  readonly code: string;
  readonly message: string;
}

/** Arguments of `DriverHost.perform` for the operations that create something. */
export interface PerformArgs {
  readonly snapshot?: string;
  readonly clone?: string;
}

/** A launch secret packet (LAUNCH_SECRET): the packet header and the encrypted payload. Never logged. */
export interface LaunchSecret {
  readonly header: Uint8Array;
  readonly payload: Uint8Array;
}

/**
 * One host as a driver reaches it. Errors are `CiphervisorError`s with the hypervisor's codes: NOT_FOUND (no such
 * VM here), CONFLICT (wrong power state, duplicate), REQUIREMENT_FAILED / ASID_POOL_EXHAUSTED (checked before any
 * firmware call), the operation table's refusal codes, IO (the host cannot be reached).
 */
export interface DriverHost {
  /** How the driver addresses the host (an emulated host's name, a libvirt URI). Never holds credentials. */
  readonly address: string;
  /** SEV platform facts as `virsh domcapabilities` / vSphere's `HostSevInfo` report them, with live pool usage. */
  capabilities(): Promise<DriverCapabilities>;
  /** The hypervisor's own checks for starting `spec` here; empty when it may start. Touches no firmware. */
  requirementFindings(spec: LaunchSpec): Promise<DriverFinding[]>;
  /** Defines a VM (powered off). `spec.name` is the inventory id. */
  define(spec: LaunchSpec): Promise<VmStatus>;
  /** Removes a powered-off VM's definition. */
  undefine(name: string): Promise<void>;
  start(name: string): Promise<StartResult>;
  /** The paused launch's MEASURE ‖ MNONCE, base64 (`virsh domlaunchsecinfo`); CONFLICT when not paused for it. */
  launchMeasurement(name: string): Promise<string>;
  /**
   * A running SEV-SNP guest's signed attestation report with the caller's 64-byte REPORT_DATA. The host cannot ask
   * the firmware for it: it asks the guest's agent, which sends MSG_REPORT_REQ sealed with its VMPCK (SNP ABI 56860
   * section 7.3). CONFLICT for any other VM.
   */
  attestationReport(name: string, reportData: Uint8Array): Promise<Uint8Array>;
  /** Ends an attested launch (LAUNCH_SECRET if given, then LAUNCH_FINISH) and runs the guest. */
  finishLaunch(name: string, secret?: LaunchSecret): Promise<VmStatus>;
  /** Powers off; for an encrypted VM DEACTIVATE → WBINVD → DF_FLUSH → DECOMMISSION, and its ASID is free again. */
  stop(name: string): Promise<VmStatus>;
  /** Restarts; an SEV-ES guest cannot be reset in place, so that is a full relaunch. */
  reset(name: string): Promise<VmStatus>;
  /** The VM's state on this host, or undefined when it is not defined here. */
  status(name: string): Promise<VmStatus | undefined>;
  list(): Promise<VmStatus[]>;
  /**
   * An operation of the operation table (snapshot, suspend, hot-add, clone, …), enforced by the host as well.
   * `args.snapshot` names a snapshot; `args.clone` is the clone's name (an inventory id), defined on this host.
   */
  perform(name: string, operation: Operation, args?: PerformArgs): Promise<VmStatus>;
  /** Live migration to `target` (same driver); the host refuses it for SEV and SEV-ES VMs. */
  liveMigrate(name: string, target: DriverHost): Promise<VmStatus>;
  /** Moves a powered-off VM's definition to `target` (same driver); it launches afresh there. */
  coldMigrate(name: string, target: DriverHost): Promise<VmStatus>;
}

/** A kind of host: connects to hosts by address. */
export interface HostDriver {
  readonly kind: HostDriverKind;
  /** The host at `address`; NOT_FOUND when there is none, IO when it cannot be reached. */
  connect(address: string): Promise<DriverHost>;
}

/**
 * The drivers a control plane knows, by kind. Hosts in the inventory name their driver and address; this finds
 * the one to use.
 *
 * @example
 * ```ts
 * const drivers = new DriverRegistry([new EmulatedDriver(createHost)]);
 * const host = await drivers.connect("emulated", "rome-1");
 * ```
 */
export class DriverRegistry {
  readonly #drivers = new Map<HostDriverKind, HostDriver>();

  constructor(drivers: readonly HostDriver[] = []) {
    for (const d of drivers) this.register(d);
  }

  register(driver: HostDriver): void {
    if (this.#drivers.has(driver.kind)) {
      throw new CiphervisorError("CONFLICT", `a ${driver.kind} driver is already registered`);
    }
    this.#drivers.set(driver.kind, driver);
  }

  /** The driver of `kind`; INVALID_INPUT when this control plane has none. */
  get(kind: HostDriverKind): HostDriver {
    const d = this.#drivers.get(kind);
    if (!d) {
      throw new CiphervisorError("INVALID_INPUT", `this control plane has no ${kind} host driver`, {
        details: { field: "driver" },
      });
    }
    return d;
  }

  connect(kind: HostDriverKind, address: string): Promise<DriverHost> {
    return this.get(kind).connect(address);
  }
}
