/**
 * The emulated driver: hypervisor `Host`s (emulated EPYC servers) living in this process, addressed by name. It
 * is the embedded default, and what tests and `serve --demo` run on. The machines are created through a factory
 * so this module depends only on the shape of the hypervisor's `Host` API (`EmulatedMachine`), which `Host`
 * satisfies structurally; `emulated-hosts.ts` supplies the real factory.
 *
 * Several control-plane nodes in one process (tests) may share one `EmulatedDriver`: like real hardware, the
 * hosts are outside the control plane, and every node sees the same machines.
 *
 * A host added with `{ lazy: true }` (what a restart does for every host the inventory lists) is only its
 * options until a call reaches it: an emulated machine seeded by its name is the same machine whenever it is
 * built, and the inventory, not the machine, is the source of truth. So a control plane with 10,000 emulated hosts
 * starts without building 10,000 machines, and only the hosts something touches take memory.
 */
import { CiphervisorError, isCiphervisorError } from "../../errors.ts";
import type { Operation } from "../../hypervisor/operation-rules.ts";
import type {
  HostCapabilities,
  HostPlatform,
  LaunchSpec,
  StartResult,
  VmStatus,
} from "../../hypervisor/types.ts";
import type { Generation } from "../../machine/cpu-models.ts";
import type { HostVmmProfile } from "../../measure/vmsa.ts";
import type { DriverFinding, DriverHost, HostDriver, LaunchSecret, PerformArgs } from "./driver.ts";

/** What it takes to build one emulated host (the hypervisor `Host` constructor's options). */
export interface EmulatedHostOptions {
  readonly name: string;
  readonly generation: Generation;
  /** Seeds the host's identity and keys, so a demo datacenter is the same on every start. */
  readonly seed: string | number;
  /** BIOS `min_sev_asid`: SEV-ES ASIDs are 1..min-1. Default: the CPU table's value. */
  readonly minSevAsid?: number;
  readonly memoryMiB?: number;
  /** How the emulated host's QEMU builds SEV-ES VMSAs (docs/sev-interface.md §8.5). Default `qemu-legacy`. */
  readonly vmmProfile?: HostVmmProfile;
  /** ASIDs 1..N for SEV-SNP under Ciphertext Hiding (Turin and later; Linux 6.18). Default 0: none set apart. */
  readonly ciphertextHidingAsids?: number;
}

/**
 * The synchronous, in-process API of one hypervisor `Host` that this driver uses. Declared with method syntax so
 * that `Host` (whose migrate methods take a `Host`) satisfies it.
 */
export interface EmulatedMachine {
  readonly name: string;
  capabilities(): HostCapabilities;
  /** The platform facts without the certificates (no firmware identity needed). */
  platform(): HostPlatform;
  requirementFindings(spec: LaunchSpec): DriverFinding[];
  define(spec: LaunchSpec): VmStatus;
  undefine(name: string): void;
  start(name: string): StartResult;
  launchMeasurement(name: string): string;
  attestationReport(name: string, reportData: Uint8Array): { report: Uint8Array };
  finishLaunch(name: string, secret?: { header: Uint8Array; payload: Uint8Array }): VmStatus;
  stop(name: string): VmStatus;
  reset(name: string): VmStatus;
  status(name: string): VmStatus;
  list(): VmStatus[];
  perform(name: string, operation: Operation, args?: { snapshot?: string; clone?: string }): VmStatus;
  liveMigrate(name: string, target: EmulatedMachine): VmStatus;
  coldMigrate(name: string, target: EmulatedMachine): VmStatus;
}

export type EmulatedMachineFactory = (options: EmulatedHostOptions) => EmulatedMachine;

/**
 * The GET_ID value (64 bytes) the machine built from `options` will report, computed without building it: lets
 * the emulated KDS find the chip of a host nobody has touched yet (`chipGeneration`).
 */
export type EmulatedChipIdentifier = (options: EmulatedHostOptions) => Uint8Array;

/**
 * Runs `fn` as an asynchronous driver call. The hypervisor's CiphervisorErrors pass through with their codes;
 * anything else is a bug in the emulator, reported as INTERNAL with the host named and no stack.
 */
async function call<T>(address: string, fn: () => T): Promise<T> {
  try {
    return fn();
  } catch (e) {
    if (isCiphervisorError(e)) throw e;
    throw new CiphervisorError("INTERNAL", `emulated host ${address} failed unexpectedly`, { cause: e });
  }
}

class EmulatedHost implements DriverHost {
  readonly address: string;
  readonly options: EmulatedHostOptions;
  readonly #driver: EmulatedDriver;
  readonly #factory: EmulatedMachineFactory;
  #machine: EmulatedMachine | undefined;

  constructor(driver: EmulatedDriver, options: EmulatedHostOptions, factory: EmulatedMachineFactory) {
    this.#driver = driver;
    this.#factory = factory;
    this.options = options;
    this.address = options.name;
  }

  /** The machine, built on first use. */
  get machine(): EmulatedMachine {
    return this.build();
  }

  /** Builds the machine if it does not exist yet; returns it. */
  build(): EmulatedMachine {
    this.#machine ??= this.#factory(this.options);
    return this.#machine;
  }

  /** Whether the machine exists yet (a lazily added host nobody has reached is only its options). */
  get built(): boolean {
    return this.#machine !== undefined;
  }

  capabilities(): Promise<HostCapabilities> {
    return call(this.address, () => this.machine.capabilities());
  }
  requirementFindings(spec: LaunchSpec): Promise<DriverFinding[]> {
    return call(this.address, () => this.machine.requirementFindings(spec));
  }
  define(spec: LaunchSpec): Promise<VmStatus> {
    return call(this.address, () => this.machine.define(spec));
  }
  undefine(name: string): Promise<void> {
    return call(this.address, () => this.machine.undefine(name));
  }
  start(name: string): Promise<StartResult> {
    return call(this.address, () => this.machine.start(name));
  }
  launchMeasurement(name: string): Promise<string> {
    return call(this.address, () => this.machine.launchMeasurement(name));
  }
  attestationReport(name: string, reportData: Uint8Array): Promise<Uint8Array> {
    return call(this.address, () => this.machine.attestationReport(name, reportData).report);
  }
  finishLaunch(name: string, secret?: LaunchSecret): Promise<VmStatus> {
    return call(this.address, () =>
      this.machine.finishLaunch(
        name,
        secret && { header: Uint8Array.from(secret.header), payload: Uint8Array.from(secret.payload) },
      ),
    );
  }
  stop(name: string): Promise<VmStatus> {
    return call(this.address, () => this.machine.stop(name));
  }
  reset(name: string): Promise<VmStatus> {
    return call(this.address, () => this.machine.reset(name));
  }
  async status(name: string): Promise<VmStatus | undefined> {
    try {
      return await call(this.address, () => this.machine.status(name));
    } catch (e) {
      if (isCiphervisorError(e, "NOT_FOUND")) return undefined;
      throw e;
    }
  }
  list(): Promise<VmStatus[]> {
    return call(this.address, () => this.machine.list());
  }
  perform(name: string, operation: Operation, args: PerformArgs = {}): Promise<VmStatus> {
    // Only the naming arguments cross: migration goes through liveMigrate/coldMigrate with a checked target.
    const a = {
      ...(args.snapshot === undefined ? {} : { snapshot: args.snapshot }),
      ...(args.clone === undefined ? {} : { clone: args.clone }),
    };
    return call(this.address, () => this.machine.perform(name, operation, a));
  }
  liveMigrate(name: string, target: DriverHost): Promise<VmStatus> {
    const t = this.#driver.sameDriver(target);
    return call(this.address, () => this.machine.liveMigrate(name, t.machine));
  }
  coldMigrate(name: string, target: DriverHost): Promise<VmStatus> {
    const t = this.#driver.sameDriver(target);
    return call(this.address, () => this.machine.coldMigrate(name, t.machine));
  }
}

/**
 * In-process emulated hosts.
 *
 * @example
 * ```ts
 * const driver = new EmulatedDriver((o) => new Host(o));
 * driver.addHost({ name: "rome-1", generation: "rome", seed: 1 });
 * const host = await driver.connect("rome-1");
 * ```
 */
export class EmulatedDriver implements HostDriver {
  readonly kind = "emulated" as const;
  readonly #factory: EmulatedMachineFactory;
  readonly #identify: EmulatedChipIdentifier | undefined;
  readonly #hosts = new Map<string, EmulatedHost>();
  /** cpu0 id (hex) → generation of every chip read so far, kept after its host is removed (like AMD's records). */
  readonly #chips = new Map<string, Generation>();
  readonly #recorded = new WeakSet<EmulatedHost>();

  /** `identify` lets the KDS find chips of hosts not built yet; without it, such a lookup builds them. */
  constructor(factory: EmulatedMachineFactory, identify?: EmulatedChipIdentifier) {
    this.#factory = factory;
    this.#identify = identify;
  }

  /**
   * Adds an emulated host; CONFLICT when the name is taken. Returns its address (the name). The machine is built
   * now (so bad options fail here), or with `lazy` on first use — for hosts whose options were valid before, such
   * as the inventory's after a restart.
   */
  addHost(options: EmulatedHostOptions, how: { readonly lazy?: boolean } = {}): string {
    if (this.#hosts.has(options.name)) {
      throw new CiphervisorError("CONFLICT", `an emulated host named '${options.name}' already exists`);
    }
    const host = new EmulatedHost(this, options, this.#factory);
    if (how.lazy !== true) host.build();
    this.#hosts.set(host.address, host);
    return host.address;
  }

  /**
   * The platform facts of a host (what registration stores), NOT_FOUND when there is none. A host not built yet
   * stays unbuilt: the facts come from a machine built for the question and dropped, which is the same machine
   * the host would become (same options, same seed).
   */
  platform(address: string): HostPlatform {
    const h = this.#hosts.get(address);
    if (!h) throw new CiphervisorError("NOT_FOUND", `no emulated host named '${address}'`);
    return h.built ? h.machine.platform() : this.#factory(h.options).platform();
  }

  /** How many of the hosts have their machine built (the rest are waiting for first use). */
  builtCount(): number {
    let n = 0;
    for (const h of this.#hosts.values()) if (h.built) n++;
    return n;
  }

  /** True when an emulated host with this address exists. */
  has(address: string): boolean {
    return this.#hosts.has(address);
  }

  /** Forgets a host (after the inventory removed it); its VMs must be gone. */
  removeHost(address: string): void {
    const h = this.#hosts.get(address);
    if (h) this.#record(h);
    this.#hosts.delete(address);
  }

  /**
   * The generation of the emulated chip whose GET_ID value is `chipId`, if one of this driver's machines has (or
   * had) it: the emulated manufacturer's records, from which its KDS serves CEKs (sev/manufacturer/emulated-kds.ts).
   */
  chipGeneration(chipId: Uint8Array): Generation | undefined {
    const hex = Buffer.from(chipId).toString("hex");
    if (!this.#chips.has(hex)) for (const h of this.#hosts.values()) this.#record(h);
    return this.#chips.get(hex);
  }

  #record(h: EmulatedHost): void {
    if (this.#recorded.has(h)) return;
    if (!h.built && this.#identify !== undefined) {
      this.#chip(Buffer.from(this.#identify(h.options)).toString("hex"), h.options.generation);
      this.#recorded.add(h);
      return;
    }
    try {
      const caps = h.machine.capabilities();
      this.#chip(caps.cpu0Id.toLowerCase(), caps.generation);
      this.#recorded.add(h);
    } catch {
      // A machine that cannot report now is read again on the next lookup.
    }
  }

  /** Records a chip, and a Turin chip under its 8-byte hwid too (the id its VCEK requests carry). */
  #chip(hex: string, generation: Generation): void {
    this.#chips.set(hex, generation);
    if (generation === "turin") this.#chips.set(hex.slice(0, 16), generation);
  }

  /** Addresses of every emulated host. */
  addresses(): string[] {
    return [...this.#hosts.keys()];
  }

  async connect(address: string): Promise<DriverHost> {
    const h = this.#hosts.get(address);
    if (!h) throw new CiphervisorError("NOT_FOUND", `no emulated host named '${address}'`);
    return h;
  }

  /** The emulated host behind `target`; INVALID_INPUT for a host of another driver (no cross-driver moves). */
  sameDriver(target: DriverHost): EmulatedHost {
    const t = this.#hosts.get(target.address);
    if (!t || t !== target) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `host ${target.address} is not an emulated host of this driver`,
      );
    }
    return t;
  }
}
