/**
 * Host registration: the driver reports the host's SEV platform (CPU generation, SEV state, the ES/SEV ASID split
 * read from the platform — never configured by hand, docs/product-behaviour.md §1), and the inventory stores it with
 * the audit record. For the emulated driver, registering can also build the emulated machine.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Generation } from "../../machine/cpu-models.ts";
import type { HostVmmProfile } from "../../measure/vmsa.ts";
import { viewsOf } from "../capacity.ts";
import { poolReports } from "../compat.ts";
import type { DriverCapabilities } from "../drivers/driver.ts";
import { EmulatedDriver, type EmulatedHostOptions } from "../drivers/emulated.ts";
import type {
  Actor,
  Host,
  HostDriver as HostDriverKind,
  HostEsMode,
  HostFirmware,
  NewHost,
} from "../inventory/types.ts";
import { type ControlContext, getHost } from "./context.ts";

export interface RegisterHostRequest {
  readonly name: string;
  readonly driver?: HostDriverKind;
  /** How the driver reaches the host; default: the name (emulated hosts are addressed by name). */
  readonly address?: string;
  readonly clusterId?: string | null;
  /** Emulated driver only: build the emulated machine with these settings when it does not exist yet. */
  readonly emulated?: {
    readonly generation: Generation;
    readonly seed?: string | number;
    readonly minSevAsid?: number;
    readonly memoryMiB?: number;
    /** How its QEMU builds SEV-ES VMSAs: `qemu-legacy` (default) or `qemu` (KVM_SEV_INIT2). */
    readonly vmmProfile?: HostVmmProfile;
    /** ASIDs 1..N set apart for SEV-SNP under Ciphertext Hiding (Turin and later). */
    readonly ciphertextHidingAsids?: number;
  };
  /**
   * Which mode the host's low ASID range serves when Ciphertext Hiding does not split it: `sev-es` (default) or
   * `snp` (an SNP host: SEV-ES launches refused, CVE-2025-48514).
   */
  readonly esMode?: HostEsMode;
}

/**
 * The inventory's record of a host from what its driver reports. A host that reports no SEV is recorded with the
 * generation `unknown` and empty SEV and SEV-ES pools: it takes ordinary VMs only.
 */
export function hostFromCapabilities(
  req: Pick<RegisterHostRequest, "name" | "clusterId" | "esMode">,
  driver: HostDriverKind,
  address: string,
  caps: Pick<
    DriverCapabilities,
    "generation" | "sevState" | "vmmProfile" | "pools" | "sevSupported" | "firmware" | "ciphertextHidingAsids"
  >,
): NewHost {
  return {
    name: req.name,
    clusterId: req.clusterId ?? null,
    driver,
    address,
    cpuGeneration: caps.generation,
    sevState: caps.sevState,
    // The low pool serves SEV-ES guests unless the host is registered as an SNP host.
    esMode: req.esMode ?? "sev-es",
    vmmProfile: caps.vmmProfile,
    sevAsids: caps.pools.sev.size,
    // The whole low range 1..min_sev_asid-1; Ciphertext Hiding's SNP share of it is `snpAsids`.
    esAsids: caps.pools.sevEs.size + caps.ciphertextHidingAsids,
    snpAsids: caps.ciphertextHidingAsids,
    firmware: hostFirmware(caps),
  };
}

/**
 * The firmware version to record from what a driver reports: PLATFORM_STATUS's, or null for a host without SEV
 * (it has no SEV firmware; libvirt then reports zeros).
 */
export function hostFirmware(
  caps: Pick<DriverCapabilities, "sevSupported" | "firmware">,
): HostFirmware | null {
  const f = caps.firmware;
  return caps.sevSupported ? { apiMajor: f.apiMajor, apiMinor: f.apiMinor, build: f.build } : null;
}

/** Whether the inventory's firmware version of `host` differs from what its driver reports now. */
export function firmwareChanged(
  host: Host,
  caps: Pick<DriverCapabilities, "sevSupported" | "firmware">,
): boolean {
  const now = hostFirmware(caps);
  const was = host.firmware;
  return now?.apiMajor !== was?.apiMajor || now?.apiMinor !== was?.apiMinor || now?.build !== was?.build;
}

/**
 * Registers a host, audited in the same transaction. CONFLICT when the name is taken; NOT_FOUND when the driver
 * has no such host (and `emulated` was not given to build one).
 *
 * @example
 * ```ts
 * await registerHost(c, actor, { name: "rome-2", emulated: { generation: "rome", minSevAsid: 5 } });
 * ```
 */
export async function registerHost(c: ControlContext, actor: Actor, req: RegisterHostRequest): Promise<Host> {
  const kind = req.driver ?? "emulated";
  const address = req.address ?? req.name;
  checkRegisterDriver(c, req);
  await checkHostName(c, req.name);
  const driver = c.drivers.get(kind);
  let built = false;
  if (req.emulated !== undefined && driver instanceof EmulatedDriver) {
    if (!driver.has(address)) {
      const options: EmulatedHostOptions = {
        name: address,
        generation: req.emulated.generation,
        seed: req.emulated.seed ?? address,
        ...(req.emulated.minSevAsid === undefined ? {} : { minSevAsid: req.emulated.minSevAsid }),
        ...(req.emulated.memoryMiB === undefined ? {} : { memoryMiB: req.emulated.memoryMiB }),
        ...(req.emulated.vmmProfile === undefined ? {} : { vmmProfile: req.emulated.vmmProfile }),
        ...(req.emulated.ciphertextHidingAsids === undefined
          ? {}
          : { ciphertextHidingAsids: req.emulated.ciphertextHidingAsids }),
      };
      driver.addHost(options);
      built = true;
    }
  }
  try {
    const caps = await (await driver.connect(address)).capabilities();
    return await c.inventory.transaction(async (tx) => {
      const host = await tx.hosts.create(hostFromCapabilities(req, kind, address, caps));
      await tx.audit.append({
        actor,
        action: "host.register",
        target: host.id,
        outcome: "ok",
        details: {
          name: host.name,
          driver: kind,
          address,
          cpuGeneration: host.cpuGeneration,
          vmmProfile: host.vmmProfile,
          sevAsids: host.sevAsids,
          esAsids: host.esAsids,
        },
      });
      return host;
    });
  } catch (e) {
    if (built && driver instanceof EmulatedDriver) driver.removeHost(address);
    throw e;
  }
}

/** One host of `registerEmulatedHosts`: a name and the settings of its emulated machine. */
export interface EmulatedHostRequest {
  readonly name: string;
  readonly clusterId?: string | null;
  readonly generation: Generation;
  readonly seed?: string | number;
  readonly minSevAsid?: number;
  readonly vmmProfile?: HostVmmProfile;
}

/**
 * Registers many new emulated hosts in one transaction, each with its `host.register` audit record: a
 * benchmark fleet of 10,000 hosts in seconds. The machines are added lazily (built on first use) and the stored
 * facts come from `EmulatedDriver.platform`, so no firmware identity is generated for a host nobody uses. All or
 * nothing: CONFLICT (a name taken) leaves neither rows nor machines behind.
 *
 * @example
 * ```ts
 * await registerEmulatedHosts(c, actor, [{ name: "rome-0001", generation: "rome" }]);
 * ```
 */
export async function registerEmulatedHosts(
  c: ControlContext,
  actor: Actor,
  reqs: readonly EmulatedHostRequest[],
): Promise<Host[]> {
  const driver = c.drivers.get("emulated");
  if (!(driver instanceof EmulatedDriver)) {
    throw new CiphervisorError("INVALID_INPUT", "emulated settings need the emulated driver", {
      details: { field: "emulated" },
    });
  }
  const added: string[] = [];
  try {
    const records = reqs.map((req) => {
      const address = driver.addHost(
        {
          name: req.name,
          generation: req.generation,
          seed: req.seed ?? req.name,
          ...(req.minSevAsid === undefined ? {} : { minSevAsid: req.minSevAsid }),
          ...(req.vmmProfile === undefined ? {} : { vmmProfile: req.vmmProfile }),
        },
        { lazy: true },
      );
      added.push(address);
      return hostFromCapabilities(req, "emulated", address, driver.platform(address));
    });
    return await c.inventory.transaction(async (tx) => {
      const hosts: Host[] = [];
      for (const r of records) hosts.push(await tx.hosts.create(r));
      await tx.audit.append(
        hosts.map((host) => ({
          actor,
          action: "host.register",
          target: host.id,
          outcome: "ok" as const,
          details: {
            name: host.name,
            driver: "emulated",
            address: host.address,
            cpuGeneration: host.cpuGeneration,
            vmmProfile: host.vmmProfile,
            sevAsids: host.sevAsids,
            esAsids: host.esAsids,
          },
        })),
      );
      return hosts;
    });
  } catch (e) {
    for (const address of added) driver.removeHost(address);
    throw e;
  }
}

/** CONFLICT while VMs are registered on the host (it can only be removed empty). */
export async function checkRemoveHost(c: ControlContext, host: Host): Promise<void> {
  const placed = await c.inventory.vms.count({ hostId: host.id });
  if (placed > 0) {
    throw new CiphervisorError(
      "CONFLICT",
      `host ${host.name} still has ${placed} VM(s) placed on it; migrate or delete them first`,
      { details: { host: host.id, vms: placed } },
    );
  }
}

/** A register request's driver-side checks: the emulated settings need the emulated driver. */
export function checkRegisterDriver(c: ControlContext, req: RegisterHostRequest): void {
  const driver = c.drivers.get(req.driver ?? "emulated");
  if (req.emulated !== undefined && !(driver instanceof EmulatedDriver)) {
    throw new CiphervisorError("INVALID_INPUT", "emulated settings need the emulated driver", {
      details: { field: "emulated" },
    });
  }
}

/** CONFLICT when a host of that name is registered. */
export async function checkHostName(c: ControlContext, name: string): Promise<void> {
  if (await c.inventory.hosts.getByName(name)) {
    throw new CiphervisorError("CONFLICT", `a host named '${name}' already exists`, {
      details: { field: "name" },
    });
  }
}

/** Removes a host with no VMs placed on it (CONFLICT otherwise), audited. */
export async function removeHost(c: ControlContext, actor: Actor, id: string): Promise<void> {
  const host = await getHost(c.inventory, id);
  await checkRemoveHost(c, host);
  await c.inventory.transaction(async (tx) => {
    await tx.hosts.delete(id);
    await tx.audit.append({
      actor,
      action: "host.remove",
      target: id,
      outcome: "ok",
      details: { name: host.name },
    });
  });
  const driver = c.drivers.get(host.driver);
  if (driver instanceof EmulatedDriver) driver.removeHost(host.address);
}

/** A host with its pools as placement counts them (size, used, free, ASID range). */
export interface HostReport {
  readonly host: Host;
  readonly pools: ReturnType<typeof poolReports>;
  /** Powered-on VMs of any mode. */
  readonly activeVms: number;
}

export async function hostReports(c: ControlContext, hosts: readonly Host[]): Promise<HostReport[]> {
  const views = await viewsOf(c.inventory, hosts);
  return views.map((v) => ({ host: v.host, pools: poolReports(v.host, v.used), activeVms: v.active }));
}
