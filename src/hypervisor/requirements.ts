/**
 * The requirement checks a host runs before it touches the firmware (docs/product-behaviour.md §3: "validate every
 * precondition before touching a host … name the failing check, never fail later with a generic error"). Each
 * finding has a stable code and a message a person can act on. The control plane runs the same checks to decide
 * compatibility and placement.
 */
import { CiphervisorError, type ErrorCode } from "../errors.ts";
import { guestOsProfile, supportsMode } from "../guest/os-profiles.ts";
import type { CpuModel } from "../machine/cpu-models.ts";
import type { HostCapabilities, LaunchSpec } from "./types.ts";

export type RequirementCode = Extract<
  ErrorCode,
  | "CPU_GENERATION"
  | "SEV_ES_POOL_EMPTY"
  | "ASID_POOL_EXHAUSTED"
  | "GUEST_OS_UNSUPPORTED"
  | "EFI_REQUIRED"
  | "HARDWARE_VERSION"
  | "DEVICE_UNSUPPORTED"
  | "SEV_NOT_INITIALIZED"
  | "SEV_UNSUPPORTED"
>;

export interface RequirementFinding {
  code: RequirementCode;
  message: string;
}

/** vSphere 7.0 U1 requires virtual hardware version 18 for SEV-ES; the same bar applies to plain SEV here. */
export const MIN_HARDWARE_VERSION_ENCRYPTED = 18;

/** Devices that cannot work with encrypted guest memory (they would DMA into private pages). */
const ENCRYPTION_INCOMPATIBLE_DEVICES: Readonly<Record<string, string>> = {
  "pci-passthrough":
    "PCI passthrough devices DMA straight into guest memory, which is encrypted; SEV guests can only use virtio devices through shared bounce buffers",
};

export interface HostFacts {
  name: string;
  /**
   * The host's EPYC part; undefined when the host reports no SEV, so that its generation is unknown (a libvirt host
   * on an Intel CPU or with SEV off, libvirt's test driver). Such a host runs ordinary VMs only.
   */
  model: CpuModel | undefined;
  /** Why the host reports no SEV, when its driver says (e.g. "libvirt reports no <sev> feature …"). */
  noSevReason?: string;
  capabilities: Pick<HostCapabilities, "sevState" | "pools" | "minSevAsid">;
}

/**
 * Every finding for starting `spec` on the host; empty when it may start. Checks are listed in the order a person
 * fixes them: hardware, BIOS, pool capacity, then the VM's own configuration.
 */
export function requirementFindings(host: HostFacts, spec: LaunchSpec): RequirementFinding[] {
  const out: RequirementFinding[] = [];
  const mode = spec.security;
  const profile = guestOsProfile(spec.guestOs);
  if (mode === "none") return out;
  const what = mode === "sev-snp" ? "SEV-SNP" : mode === "sev-es" ? "SEV-ES" : "SEV";
  const { model, capabilities: caps } = host;

  if (!model) {
    // No SEV at all: "not initialized", a CPU generation or an empty pool would each mislead.
    const why = host.noSevReason ? `: ${host.noSevReason}` : "";
    out.push({
      code: "SEV_UNSUPPORTED",
      message: `host ${host.name} reports no SEV (CPU generation unknown${why}); it runs ordinary VMs only`,
    });
  } else {
    if (caps.sevState === "uninitialized") {
      out.push({
        code: "SEV_NOT_INITIALIZED",
        message: `host ${host.name}: the SEV platform is not initialized`,
      });
    }
    if (mode === "sev-snp" && !model.snp) {
      out.push({
        code: "CPU_GENERATION",
        message: `host ${host.name} is ${model.generation} (${model.family}); SEV-SNP needs milan (EPYC 7xx3) or later`,
      });
    } else if (mode === "sev-es" && !model.sevEs) {
      out.push({
        code: "CPU_GENERATION",
        message: `host ${host.name} is ${model.generation} (${model.family}); SEV-ES needs rome (EPYC 7xx2) or later`,
      });
    } else if (mode === "sev-es" && caps.pools.sevEs.size === 0) {
      out.push({
        code: "SEV_ES_POOL_EMPTY",
        message: `host ${host.name} has no SEV-ES ASIDs: its BIOS sets min_sev_asid = ${caps.minSevAsid} (SEV-ES needs min_sev_asid ≥ 2)`,
      });
    } else if (mode === "sev-snp" && caps.pools.snp.size === 0) {
      // SNP shares the ES range unless Ciphertext Hiding splits it; an empty SNP pool is min_sev_asid = 1 or a
      // range that serves SEV-ES guests on this host.
      out.push({
        code: "SEV_ES_POOL_EMPTY",
        message:
          caps.minSevAsid <= 1
            ? `host ${host.name} has no SEV-SNP ASIDs: its BIOS sets min_sev_asid = ${caps.minSevAsid} (SEV-SNP needs min_sev_asid ≥ 2)`
            : `host ${host.name} has no SEV-SNP ASIDs: its ES range serves SEV-ES guests`,
      });
    } else {
      const pool = mode === "sev" ? caps.pools.sev : mode === "sev-snp" ? caps.pools.snp : caps.pools.sevEs;
      if (pool.free === 0) {
        out.push({
          code: "ASID_POOL_EXHAUSTED",
          message: `host ${host.name}: all ${pool.size} ${what} ASIDs (${pool.first}..${pool.last}) are in use (${pool.used} running ${what} guests)`,
        });
      }
    }
  }
  const support = supportsMode(profile, mode);
  if (!support.ok)
    out.push({ code: "GUEST_OS_UNSUPPORTED", message: `${support.reason}; run it as an ordinary VM` });
  if (spec.firmware.kind !== "efi") {
    out.push({
      code: "EFI_REQUIRED",
      message: `${what} needs EFI firmware (OVMF); this VM boots legacy BIOS`,
    });
  }
  if (spec.hardwareVersion < MIN_HARDWARE_VERSION_ENCRYPTED) {
    out.push({
      code: "HARDWARE_VERSION",
      message: `${what} needs virtual hardware version ${MIN_HARDWARE_VERSION_ENCRYPTED} or later; this VM has version ${spec.hardwareVersion}`,
    });
  }
  for (const d of spec.devices) {
    const why = ENCRYPTION_INCOMPATIBLE_DEVICES[d.kind];
    if (why)
      out.push({
        code: "DEVICE_UNSUPPORTED",
        message: `device ${d.kind}${d.detail ? ` (${d.detail})` : ""}: ${why}`,
      });
  }
  return out;
}

/** Throws REQUIREMENT_FAILED (or ASID_POOL_EXHAUSTED when that is the only finding) naming every failed check. */
export function assertRequirements(vm: string, findings: readonly RequirementFinding[]): void {
  if (findings.length === 0) return;
  const only = findings.length === 1 ? findings[0] : undefined;
  const code = only?.code === "ASID_POOL_EXHAUSTED" ? "ASID_POOL_EXHAUSTED" : "REQUIREMENT_FAILED";
  throw new CiphervisorError(code, `VM '${vm}' cannot start: ${findings.map((f) => f.message).join("; ")}`, {
    details: { findings: findings.map((f) => ({ code: f.code, message: f.message })) },
  });
}
