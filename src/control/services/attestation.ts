/**
 * The guest owner's attestation flow through the control plane, as libvirt and KubeVirt offer it
 * (docs/product-behaviour.md §7): fetch the platform's PDH and certificate chain, set the owner's session on a
 * powered-off VM, read the launch measurement of a VM paused after LAUNCH_MEASURE, inject the owner's secret
 * (LAUNCH_SECRET) and finish the launch.
 *
 * Honesty (docs/threat-model.md §5.2 item 6): the control plane relays raw values — the measurement blob, the policy,
 * the firmware version — and never says "verified"; the owner checks them with their own tools, off the host.
 * The session and the secret are never logged, audited or returned; audit records name the VM and the outcome.
 *
 * Attestation states kept in the inventory: `session-set` (PUT session, VM off) → `measured` (power-on, set by the
 * power service) → `secret-injected` or `finished`; power-off and failed launches go back to `none`. The session is
 * used for exactly one launch: LAUNCH_START only gets it while the state is `session-set`.
 */

import { createHash } from "node:crypto";
import { CiphervisorError, isCiphervisorError } from "../../errors.ts";
import { builtinUefiImage } from "../../hypervisor/builtin-uefi.ts";
import type { GuestCpu, LaunchInputs } from "../../hypervisor/types.ts";
import { defaultPolicy } from "../../hypervisor/vm-spec.ts";
import type { HostVmmProfile } from "../../measure/vmsa.ts";
import {
  amdKdsLocations,
  CHIP_ID_SIZE,
  EmulatedKds,
  emulatedKdsLocations,
  type KdsLocations,
} from "../../sev/manufacturer/emulated-kds.ts";
import type { DriverCapabilities, LaunchSecret } from "../drivers/driver.ts";
import { EmulatedDriver } from "../drivers/emulated.ts";
import type { Actor, Host, LaunchSessionFiles, Vm } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import { type ControlContext, connect, getHost, getVm } from "./context.ts";
import { firmwareChanged, hostFirmware } from "./hosts.ts";
import { ownerMeasureArgs } from "./owner-measure.ts";

/** What `virsh nodesevinfo` and KubeVirt's `fetchcertchain` give, plus the chain split into sevctl's files. */
export interface SevInfo {
  readonly hostId: string;
  readonly host: string;
  readonly generation: string;
  readonly sevState: string;
  readonly sevEsSupported: boolean;
  /** How the host's QEMU builds SEV-ES VMSAs (docs/sev-interface.md §8.5): `owner measure --vmm`. */
  readonly vmmProfile: HostVmmProfile;
  /** The vCPU its guests see (QEMU model and CPUID(1).EAX identity), when the host reports it. */
  readonly guestCpu?: GuestCpu;
  /** base64 of the PDH certificate. */
  readonly pdh: string;
  /** base64 of PEK ‖ OCA ‖ CEK (the CEK as the platform signs it: the owner fetches the ASK-signed one from the KDS). */
  readonly certChain: string;
  readonly pek: string;
  readonly oca: string;
  readonly cek: string;
  /** hex of GET_ID: the KDS key for the ASK-signed CEK. */
  readonly cpu0Id: string;
  /**
   * Where the ASK-signed CEK and the ASK ‖ ARK are served, as sevctl knows AMD's KDS: this server's emulated KDS for
   * an emulated host, AMD's for a real one. Absent when the host reported no cpu0 id.
   */
  readonly kds?: KdsLocations;
  readonly firmware: { readonly apiMajor: number; readonly apiMinor: number; readonly build: number };
  readonly cBit: number;
  readonly reducedPhysBits: number;
  readonly minSevAsid: number;
  readonly maxSevGuests: number;
  readonly maxSevEsGuests: number;
  readonly pools: {
    readonly sev: { readonly size: number; readonly used: number; readonly free: number };
    readonly sevEs: { readonly size: number; readonly used: number; readonly free: number };
    readonly snp: { readonly size: number; readonly used: number; readonly free: number };
  };
}

/** What `virsh domlaunchsecinfo` and KubeVirt's `querylaunchmeasurement` give. Raw facts, no verdict. */
export interface LaunchMeasurementInfo {
  readonly vm: string;
  readonly hostId: string;
  readonly host: string;
  /** base64 of MEASURE ‖ MNONCE (48 bytes), as the firmware returned it. */
  readonly measurement: string;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly build: number;
  /** The guest policy the VM was launched with (the host's report). */
  readonly policy: number;
  /** SHA-256 (hex) of the firmware image the host loads, like KubeVirt's loaderSHA; recompute it from your copy. */
  readonly loaderSha256: string;
  readonly attestationState: Vm["attestationState"];
  /**
   * What the launch measured, so the owner can rebuild the launch digest from their own images
   * (docs/sev-interface.md §8.1, §12.2): the mode, the host's VMM profile, the vCPU count and, when the host
   * reports them, the vCPU model, its CPUID signature and the SHA-256 of every measured image.
   */
  readonly securityMode: "sev" | "sev-es";
  readonly vmmProfile: HostVmmProfile;
  readonly vcpus: number;
  readonly vcpuType?: string;
  readonly cpuSignature?: {
    readonly family: number;
    readonly model: number;
    readonly stepping: number;
    /** CPUID(1).EAX, the SEV-ES VMSA's RDX (`owner measure --vcpu-sig`). */
    readonly value: number;
  };
  readonly images?: LaunchInputs["images"];
  /** The `ciphervisor owner measure` arguments that recompute the digest from the values above (`owner-measure.ts`). */
  readonly ownerMeasure: readonly string[];
}

/** A failure the service already wrote to the audit log (the API must not record it twice). */
export class AuditedFailure extends Error {
  readonly error: CiphervisorError;

  constructor(error: CiphervisorError) {
    super(error.message);
    this.name = "AuditedFailure";
    this.error = error;
  }
}

const CERT = 0x824;

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

/** One audit record of an attestation read or step (failures of mutating calls are recorded by the API). */
export async function audit(
  c: ControlContext,
  actor: Actor,
  action: string,
  target: string,
  outcome: "ok" | "failed",
  details: JsonObject,
): Promise<void> {
  await c.inventory.audit.append({ actor, action, target, outcome, details });
}

const CHIP_ID_HEX = new RegExp(`^[0-9a-fA-F]{${CHIP_ID_SIZE * 2}}$`);

/** The KDS locations of a host's chip: the emulated KDS for the emulated manufacturer's chips, AMD's otherwise. */
function kdsOf(host: Host, caps: DriverCapabilities): { kds?: KdsLocations } {
  if (caps.generation === "unknown" || !CHIP_ID_HEX.test(caps.cpu0Id)) return {};
  const locate = host.driver === "emulated" ? emulatedKdsLocations : amdKdsLocations;
  return { kds: locate(caps.generation, caps.cpu0Id) };
}

/** The platform facts an owner needs to verify the chain against the root *they* choose. */
export async function sevInfo(c: ControlContext, actor: Actor, hostId: string): Promise<SevInfo> {
  const host = await getHost(c.inventory, hostId);
  const caps = await (await connect(c, host)).capabilities();
  if (!caps.sevSupported) {
    // A host that reports no SEV has no platform certificates: say so, not "a chain of 0 bytes".
    throw new CiphervisorError(
      "SEV_UNSUPPORTED",
      `host ${host.name} reports no SEV (CPU generation unknown), so it has no SEV platform or certificate chain`,
    );
  }
  const chain = new Uint8Array(Buffer.from(caps.certChain, "base64"));
  if (chain.length !== 3 * CERT) {
    throw new CiphervisorError(
      "INTERNAL",
      `host ${host.name} reported a certificate chain of ${chain.length} bytes`,
    );
  }
  await audit(c, actor, "host.sev-info", host.id, "ok", { host: host.name });
  // The host was just reached: keep the firmware version on its record current (after a firmware update, or for
  // a host registered before the record had it), for the readers of hosts who may not read sev-info.
  if (firmwareChanged(host, caps)) await c.inventory.hosts.update(host.id, { firmware: hostFirmware(caps) });
  const pool = (p: { size: number; used: number; free: number }) => ({
    size: p.size,
    used: p.used,
    free: p.free,
  });
  return {
    hostId: host.id,
    host: host.name,
    generation: caps.generation,
    sevState: caps.sevState,
    sevEsSupported: caps.sevEsSupported,
    vmmProfile: caps.vmmProfile,
    ...(caps.guestCpu ? { guestCpu: { ...caps.guestCpu } } : {}),
    pdh: caps.pdh,
    certChain: caps.certChain,
    pek: b64(chain.subarray(0, CERT)),
    oca: b64(chain.subarray(CERT, 2 * CERT)),
    cek: b64(chain.subarray(2 * CERT)),
    cpu0Id: caps.cpu0Id,
    ...kdsOf(host, caps),
    firmware: { ...caps.firmware },
    cBit: caps.cBit,
    reducedPhysBits: caps.reducedPhysBits,
    minSevAsid: caps.minSevAsid,
    maxSevGuests: caps.maxSevGuests,
    maxSevEsGuests: caps.maxSevEsGuests,
    pools: { sev: pool(caps.pools.sev), sevEs: pool(caps.pools.sevEs), snp: pool(caps.pools.snp) },
  };
}

/**
 * The emulated KDS over the chips of this control plane's emulated hosts (docs/sev-interface.md §11.5): like AMD,
 * it serves the CEK of every chip its manufacturer made, and knows no other.
 */
export function emulatedKds(c: ControlContext): EmulatedKds {
  return new EmulatedKds((chipId) => {
    let driver: unknown;
    try {
      driver = c.drivers.get("emulated");
    } catch {
      return undefined;
    }
    return driver instanceof EmulatedDriver ? driver.chipGeneration(chipId) : undefined;
  });
}

/** The policy a VM launches with (0 in the inventory means the mode's default). */
export function launchPolicy(vm: Pick<Vm, "policy" | "securityMode">): number {
  return vm.policy === 0 && vm.securityMode !== "none" ? defaultPolicy(vm.securityMode) : vm.policy;
}

/**
 * The SEV/SEV-ES attested launch (session, LAUNCH_MEASURE, LAUNCH_SECRET) needs an SEV or SEV-ES VM. An SEV-SNP
 * guest has no LAUNCH_MEASURE or LAUNCH_SECRET (SNP ABI 56860): it proves itself with a signed report, fetched
 * from the running guest (`vm attestation-report`), and its owner releases secrets to it after checking that.
 */
function refuseOrdinary(vm: Vm): void {
  if (vm.securityMode === "none") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is an ordinary VM; attestation needs SEV, SEV-ES or SEV-SNP (turn it on first)`,
      { details: { vm: vm.id, mode: vm.securityMode } },
    );
  }
  if (vm.securityMode === "sev-snp") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is an SEV-SNP VM, attested with a signed report from the running guest: use 'vm attestation-report' (POST /v1/vms/{id}/attestation-report), not the SEV launch measurement`,
      { details: { vm: vm.id, mode: vm.securityMode } },
    );
  }
}

/** What a session request needs of the VM: encrypted, powered off, placed (the session is bound to one PDH). */
export function checkSessionTarget(vm: Vm): void {
  refuseOrdinary(vm);
  if (vm.powerState !== "off") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}; a launch session can only be set while it is powered off`,
      { details: { vm: vm.id, powerState: vm.powerState } },
    );
  }
  if (vm.hostId === null) {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is not placed on a host; the session is made for one host's PDH, so place the VM first`,
      { details: { vm: vm.id } },
    );
  }
}

/**
 * Stores the owner's session for the VM's next launch and marks the VM for an attested (paused) launch. The
 * session is bound to the VM's policy by its policy MAC; the firmware checks it at LAUNCH_START, so a session made
 * for another policy fails at power-on with POLICY_FAILURE. Returns the VM and the policy the session must match.
 */
export async function setLaunchSession(
  c: ControlContext,
  actor: Actor,
  vmId: string,
  session: LaunchSessionFiles,
): Promise<{ vm: Vm; policy: number; host: Host }> {
  return c.inventory.transaction(async (tx) => {
    const [vm] = await tx.vms.lockMany([vmId]);
    if (!vm) throw new CiphervisorError("NOT_FOUND", `VM ${vmId} not found`, { details: { vm: vmId } });
    checkSessionTarget(vm);
    const host = await getHost(tx, vm.hostId ?? "");
    const updated = await tx.vms.update(vm.id, {
      spec: { ...vm.spec, attestation: true, launchSession: session },
      attestationState: "session-set",
    });
    const policy = launchPolicy(vm);
    await tx.audit.append({
      actor,
      action: "vm.launch-session.set",
      target: vm.id,
      outcome: "ok",
      details: { host: host.name, policy, replaced: vm.spec.launchSession !== undefined },
    });
    return { vm: updated, policy, host };
  });
}

/** A VM paused after LAUNCH_MEASURE, and its host (CONFLICT otherwise). */
export async function pausedForAttestation(c: ControlContext, vmId: string): Promise<{ vm: Vm; host: Host }> {
  const vm = await getVm(c.inventory, vmId);
  refuseOrdinary(vm);
  if (vm.powerState !== "paused" || vm.hostId === null) {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}, not paused for attestation; set 'spec.attestation' (or a launch session) and power it on`,
      { details: { vm: vm.id, powerState: vm.powerState } },
    );
  }
  return { vm, host: await getHost(c.inventory, vm.hostId) };
}

let loaderDigest: string | undefined;

/** SHA-256 of the built-in UEFI image: every VM the control plane defines boots it. */
function builtinLoaderSha256(): string {
  loaderDigest ??= createHash("sha256").update(builtinUefiImage()).digest("hex");
  return loaderDigest;
}

/** The raw launch measurement of a paused VM, with the platform version and policy the owner's check needs. */
export async function launchMeasurement(
  c: ControlContext,
  actor: Actor,
  vmId: string,
): Promise<LaunchMeasurementInfo> {
  const { vm, host } = await pausedForAttestation(c, vmId);
  const h = await connect(c, host);
  const [measurement, caps, status] = await Promise.all([
    h.launchMeasurement(vm.id),
    h.capabilities(),
    h.status(vm.id),
  ]);
  await audit(c, actor, "vm.launch-measurement.read", vm.id, "ok", { host: host.name });
  // The host's own record of the launch when it keeps one (emulated hosts); else what the inventory knows.
  const inputs = status?.launchInputs;
  // Else what the host hashed of the files the domain boots (libvirt), else the built-in UEFI every emulated VM boots.
  const images = inputs?.images ?? status?.bootImages;
  const info: Omit<LaunchMeasurementInfo, "ownerMeasure"> = {
    vm: vm.id,
    hostId: host.id,
    host: host.name,
    measurement,
    apiMajor: caps.firmware.apiMajor,
    apiMinor: caps.firmware.apiMinor,
    build: caps.firmware.build,
    policy: status?.policy ?? launchPolicy(vm),
    loaderSha256: images?.firmware.sha256 ?? builtinLoaderSha256(),
    attestationState: vm.attestationState,
    securityMode:
      inputs?.security === "sev" || inputs?.security === "sev-es"
        ? inputs.security
        : vm.securityMode === "sev-es"
          ? "sev-es"
          : "sev",
    vmmProfile: inputs?.vmmProfile ?? caps.vmmProfile,
    vcpus: inputs?.vcpus ?? vm.spec.vcpus,
    ...(inputs
      ? {
          vcpuType: inputs.cpu.type,
          cpuSignature: {
            family: inputs.cpu.family,
            model: inputs.cpu.model,
            stepping: inputs.cpu.stepping,
            value: inputs.cpu.signature,
          },
        }
      : {}),
    ...(images ? { images: structuredClone(images) } : {}),
  };
  return { ...info, ownerMeasure: ownerMeasureArgs(info) };
}

/** The stable code of a host failure: a firmware status name (BAD_MEASUREMENT, …) or the error's own code. */
export function failureCode(e: CiphervisorError): string {
  const name = e.details?.statusName;
  return e.code === "SEV_FIRMWARE" && typeof name === "string" && name !== "UNKNOWN" ? name : e.code;
}

/**
 * LAUNCH_SECRET (when `secret` is given) and LAUNCH_FINISH: the guest runs. A refused secret (a bad MAC is
 * BAD_MEASUREMENT) leaves the VM paused, so the owner may try again; the failure is audited here and rethrown as
 * an `AuditedFailure`. The session is dropped from the spec once the launch it served has finished.
 */
export async function finishLaunch(
  c: ControlContext,
  actor: Actor,
  vmId: string,
  secret: LaunchSecret | undefined,
): Promise<Vm> {
  const { vm, host } = await pausedForAttestation(c, vmId);
  const action = secret ? "vm.launch-secret.inject" : "vm.launch-finish";
  const h = await connect(c, host);
  let power: string;
  try {
    power = (await h.finishLaunch(vm.id, secret)).power;
  } catch (e) {
    if (!isCiphervisorError(e)) throw e;
    const fw = e.details;
    await audit(c, actor, action, vm.id, "failed", {
      host: host.name,
      code: failureCode(e),
      reason: e.message,
      ...(typeof fw?.command === "string" ? { command: fw.command } : {}),
      ...(typeof fw?.status === "number" ? { firmwareStatus: fw.status } : {}),
      ...(secret ? { payloadBytes: secret.payload.length } : {}),
    });
    throw new AuditedFailure(e);
  }
  const state = secret ? ("secret-injected" as const) : ("finished" as const);
  return c.inventory.transaction(async (tx) => {
    const [current] = await tx.vms.lockMany([vm.id]);
    if (!current)
      throw new CiphervisorError("NOT_FOUND", `VM ${vm.id} not found`, { details: { vm: vm.id } });
    const { launchSession: _used, ...spec } = current.spec;
    // A power-off that committed meanwhile wins: only a VM still recorded paused becomes running.
    const running = current.powerState === "paused" && power === "running";
    const updated = await tx.vms.update(vm.id, {
      spec,
      ...(running ? { powerState: "running" as const, attestationState: state } : {}),
    });
    await tx.audit.append({
      actor,
      action,
      target: vm.id,
      outcome: "ok",
      details: {
        host: host.name,
        powerState: updated.powerState,
        attestationState: updated.attestationState,
        ...(secret ? { payloadBytes: secret.payload.length } : {}),
      },
    });
    return updated;
  });
}
