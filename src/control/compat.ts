/**
 * Compatibility checks, evaluated before anything is touched (docs/product-behaviour.md §3): the hypervisor's own
 * requirement checks (`hypervisor/requirements.ts`, one table for both layers) run against what the inventory
 * knows about a host — CPU generation, SEV platform state, the ES/SEV ASID pools and how many slots are taken —
 * plus the checks only the control plane can make: maintenance, connection, the host's ES-vs-SNP mode, the VM's
 * power state for a mode change, and Secure Boot.
 *
 * Every finding has a stable code and names the host and the failed check, so a refusal is never generic.
 */
import type { ErrorCode } from "../errors.ts";
import { guestOsProfile } from "../guest/os-profiles.ts";
import {
  type HostFacts,
  type RequirementCode,
  type RequirementFinding,
  requirementFindings,
} from "../hypervisor/requirements.ts";
import type { LaunchSpec, PoolReport, SnpLaunchOptions } from "../hypervisor/types.ts";
import { defaultPolicy } from "../hypervisor/vm-spec.ts";
import { CPU_MODELS } from "../machine/cpu-models.ts";
import type { Host, PowerState, SecurityMode, Vm, VmSnpOptions, VmSpec } from "./inventory/types.ts";

/** Codes of the control plane's findings: the hypervisor's, and the ones only the control plane can check. */
export type CompatCode =
  | RequirementCode
  | Extract<
      ErrorCode,
      /** A security-mode change needs the VM powered off. */
      | "POWER_STATE"
      /** The host's ES pool serves SEV-SNP guests, which cannot share a host with SEV-ES guests (CVE-2025-48514). */
      | "HOST_MODE"
      | "MAINTENANCE"
      | "HOST_DISCONNECTED"
      /** SEV does not work with Secure Boot (KubeVirt's admission rule). */
      | "SECURE_BOOT"
      /** The VM already runs there (a migration needs another host). */
      | "SAME_HOST"
    >;

export interface CompatFinding {
  readonly code: CompatCode;
  readonly message: string;
}

/** Key slots (ASIDs) taken on one host: one per powered-on encrypted VM, per pool. */
export interface PoolUse {
  readonly sev: number;
  readonly sevEs: number;
  readonly snp: number;
}

/** No slot taken. */
export const NO_POOL_USE: PoolUse = Object.freeze({ sev: 0, sevEs: 0, snp: 0 });

/** The pools, in the order reports list them, and the mode each serves. */
export const POOLS: readonly { readonly pool: keyof PoolUse; readonly mode: SecurityMode }[] = [
  { pool: "snp", mode: "sev-snp" },
  { pool: "sevEs", mode: "sev-es" },
  { pool: "sev", mode: "sev" },
];

/** The parts of a VM the checks read. */
export type VmShape = Pick<Vm, "id" | "name" | "spec" | "securityMode" | "policy"> &
  Partial<Pick<Vm, "attestationState">>;

/** Power states in which an encrypted VM holds its ASID: from the reservation until its power-off commits. */
export const SLOT_STATES: readonly PowerState[] = ["starting", "running", "paused", "stopping"];

const MODE_NAME: Readonly<Record<SecurityMode, string>> = {
  none: "ordinary",
  sev: "SEV",
  "sev-es": "SEV-ES",
  "sev-snp": "SEV-SNP",
};

/** The human name of a mode, as messages use it. */
export function modeName(mode: SecurityMode): string {
  return MODE_NAME[mode];
}

/** The pool an encrypted VM draws its ASID from (none for ordinary VMs). */
export function poolOf(mode: SecurityMode): keyof PoolUse | undefined {
  return POOLS.find((p) => p.mode === mode)?.pool;
}

type PoolHost = Pick<Host, "sevAsids" | "esAsids" | "snpAsids" | "esMode">;

/** The size of each pool on a host: the split `poolReports` describes, without building the reports. */
export function poolSizes(host: PoolHost): PoolUse {
  const split = host.snpAsids > 0;
  return {
    snp: split ? host.snpAsids : host.esMode === "snp" ? host.esAsids : 0,
    sevEs: split ? host.esAsids - host.snpAsids : host.esMode === "snp" ? 0 : host.esAsids,
    sev: host.sevAsids,
  };
}

/**
 * The host's ASID pools as the inventory knows them (docs/product-behaviour.md §5.2). The low range is ASIDs
 * 1..esAsids (min_sev_asid = esAsids + 1) and the SEV pool follows it. Under Ciphertext Hiding the low range splits:
 * SNP 1..snpAsids, SEV-ES the rest, and both modes run. Otherwise the whole range serves the host's one `esMode`
 * (SEV-ES and SEV-SNP guests exclude each other per host since CVE-2025-48514) and the other pool is empty.
 */
export function poolReports(host: PoolHost, used: PoolUse): HostFacts["capabilities"]["pools"] {
  const report = (first: number, size: number, inUse: number): PoolReport => ({
    first: size === 0 ? 0 : first,
    last: size === 0 ? 0 : first + size - 1,
    size,
    used: inUse,
    free: Math.max(0, size - inUse),
  });
  const size = poolSizes(host);
  return {
    snp: report(1, size.snp, used.snp),
    sevEs: report(host.snpAsids > 0 ? host.snpAsids + 1 : 1, size.sevEs, used.sevEs),
    sev: report(host.esAsids + 1, size.sev, used.sev),
  };
}

/** The size of one pool on a host. */
export function poolSize(host: PoolHost, pool: keyof PoolUse): number {
  return poolSizes(host)[pool];
}

/**
 * The hypervisor's view of a host, built from the inventory (no call to the host). A host recorded with an unknown
 * generation reported no SEV: it has no CPU model, so every SEV or SEV-ES VM is refused with SEV_UNSUPPORTED.
 */
export function hostFacts(host: Host, used: PoolUse): HostFacts {
  return {
    name: host.name,
    model: host.cpuGeneration === "unknown" ? undefined : CPU_MODELS[host.cpuGeneration],
    capabilities: {
      sevState: host.sevState,
      minSevAsid: host.esAsids + 1,
      pools: poolReports(host, used),
    },
  };
}

/** The hypervisor's VM spec for an inventory VM. The name on the host is the inventory id. */
export function hypervisorSpec(vm: VmShape): LaunchSpec {
  const s: VmSpec = vm.spec;
  const encrypted = vm.securityMode !== "none";
  return {
    name: vm.id,
    vcpus: s.vcpus,
    memoryMiB: s.memoryMiB,
    firmware: { kind: s.firmware },
    hardwareVersion: s.hardwareVersion,
    guestOs: s.guestOs,
    devices: (s.devices ?? []).map((d) => ({
      kind: d.kind,
      ...(d.detail === undefined ? {} : { detail: d.detail }),
    })),
    security: vm.securityMode,
    ...(encrypted ? { policy: vm.policy === 0 ? defaultPolicy(vm.securityMode) : vm.policy } : {}),
    ...(encrypted && s.attestation ? { attestation: true } : {}),
    // Stored with the VM whatever its mode (a bulk change away from SNP and back keeps them); only SNP uses them.
    ...(vm.securityMode === "sev-snp" && s.snp ? { snp: snpLaunchOptions(s.snp) } : {}),
    // The owner's session is good for one launch: only while it is fresh (`session-set`) does it reach LAUNCH_START.
    ...(encrypted && s.launchSession && vm.attestationState === "session-set"
      ? {
          session: {
            godhCert: new Uint8Array(Buffer.from(s.launchSession.godhCert, "base64")),
            session: new Uint8Array(Buffer.from(s.launchSession.session, "base64")),
          },
        }
      : {}),
  };
}

const fromBase64 = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));

/** The hypervisor's SNP launch options from the stored base64 text (their sizes are the hypervisor's checks). */
function snpLaunchOptions(o: VmSnpOptions): SnpLaunchOptions {
  return {
    ...(o.hostData === undefined ? {} : { hostData: fromBase64(o.hostData) }),
    ...(o.idBlock === undefined ? {} : { idBlock: fromBase64(o.idBlock) }),
    ...(o.idAuth === undefined ? {} : { idAuth: fromBase64(o.idAuth) }),
    ...(o.authorKeyEnabled ? { authorKeyEnabled: true } : {}),
  };
}

/** Checks that concern the VM's own configuration, whatever the host. */
const CONFIG_CODES: ReadonlySet<CompatCode> = new Set([
  "GUEST_OS_UNSUPPORTED",
  "EFI_REQUIRED",
  "HARDWARE_VERSION",
  "DEVICE_UNSUPPORTED",
]);

/**
 * A host on which only the VM's own configuration can fail: the newest generation, initialised, free slots in
 * both pools. Running the shared checks against it yields exactly the configuration findings.
 */
const REFERENCE_HOST: HostFacts = {
  name: "reference",
  model: CPU_MODELS.genoa,
  capabilities: {
    sevState: "working",
    minSevAsid: 100,
    pools: {
      snp: { first: 1, last: 49, size: 49, used: 0, free: 49 },
      sevEs: { first: 50, last: 99, size: 50, used: 0, free: 50 },
      sev: { first: 100, last: 1006, size: 907, used: 0, free: 907 },
    },
  },
};

function run(facts: HostFacts, vm: VmShape): RequirementFinding[] {
  try {
    guestOsProfile(vm.spec.guestOs);
  } catch {
    // An unknown guest OS (e.g. a VM written by an older release) is a finding, not a crash of the whole check.
    return vm.securityMode === "none"
      ? []
      : [{ code: "GUEST_OS_UNSUPPORTED", message: `guest OS '${vm.spec.guestOs}' is not a known profile` }];
  }
  return requirementFindings(facts, hypervisorSpec(vm));
}

/** The VM's own configuration checks for its (new) security mode: guest OS, EFI, hardware version, devices. */
export function configFindings(vm: VmShape): CompatFinding[] {
  const out: CompatFinding[] = run(REFERENCE_HOST, vm).filter((f) => CONFIG_CODES.has(f.code));
  if (vm.securityMode !== "none" && vm.spec.secureBoot === true) {
    out.push({
      code: "SECURE_BOOT",
      message: `${modeName(vm.securityMode)} does not work with Secure Boot; turn Secure Boot off for this VM`,
    });
  }
  return out;
}

export interface HostCheckOptions {
  /** Count the free slot in the VM's pool (power-on, restart elsewhere); a powered-off mode change needs none. */
  readonly needSlot: boolean;
}

/** Everything that stops `vm` from being placed on (or switched to its mode on) `host`. */
export function hostFindings(
  host: Host,
  used: PoolUse,
  vm: VmShape,
  options: HostCheckOptions,
): CompatFinding[] {
  const out: CompatFinding[] = [];
  if (host.maintenance !== "none") {
    out.push({
      code: "MAINTENANCE",
      message: `host ${host.name} is ${host.maintenance === "entering" ? "entering" : "in"} maintenance mode`,
    });
  }
  if (host.connection !== "connected") {
    out.push({ code: "HOST_DISCONNECTED", message: `host ${host.name} is disconnected` });
  }
  if (host.snpAsids === 0 && vm.securityMode === "sev-es" && host.esMode === "snp") {
    out.push({
      code: "HOST_MODE",
      message: `host ${host.name} runs SEV-SNP guests in its ES pool; SEV-ES and SEV-SNP cannot share a host (CVE-2025-48514) unless Ciphertext Hiding splits the pool`,
    });
  }
  if (host.snpAsids === 0 && vm.securityMode === "sev-snp" && host.esMode === "sev-es") {
    out.push({
      code: "HOST_MODE",
      message: `host ${host.name} runs SEV-ES guests in its ES pool; SEV-SNP needs an SNP host or Ciphertext Hiding's SNP pool (SEV-ES and SEV-SNP cannot share a pool, CVE-2025-48514)`,
    });
  }
  // Without a slot requirement, present the pool as having room so that only structural findings remain.
  const pool = poolOf(vm.securityMode);
  const effectiveUse: PoolUse = options.needSlot || pool === undefined ? used : NO_POOL_USE;
  for (const f of run(hostFacts(host, effectiveUse), vm)) out.push(f);
  if (vm.securityMode !== "none" && vm.spec.secureBoot === true) {
    out.push({
      code: "SECURE_BOOT",
      message: `${modeName(vm.securityMode)} does not work with Secure Boot; turn Secure Boot off for this VM`,
    });
  }
  return out;
}

/**
 * Findings for switching a VM to `next` (mode and policy): it must be powered off (a mode or policy is bound at
 * launch), its configuration must allow the mode, and — when it is placed — its host must support it.
 */
export function modeChangeFindings(
  next: VmShape,
  powerState: PowerState,
  host: Host | undefined,
  used: PoolUse = NO_POOL_USE,
): CompatFinding[] {
  const out: CompatFinding[] = [];
  if (powerState !== "off") {
    out.push({
      code: "POWER_STATE",
      message: `VM '${next.name}' is ${powerState}; the security mode and policy are bound at launch, so power it off first`,
    });
  }
  const checks = host ? hostFindings(host, used, next, { needSlot: false }) : configFindings(next);
  // Maintenance and connection do not matter for a powered-off VM's configuration.
  for (const f of checks) if (f.code !== "MAINTENANCE" && f.code !== "HOST_DISCONNECTED") out.push(f);
  return out;
}
