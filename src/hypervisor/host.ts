/**
 * One emulated EPYC server running ordinary and encrypted VMs side by side — ESXi's role. It composes the machine
 * (CPU, DRAM, memory controller), the AMD Secure Processor and the VMs, and is the only place those meet:
 *
 * - requirement checks run before any firmware call (requirements.ts);
 * - encrypted VMs launch through the firmware as QEMU/KVM do (launch.ts; SEV-SNP VMs snp-launch.ts, with the RMP
 *   of machine/rmp.ts), then the guest firmware hands off to the OS inside the guest (machine/firmware-handoff.ts);
 * - an SEV-SNP guest's memory is only assigned by the host (RMPUPDATE, snp-guest-memory.ts): the guest firmware and
 *   kernel validate it, and the guest changes page states and starts its APs itself through GHCB version 2 (the
 *   kicked APs run right after the exit that created them: kvm/snp-vcpus.ts);
 * - an SEV-SNP guest's attestation report is the guest's to request: the host asks its guest agent through a shared
 *   mailbox and relays the sealed SNP guest request (`attestationReport`, kvm/snp-guest-request.ts);
 * - every operation goes through the one operation table (operation-rules.ts): refused cells change nothing;
 * - power-off is DEACTIVATE → WBINVD on every core → DF_FLUSH → DECOMMISSION, and the ASID returns to its pool; an
 *   SEV-SNP VM's is SNP_DECOMMISSION → WBINVD → DF_FLUSH, then every page it or the firmware held goes back to the
 *   hypervisor (SNP_PAGE_RECLAIM, RMPUPDATE: snp-reclaim.ts) before its frames are zeroed and reused.
 *
 * Hypervisor code here reads guest state only as real hardware allows (introspection.ts): the key slots go to the
 * machine and the firmware, never to this class's own logic.
 *
 * @example
 * ```ts
 * const host = new Host({ name: "rome-01", generation: "rome", seed: 1 });
 * host.define({ name: "db", vcpus: 2, memoryMiB: 64, firmware: { kind: "efi" }, hardwareVersion: 19,
 *   guestOs: "linux-5.19", devices: [], security: "sev-es" });
 * host.start("db"); // LAUNCH_START … LAUNCH_FINISH, then the guest runs
 * ```
 */

import { forkRandom, seededRandom } from "../crypto/random.ts";
import { CiphervisorError } from "../errors.ts";
import {
  AGENT_MAILBOX_SIZE,
  AGENT_VECTOR,
  AgentError,
  AgentState,
  decodeAgentAnswer,
  encodeAgentRequest,
} from "../guest/agent-mailbox.ts";
import { assemble } from "../guest/assembler.ts";
import { buildGuestImage, type FirmwareArea } from "../guest/image.ts";
import { GuestKernels } from "../guest/kernel/kernel.ts";
import { AGENT_MAILBOX_GPA } from "../guest/layout.ts";
import { guestOsProfile } from "../guest/os-profiles.ts";
import { toHex } from "../lib/bytes.ts";
import { type CpuModel, cpuModel, type Generation } from "../machine/cpu-models.ts";
import { Dram, PAGE_SIZE } from "../machine/dram.ts";
import { SvmExit } from "../machine/exit-codes.ts";
import { KVM_HV_FEATURES } from "../machine/ghcb.ts";
import { Machine } from "../machine/machine.ts";
import { NestedPageTable } from "../machine/nested-page-table.ts";
import { Rmp, type RmpEntry } from "../machine/rmp.ts";
import { snpFirmwareRmpHook } from "../machine/rmp-firmware-hook.ts";
import { VmsaIntegrityStore } from "../machine/trusted-memory.ts";
import { SAVE_AREA_SIZE, Vmcb } from "../machine/vmcb.ts";
import { requireSevMetadata } from "../measure/ovmf-sev-metadata.ts";
import { DEFAULT_HOST_VMM_PROFILE, HOST_VMM_PROFILES, type HostVmmProfile } from "../measure/vmsa.ts";
import { AsidAllocator } from "../sev/asid-allocator.ts";
import { SevClient } from "../sev/client.ts";
import { isEmulatedSnpGeneration } from "../sev/manufacturer/emulated-snp.ts";
import { SecureProcessor } from "../sev/secure-processor.ts";
import { SnpClient } from "../sev/snp/client.ts";
import { DEFAULT_WORKLOAD, defaultWorkloadProgram } from "./default-workload.ts";
import { FramePool } from "./frames.ts";
import { HypervisorView } from "./introspection/hypervisor-view.ts";
import { HostDevices } from "./kvm/devices.ts";
import { handleExit } from "./kvm/exit-handler.ts";
import type { SnpGuestKvm } from "./kvm/snp-context.ts";
import type { SnpGuestRequestChannel } from "./kvm/snp-guest-request.ts";
import {
  runKickedAps,
  SnpVcpu,
  SnpVcpuSet,
  updateProtectedGuestState,
  type VcpuStatus,
} from "./kvm/snp-vcpus.ts";
import { guestCpuOf, mapGuestPage, measuredLaunch, resolveFirmware } from "./launch.ts";
import { assertAllowed, type Operation, policyAllowsDebug, type SecurityMode } from "./operation-rules.ts";
import { assertRequirements, type RequirementFinding, requirementFindings } from "./requirements.ts";
import { assignSnpImage } from "./snp-guest-memory.ts";
import { SNP_GUEST_FEATURES, snpLaunch } from "./snp-launch.ts";
import { returnSnpPages } from "./snp-reclaim.ts";
import type {
  DrainStep,
  HostCapabilities,
  HostPlatform,
  LaunchInputs,
  LaunchSpec,
  PoolReport,
  RunState,
  StartResult,
  VmStatus,
} from "./types.ts";
import { effectivePolicy, validateVmSpec } from "./vm-spec.ts";

const MiB = 1024 * 1024;
/** Host-reserved memory: the firmware client's scratch (1–2 MiB) and the SEV-ES TMR (2–3 MiB). */
const SCRATCH = { base: 1 * MiB, size: 1 * MiB };
const TMR_PA = 2 * MiB;
const FRAMES_BASE = 4 * MiB;
/** Exits a VM may take at power-on before the host returns (boot to the first idle point). */
const BOOT_EXITS = 10_000;

export interface HostConfig {
  name: string;
  generation: Generation;
  seed: string | number;
  /** BIOS `min_sev_asid`; default from the CPU table. */
  minSevAsid?: number;
  /** Host DRAM (sparse; only touched frames cost memory). Default 4096 MiB. */
  memoryMiB?: number;
  /**
   * How the host's QEMU creates SEV/SEV-ES VMs, which decides the VMSAs every SEV-ES launch here measures
   * (docs/sev-interface.md §8.5): `qemu-legacy` (default, QEMU's default `sev-guest`) or `qemu` (KVM_SEV_INIT2).
   */
  vmmProfile?: HostVmmProfile;
  /**
   * Linux 6.18's `kvm_amd.ciphertext_hiding_asids`: ASIDs 1..N serve SEV-SNP guests only, with Ciphertext Hiding
   * (Turin and later). Default 0: SEV-ES and SEV-SNP share the ES range.
   */
  ciphertextHidingAsids?: number;
  /**
   * The GHCB hypervisor features this host's KVM advertises to SEV-SNP guests (MSR protocol 0x080 / 0x081; bits of
   * `GhcbHvFeature`). Default KVM's: SNP and SNP AP creation. Without AP creation an SNP guest cannot start its
   * APs itself, and the host refuses the event.
   */
  snpHvFeatures?: bigint;
}

/** A launched VM's host-side state. */
interface Launched {
  vmcb: Vmcb;
  npt: NestedPageTable;
  devices: HostDevices;
  registeredGhcb: { gpa: bigint | undefined };
  asid: number;
  handle: number | undefined;
  vmsaPas: number[];
  measurement: Uint8Array | undefined;
  launchDigest: string | undefined;
  launchInputs: LaunchInputs | undefined;
  exits: number;
  /** SEV-SNP guests: the guest context, the secrets page and KVM's guest-request pages. */
  snp?: LaunchedSnp;
}

interface LaunchedSnp {
  gctxPa: number;
  secretsGpa: number;
  channel: SnpGuestRequestChannel;
  /** KVM's view of the guest for page state changes and AP creation. */
  kvm: SnpGuestKvm;
  /** Every vCPU, BSP first (its VMCB is `Launched.vmcb`); each AP has a VMCB page of its own. */
  vcpus: SnpVcpuSet;
}

interface VmRecord {
  spec: LaunchSpec;
  power: RunState;
  reason: string | undefined;
  launched: Launched | undefined;
  snapshots: { name: string; kind: "disk" | "memory" }[];
}

function clonePolicyDebugAllowed(spec: LaunchSpec): boolean {
  return policyAllowsDebug(spec.security, effectivePolicy(spec));
}

export class Host {
  readonly name: string;
  readonly model: CpuModel;
  readonly vmmProfile: HostVmmProfile;
  readonly #dram: Dram;
  readonly #sp: SecureProcessor;
  readonly #client: SevClient;
  /** The SEV-SNP firmware client and the Reverse Map Table, on parts with SNP (Milan and later). */
  readonly #snp: { client: SnpClient; rmp: Rmp } | undefined;
  readonly #asids: AsidAllocator;
  readonly #machine: Machine;
  readonly #frames: FramePool;
  readonly #vms = new Map<string, VmRecord>();
  readonly #snpHvFeatures: bigint;
  /** Frames an SNP guest left that the RMP would not give back: never reused (Linux's `snp_leak_pages`). */
  readonly #leaked = new Set<number>();
  /** ASIDs for ordinary VMs come from above the SEV range, as KVM's non-SEV ASIDs do. */
  #nextPlainAsid: number;

  constructor(config: HostConfig) {
    this.name = config.name;
    this.model = cpuModel(config.generation);
    const profile = config.vmmProfile ?? DEFAULT_HOST_VMM_PROFILE;
    if (!(HOST_VMM_PROFILES as readonly string[]).includes(profile)) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `unknown VMM profile '${String(profile)}' (expected one of ${HOST_VMM_PROFILES.join(", ")})`,
      );
    }
    this.vmmProfile = profile;
    this.#snpHvFeatures = config.snpHvFeatures ?? KVM_HV_FEATURES;
    const memory = (config.memoryMiB ?? 4096) * MiB;
    this.#dram = new Dram(memory);
    const integrity = new VmsaIntegrityStore();
    const rmp = isEmulatedSnpGeneration(config.generation) ? new Rmp({ end: memory }) : undefined;
    this.#sp = new SecureProcessor({
      generation: config.generation,
      seed: `${config.seed}`,
      memory: this.#dram,
      minSevAsid: config.minSevAsid,
      ...(config.ciphertextHidingAsids ? { ciphertextHidingAsids: config.ciphertextHidingAsids } : {}),
      vmsaIntegrity: integrity,
      ...(rmp ? { snp: { rmp: snpFirmwareRmpHook(rmp) } } : {}),
    });
    this.#client = new SevClient(this.#sp, this.#dram, SCRATCH);
    this.#snp = rmp ? { client: new SnpClient(this.#sp, this.#dram, SCRATCH), rmp } : undefined;
    this.#asids = new AsidAllocator(this.#client);
    this.#machine = new Machine({
      model: this.model,
      minSevAsid: this.#sp.minSevAsid,
      memory: this.#dram,
      keySlots: this.#sp.keySlots,
      vmsaIntegrity: integrity,
      rng: forkRandom(seededRandom(`host\0${config.seed}`), "cpu"),
      nativeCode: new GuestKernels(),
      ...(rmp ? { rmp } : {}),
    });
    this.#frames = new FramePool(FRAMES_BASE, memory);
    this.#nextPlainAsid = this.model.maxAsid + 1;
    // The host's SEV driver initializes the platform at boot: SNP_INIT first on parts with SNP (Linux's ccp driver
    // must: SNP cannot be initialised after SEV), then INIT, with SEV-ES when the part has it (KVM's SEV_INIT).
    this.#snp?.client.init();
    this.#client.init({ es: this.model.sevEs, tmrPa: TMR_PA });
  }

  // --- reports -------------------------------------------------------------------------------------------------

  /**
   * The platform facts of `capabilities()` without the certificates: what registering a host stores. Reading
   * the PDH chain makes the firmware generate its identity (P-384 keys, ~10 ms); these facts do not.
   */
  platform(): HostPlatform {
    const st = this.#client.platformStatus();
    const pool = (p: "es" | "sev" | "snp"): PoolReport => {
      const u = this.#asids.usage(p);
      return { first: u.first, last: u.last, size: u.size, used: u.inUse + u.reclaim, free: u.free };
    };
    const pools = { sev: pool("sev"), sevEs: pool("es"), snp: pool("snp") };
    const esReason = !this.model.sevEs
      ? `${this.model.generation} (${this.model.family}) has no SEV-ES; it needs rome or later`
      : pools.sevEs.size === 0
        ? `BIOS min_sev_asid = ${this.#sp.minSevAsid} leaves no SEV-ES ASIDs`
        : undefined;
    return {
      name: this.name,
      generation: this.model.generation,
      family: this.model.family,
      sevSupported: true,
      sevEsSupported: esReason === undefined,
      ...(esReason ? { sevEsUnavailableReason: esReason } : {}),
      sevSnpSupported: this.model.snp,
      ciphertextHidingAsids: this.#sp.ciphertextHidingAsids,
      sevState: st.state === "UNINIT" ? "uninitialized" : st.state === "INIT" ? "initialized" : "working",
      firmware: { apiMajor: st.apiMajor, apiMinor: st.apiMinor, build: st.build },
      cBit: this.model.cBit,
      reducedPhysBits: this.model.reducedPhysBits,
      minSevAsid: this.#sp.minSevAsid,
      maxSevGuests: pools.sev.size,
      maxSevEsGuests: pools.sevEs.size,
      pools,
      cpu0Id: toHex(this.#client.getId()),
      vmmProfile: this.vmmProfile,
      guestCpu: guestCpuOf(this.model.generation),
    };
  }

  capabilities(): HostCapabilities {
    const { cpu0Id, vmmProfile, guestCpu, ...facts } = this.platform();
    const chain = this.#client.pdhCertExport();
    return {
      ...facts,
      pdh: Buffer.from(chain.pdh).toString("base64"),
      certChain: Buffer.from(new Uint8Array([...chain.pek, ...chain.oca, ...chain.cek])).toString("base64"),
      cpu0Id,
      vmmProfile,
      ...(guestCpu === undefined ? {} : { guestCpu }),
    };
  }

  /** The firmware client, for the guest owner's side of tests and the `sev` commands (certificates, status). */
  get firmware(): Pick<SevClient, "pdhCertExport" | "getId" | "platformStatus"> {
    return this.#client;
  }

  /** The checks need only platform facts: not the certificate chain `capabilities()` exports at every call. */
  requirementFindings(spec: LaunchSpec): RequirementFinding[] {
    const caps = this.platform();
    return requirementFindings({ name: this.name, model: this.model, capabilities: caps }, spec);
  }

  // --- VM registry ---------------------------------------------------------------------------------------------

  #vm(name: string): VmRecord {
    const vm = this.#vms.get(name);
    if (!vm) throw new CiphervisorError("NOT_FOUND", `no VM '${name}' on host ${this.name}`);
    return vm;
  }

  define(spec: LaunchSpec): VmStatus {
    const valid = validateVmSpec(spec);
    if (this.#vms.has(valid.name)) {
      throw new CiphervisorError(
        "CONFLICT",
        `a VM named '${valid.name}' already exists on host ${this.name}`,
      );
    }
    // Catch a bad firmware image or guest program now, not at power-on. An SEV-SNP VM's firmware must carry the
    // SEV metadata its launch needs (QEMU refuses one without: SEV_METADATA_MISSING).
    if (valid.firmware.kind === "efi") {
      const fw = resolveFirmware(valid);
      if (valid.security === "sev-snp") requireSevMetadata(fw.bytes, fw.footer);
    }
    assemble(valid.program ?? DEFAULT_WORKLOAD);
    this.#vms.set(valid.name, {
      spec: valid,
      power: "defined",
      reason: undefined,
      launched: undefined,
      snapshots: [],
    });
    return this.status(valid.name);
  }

  undefine(name: string): void {
    const vm = this.#vm(name);
    if (vm.launched) throw new CiphervisorError("CONFLICT", `VM '${name}' is powered on; power it off first`);
    this.#vms.delete(name);
  }

  spec(name: string): LaunchSpec {
    const s = this.#vm(name).spec;
    return { ...s, devices: [...s.devices] };
  }

  status(name: string): VmStatus {
    const vm = this.#vm(name);
    const l = vm.launched;
    const out: VmStatus = { name, security: vm.spec.security, power: vm.power };
    if (l && vm.spec.security !== "none") {
      out.handle = l.handle;
      out.asid = l.asid;
      out.policy = effectivePolicy(vm.spec);
      if (l.launchDigest) out.launchDigest = l.launchDigest;
      if (l.launchInputs) out.launchInputs = structuredClone(l.launchInputs);
    }
    if (vm.reason) out.reason = vm.reason;
    if (l) {
      out.console = l.devices.console;
      if (l.devices.consoleDropped > 0) out.consoleDropped = l.devices.consoleDropped;
      out.exits = l.exits;
    }
    return out;
  }

  list(): VmStatus[] {
    return [...this.#vms.keys()].sort().map((n) => this.status(n));
  }

  // --- power -----------------------------------------------------------------------------------------------------

  /**
   * Powers a VM on. Encrypted VMs: requirement checks, an ASID from the right pool, the measured launch; with
   * `attestation` the VM stays paused after LAUNCH_MEASURE (the measurement goes to the guest owner) until
   * `finishLaunch`. Then the guest boots and runs to its first idle point.
   */
  start(name: string): StartResult {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, "power-on");
    if (vm.launched)
      throw new CiphervisorError("CONFLICT", `VM '${name}' is already powered on (${vm.power})`);
    const spec = vm.spec;
    assertRequirements(name, this.requirementFindings(spec));
    const npt = new NestedPageTable();
    const plain = spec.security === "none";
    const snp = spec.security === "sev-snp";
    const asid = plain
      ? this.#nextPlainAsid++
      : this.#asids.allocate(snp ? "snp" : spec.security === "sev-es" ? "es" : "sev");
    const ctx = {
      client: this.#client,
      memory: this.#dram,
      frames: this.#frames,
      npt,
      generation: this.model.generation,
      vmmProfile: this.vmmProfile,
    };
    let launched: Launched;
    try {
      if (snp) {
        launched = this.#snpStart(spec, npt, asid);
      } else {
        const measured = plain ? undefined : measuredLaunch(ctx, spec, asid, effectivePolicy(spec));
        if (plain) this.#loadPlainFirmware(spec, npt);
        const vmcbPa = this.#frames.alloc();
        this.#dram.write(vmcbPa, new Uint8Array(PAGE_SIZE));
        const vmcb = new Vmcb(vmcbPa, {
          asid,
          mode: spec.security,
          npt,
          ...(measured?.vmsaPas[0] !== undefined ? { vmsaPa: measured.vmsaPas[0] } : {}),
        });
        launched = {
          vmcb,
          npt,
          devices: new HostDevices(this.model, spec.security),
          registeredGhcb: { gpa: undefined },
          asid,
          handle: measured?.handle,
          vmsaPas: measured?.vmsaPas ?? [],
          measurement: measured?.measurement,
          launchDigest: measured?.launchDigest,
          launchInputs: measured?.inputs,
          exits: 0,
        };
      }
    } catch (e) {
      // The ASID first: its release flushes (WBINVD, DF_FLUSH) before any of the guest's frames is reused.
      if (!plain) this.#asids.release(asid, true);
      this.#releaseMemory(npt, []);
      throw e;
    }
    vm.launched = launched;
    vm.reason = undefined;
    if (spec.attestation && launched.handle !== undefined) {
      vm.power = "paused";
      vm.reason = "waiting for the guest owner to verify the launch measurement (and inject a secret)";
      return {
        status: this.status(name),
        launchMeasurement: Buffer.from(launched.measurement ?? new Uint8Array()).toString("base64"),
      };
    }
    this.#finish(vm);
    return { status: this.status(name) };
  }

  /**
   * An SEV-SNP launch (snp-launch.ts) through SNP_LAUNCH_FINISH: the VMCB runs the guest as an SEV-ES guest whose
   * VMSA carries SNPActive. KVM keeps two host pages for the guest's SNP guest requests, and a VMCB for each AP, which
   * waits on its launched VMSA until the guest creates it (SNP AP creation).
   */
  #snpStart(spec: LaunchSpec, npt: NestedPageTable, asid: number): Launched {
    const snp = this.#snp;
    if (!snp) throw new CiphervisorError("INTERNAL", `host ${this.name} has no SEV-SNP firmware`);
    const devices = new HostDevices(this.model, spec.security);
    const m = snpLaunch(
      {
        snp: snp.client,
        rmp: snp.rmp,
        memory: this.#dram,
        frames: this.#frames,
        npt,
        generation: this.model.generation,
        cpuid: (leaf, subleaf) => devices.cpuid(leaf, subleaf, 1n),
      },
      spec,
      asid,
    );
    const gctxPa = m.gctxPa;
    const hostPages: number[] = [];
    try {
      // The VMCB, KVM's two guest-request pages, and a VMCB for each AP.
      while (hostPages.length < 2 + spec.vcpus) hostPages.push(this.#frames.alloc());
    } catch (e) {
      // Out of frames after the launch: the guest context goes, and every page it held goes back (the caller
      // flushes the ASID and frees the mapped pages).
      snp.client.decommission(gctxPa);
      this.#releaseMemory(new NestedPageTable(), [gctxPa, ...m.vmsaPas, ...hostPages]);
      throw e;
    }
    const [vmcbPa, requestBuffer, responseBuffer, ...apVmcbPas] = hostPages as [number, number, number];
    const vmcb = new Vmcb(vmcbPa, { asid, mode: spec.security, npt, vmsaPa: m.vmsaPas[0]! });
    const registeredGhcb = { gpa: undefined };
    const vcpus = new SnpVcpuSet(SNP_GUEST_FEATURES, [
      new SnpVcpu(0, vmcb, "runnable", registeredGhcb),
      // An AP keeps its launched VMSA (OVMF's AP reset code, not run) until the guest creates it.
      ...apVmcbPas.map(
        (pa, i) =>
          new SnpVcpu(
            i + 1,
            new Vmcb(pa, { asid, mode: spec.security, npt, vmsaPa: m.vmsaPas[i + 1]! }),
            "uninitialized",
          ),
      ),
    ]);
    for (const pa of [vmcbPa, ...apVmcbPas]) this.#dram.write(pa, new Uint8Array(PAGE_SIZE));
    return {
      vmcb,
      npt,
      devices,
      registeredGhcb,
      asid,
      handle: undefined,
      vmsaPas: m.vmsaPas,
      measurement: undefined,
      launchDigest: m.launchDigest,
      launchInputs: m.inputs,
      exits: 0,
      snp: {
        gctxPa,
        secretsGpa: m.secretsGpa,
        channel: {
          guestRequest: (req, rsp) => snp.client.guestRequest(gctxPa, req, rsp),
          requestBuffer,
          responseBuffer,
        },
        kvm: { rmp: snp.rmp, asid, hvFeatures: this.#snpHvFeatures, vcpus },
        vcpus,
      },
    };
  }

  /**
   * The vCPUs of a powered-on SEV-SNP VM as the host's KVM keeps them (kvm/snp-vcpus.ts): for each APIC ID its MP
   * state, whose VMSA it runs — the launch's, or one the guest created with SNP AP creation — its GHCB and exits.
   * Hypervisor state only; undefined for other VMs.
   */
  vcpus(name: string): VcpuStatus[] | undefined {
    return this.#vm(name).launched?.snp?.vcpus.status();
  }

  /** The paused launch's MEASURE ‖ MNONCE, base64 (what `virsh domlaunchsecinfo` reports). */
  launchMeasurement(name: string): string {
    const vm = this.#vm(name);
    if (vm.power !== "paused" || !vm.launched?.measurement) {
      throw new CiphervisorError("CONFLICT", `VM '${name}' is not paused for attestation`);
    }
    return Buffer.from(vm.launched.measurement).toString("base64");
  }

  /**
   * Completes an attested launch: the guest owner's LAUNCH_SECRET (written into the firmware's secret area), then
   * LAUNCH_FINISH, and the guest boots. A secret whose MAC does not verify is refused (BAD_MEASUREMENT) and the VM
   * stays paused.
   */
  finishLaunch(name: string, secret?: { header: Uint8Array; payload: Uint8Array }): VmStatus {
    const vm = this.#vm(name);
    const l = vm.launched;
    if (vm.power !== "paused" || !l || l.handle === undefined) {
      throw new CiphervisorError("CONFLICT", `VM '${name}' is not paused for attestation`);
    }
    if (secret) {
      const area = resolveFirmware(vm.spec).footer.secretArea;
      if (!area || secret.payload.length > area.size) {
        throw new CiphervisorError(
          "INVALID_INPUT",
          area
            ? `the secret (${secret.payload.length} bytes) exceeds the firmware's secret area (${area.size} bytes)`
            : "the firmware declares no secret area",
        );
      }
      const hpa = mapGuestPage({ frames: this.#frames, npt: l.npt }, area.base) + (area.base % PAGE_SIZE);
      this.#client.launchSecret(l.handle, secret, hpa);
    }
    this.#finish(vm);
    return this.status(name);
  }

  #finish(vm: VmRecord): void {
    const l = vm.launched!;
    if (l.handle !== undefined) this.#client.launchFinish(l.handle);
    const profile = guestOsProfile(vm.spec.guestOs);
    // The kernel maps the firmware's secret area (as Linux's efi_secret does) so the guest can read its secrets;
    // an SNP kernel maps the SNP secrets page instead (OVMF tells it where), for its VMPCKs.
    const secretArea =
      vm.spec.firmware.kind === "efi" && !l.snp ? resolveFirmware(vm.spec).footer.secretArea : undefined;
    const firmwareAreas: FirmwareArea[] = l.snp
      ? [{ gpa: l.snp.secretsGpa, size: PAGE_SIZE, what: "SNP secrets page", snpSecrets: true }]
      : secretArea && secretArea.size > 0
        ? [{ gpa: secretArea.base, size: secretArea.size, what: "SEV secret area", secret: true }]
        : [];
    const program = vm.spec.program === undefined ? defaultWorkloadProgram() : assemble(vm.spec.program);
    const image = buildGuestImage(program, {
      profile,
      mode: vm.spec.security,
      model: this.model,
      ...(firmwareAreas.length > 0 ? { firmwareAreas } : {}),
      vcpus: vm.spec.vcpus,
    });
    for (const p of image.pages) mapGuestPage({ frames: this.#frames, npt: l.npt }, p.gpa);
    // SEV-SNP: the host only assigns the pages; the guest firmware and kernel validate them (snp-guest-memory.ts).
    const handoff = l.snp
      ? assignSnpImage(this.#snp!.rmp, l.npt, l.asid, image.pages)
      : image.pages
          .filter((p) => !p.preserve)
          .map((p) => ({ gpa: p.gpa, data: p.data, private: p.launchEncrypted }));
    const done = this.#machine.firmwareHandoff(l.vmcb, handoff, image.initialState);
    vm.power = "running";
    if (!done.ok) {
      vm.power = "crashed";
      vm.reason = done.reason;
      return;
    }
    this.run(vm.spec.name, BOOT_EXITS);
  }

  /** Loads an ordinary VM's firmware in plaintext (no measurement for ordinary VMs). */
  #loadPlainFirmware(spec: LaunchSpec, npt: NestedPageTable): void {
    if (spec.firmware.kind !== "efi") return;
    const fw = resolveFirmware(spec);
    for (let o = 0; o < fw.bytes.length; o += PAGE_SIZE) {
      const hpa = mapGuestPage({ frames: this.#frames, npt }, fw.gpa + o);
      this.#dram.write(hpa, fw.bytes.subarray(o, Math.min(o + PAGE_SIZE, fw.bytes.length)));
    }
  }

  /**
   * Runs the guest until it idles (HLT), stops (crash, SHUTDOWN, refused VMRUN) or `maxExits` exits were handled.
   * A crash is reported with the guest's own last words when it has them.
   */
  run(name: string, maxExits = BOOT_EXITS): VmStatus {
    const vm = this.#vm(name);
    const l = vm.launched;
    if (!l || vm.power !== "running") return this.status(name);
    const hostVm = {
      memory: this.#dram,
      vmcb: l.vmcb,
      npt: l.npt,
      devices: l.devices,
      cBit: this.model.cBit,
      registeredGhcb: l.registeredGhcb,
      ...(l.snp ? { snp: l.snp.channel, snpGuest: l.snp.kvm } : {}),
    };
    const bsp = l.snp?.vcpus.byApicId(0);
    for (let i = 0; i < maxExits; i++) {
      if (bsp?.updateRequested) updateProtectedGuestState(bsp, l.npt);
      if (bsp && bsp.vmsa === "none") {
        vm.power = "crashed";
        vm.reason = "vCPU 0 has no VMSA (the guest destroyed it with SNP AP creation); KVM does not run it";
        break;
      }
      const exit = this.#machine.vmrun(l.vmcb);
      l.exits++;
      if (bsp) bsp.exits++;
      const handled = handleExit(hostVm, exit);
      if (handled.outcome.action === "stop") {
        vm.power = "crashed";
        vm.reason = handled.outcome.reason;
        break;
      }
      if (l.snp) {
        // The APs an AP creation request kicked run now, before the BSP goes on (snp-vcpus.ts).
        const apExits = () => l.snp!.vcpus.vcpus.reduce((n, v) => n + (v.apicId === 0 ? 0 : v.exits), 0);
        const before = apExits();
        const r = runKickedAps(this.#machine, l.snp.vcpus, hostVm, BOOT_EXITS);
        l.exits += apExits() - before;
        if (r.stopped) {
          vm.power = "crashed";
          vm.reason = r.reason;
          break;
        }
      }
      if (exit.exitCode === SvmExit.HLT) {
        vm.reason = "idle: the guest executed HLT and waits for an interrupt";
        break;
      }
    }
    return this.status(name);
  }

  /** Power-off: DEACTIVATE → WBINVD (all cores) → DF_FLUSH → DECOMMISSION; the ASID and the frames are returned. */
  stop(name: string): VmStatus {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, "power-off");
    const l = vm.launched;
    if (!l) {
      vm.power = vm.power === "defined" ? "defined" : "stopped";
      return this.status(name);
    }
    if (l.handle !== undefined) {
      this.#client.deactivate(l.handle);
      this.#asids.release(l.asid, true);
      this.#client.decommission(l.handle);
    }
    const extra = [l.vmcb.pa, ...l.vmsaPas];
    if (l.snp) {
      // SNP_DECOMMISSION deactivates the guest; WBINVD and DF_FLUSH recycle the ASID and flush every line it
      // tagged, so the pages can go back to the hypervisor and on to the next guest (#releaseMemory).
      this.#snp!.client.decommission(l.snp.gctxPa);
      this.#asids.release(l.asid, true);
      extra.push(l.snp.gctxPa, l.snp.channel.requestBuffer, l.snp.channel.responseBuffer);
      for (const ap of l.snp.vcpus.vcpus.slice(1)) extra.push(ap.vmcb.pa);
    }
    this.#releaseMemory(l.npt, extra);
    vm.launched = undefined;
    vm.power = "stopped";
    vm.reason = undefined;
    return this.status(name);
  }

  /** Reset: an SEV-ES VM's register state cannot be reset by the host, so a reset is a full relaunch. */
  reset(name: string): VmStatus {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, "reset");
    if (!vm.launched) throw new CiphervisorError("CONFLICT", `VM '${name}' is powered off`);
    this.stop(name);
    this.start(name);
    return this.status(name);
  }

  /**
   * Zeroes and frees a VM's frames. On an SNP host every page the RMP still assigns goes back to the hypervisor
   * first — SNP_PAGE_RECLAIM for an Immutable one (the context page, launched pages), then RMPUPDATE
   * (snp-reclaim.ts) — so the zeroing is an ordinary host write and the next guest gets a hypervisor-owned frame. A
   * page the firmware or the RMP refuses to give back stays out of the pool (`frameUsage().leaked`).
   */
  #releaseMemory(npt: NestedPageTable, extra: number[]): void {
    const zero = new Uint8Array(PAGE_SIZE);
    const frames = [...[...npt.entries()].map(([, e]) => e.hpa), ...extra];
    let back = frames;
    if (this.#snp) {
      const r = returnSnpPages(this.#snp.client, this.#snp.rmp, frames);
      for (const l of r.leaked) this.#leaked.add(l.pa);
      back = r.returned;
    }
    for (const f of back) {
      this.#dram.write(f, zero);
      this.#frames.free(f);
    }
  }

  /**
   * The host's frames for guest memory: how many are free now, and how many SNP guests left that could not be
   * given back to the hypervisor (kept out of use for good). A host that powers SNP VMs on and off keeps `free`
   * where it was.
   */
  frameUsage(): { free: number; leaked: number } {
    return { free: this.#frames.available, leaked: this.#leaked.size };
  }

  /**
   * The RMP entry of a host page, as the hypervisor can read it (Linux's `snp_lookup_rmpentry`): who owns it, at
   * which GPA, Validated, Immutable. Undefined on a host without SEV-SNP.
   */
  rmpEntry(pa: number): RmpEntry | undefined {
    return this.#snp?.rmp.entry(pa);
  }

  // --- configuration and table operations --------------------------------------------------------------------------

  /** Changes a powered-off VM's spec (including turning SEV or SEV-ES on or off). */
  reconfigure(name: string, patch: Partial<Omit<LaunchSpec, "name">>): VmStatus {
    const vm = this.#vm(name);
    if (vm.launched) {
      assertAllowed(name, vm.spec.security, "hot-add-device");
      throw new CiphervisorError("CONFLICT", `VM '${name}' must be powered off to be reconfigured`);
    }
    const mode: SecurityMode = patch.security ?? vm.spec.security;
    const policy =
      patch.policy ?? (patch.security && patch.security !== vm.spec.security ? undefined : vm.spec.policy);
    const next = validateVmSpec({ ...vm.spec, ...patch, security: mode, policy: policy as number });
    vm.spec = next;
    return this.status(name);
  }

  /**
   * Any operation of the table by name. Refused cells throw the table's refusal code and change nothing; allowed ones run.
   */
  perform(
    name: string,
    operation: Operation,
    args: { target?: Host; snapshot?: string; clone?: string } = {},
  ): VmStatus {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, operation, clonePolicyDebugAllowed(vm.spec));
    switch (operation) {
      case "power-on":
        return this.start(name).status;
      case "power-off":
        return this.stop(name);
      case "reset":
        return this.reset(name);
      case "reconfigure-powered-off":
        return this.reconfigure(name, {});
      case "live-migrate":
        if (!args.target) throw new CiphervisorError("INVALID_INPUT", "live migration needs a target host");
        return this.liveMigrate(name, args.target);
      case "cold-migrate":
        if (!args.target) throw new CiphervisorError("INVALID_INPUT", "cold migration needs a target host");
        return this.coldMigrate(name, args.target);
      case "disk-snapshot":
      case "memory-snapshot":
        vm.snapshots.push({
          name: args.snapshot ?? `snap-${vm.snapshots.length + 1}`,
          kind: operation === "disk-snapshot" ? "disk" : "memory",
        });
        return this.status(name);
      case "suspend":
        if (vm.power !== "running") throw new CiphervisorError("CONFLICT", `VM '${name}' is not running`);
        vm.power = "suspended";
        return this.status(name);
      case "resume":
        if (vm.power !== "suspended") throw new CiphervisorError("CONFLICT", `VM '${name}' is not suspended`);
        vm.power = "running";
        return this.status(name);
      case "hot-add-device":
        return this.#hotChange(vm, {
          devices: [...vm.spec.devices, { kind: "virtio-disk", detail: "hot-added" }],
        });
      case "hot-add-cpu":
        return this.#hotChange(vm, { vcpus: vm.spec.vcpus + 1 });
      case "hot-add-memory":
        return this.#hotChange(vm, { memoryMiB: vm.spec.memoryMiB * 2 });
      case "fault-tolerance":
        if (!vm.launched) throw new CiphervisorError("CONFLICT", `VM '${name}' is not running`);
        return this.status(name);
      case "hot-clone":
      case "instant-clone":
      case "cold-clone": {
        if (operation === "cold-clone" && vm.launched) {
          throw new CiphervisorError("CONFLICT", `VM '${name}' must be powered off for a cold clone`);
        }
        const cloneName = args.clone ?? `${name}-clone`;
        this.define({ ...vm.spec, name: cloneName });
        return this.status(cloneName);
      }
      case "memory-dump":
        this.memoryDump(name);
        return this.status(name);
    }
  }

  #hotChange(vm: VmRecord, patch: Partial<LaunchSpec>): VmStatus {
    if (!vm.launched)
      throw new CiphervisorError("CONFLICT", `VM '${vm.spec.name}' is not running; reconfigure it instead`);
    vm.spec = validateVmSpec({ ...vm.spec, ...patch });
    return this.status(vm.spec.name);
  }

  /**
   * The guest's memory in plaintext: read directly for ordinary VMs, through the firmware's DBG_DECRYPT for
   * encrypted VMs whose policy allows debug (NODBG clear). GPA → bytes.
   */
  memoryDump(name: string): Map<number, Uint8Array> {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, "memory-dump", clonePolicyDebugAllowed(vm.spec));
    const l = vm.launched;
    if (!l) throw new CiphervisorError("CONFLICT", `VM '${name}' is powered off`);
    if (l.snp) {
      throw new CiphervisorError(
        "MEMORY_DUMP_UNSUPPORTED",
        `memory-dump refused for SEV-SNP VM '${name}': SNP_DBG_DECRYPT is not implemented by the emulated firmware`,
      );
    }
    const out = new Map<number, Uint8Array>();
    const bounce = this.#frames.alloc();
    try {
      for (const [gpa, e] of l.npt.entries()) {
        if (l.handle === undefined) {
          out.set(gpa, this.#dram.read(e.hpa, PAGE_SIZE));
        } else {
          this.#client.dbgDecrypt(l.handle, e.hpa, bounce, PAGE_SIZE);
          out.set(gpa, this.#dram.read(bounce, PAGE_SIZE));
        }
      }
    } finally {
      this.#dram.write(bounce, new Uint8Array(PAGE_SIZE));
      this.#frames.free(bounce);
    }
    return out;
  }

  // --- migration ----------------------------------------------------------------------------------------------------

  /**
   * vMotion of an ordinary VM: memory is copied while the guest keeps running (a pre-copy round), then the VM is
   * paused, the pages and the register state are copied again, and it resumes on `target`.
   */
  liveMigrate(name: string, target: Host): VmStatus {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, "live-migrate");
    const l = vm.launched;
    if (!l || vm.power !== "running") throw new CiphervisorError("CONFLICT", `VM '${name}' is not running`);
    if (target === this) throw new CiphervisorError("INVALID_INPUT", "the target is the source host");
    const incoming = target.#receiveLive(vm.spec);
    const copyPages = () => {
      for (const [gpa, e] of l.npt.entries()) {
        const hpa = mapGuestPage({ frames: target.#frames, npt: incoming.npt }, gpa);
        target.#dram.write(hpa, this.#dram.read(e.hpa, PAGE_SIZE));
      }
    };
    copyPages(); // pre-copy while running
    this.run(name, 4);
    copyPages(); // stop-and-copy
    target.#dram.write(incoming.vmcb.saveAreaPa, this.#dram.read(l.vmcb.saveAreaPa, SAVE_AREA_SIZE));
    incoming.devices.console = l.devices.console;
    incoming.devices.consoleDropped = l.devices.consoleDropped;
    incoming.exits = l.exits;
    const moved: VmRecord = {
      spec: vm.spec,
      power: "running",
      reason: vm.reason,
      launched: incoming,
      snapshots: vm.snapshots,
    };
    target.#vms.set(name, moved);
    this.stop(name);
    this.#vms.delete(name);
    return target.status(name);
  }

  #receiveLive(spec: LaunchSpec): Launched {
    if (this.#vms.has(spec.name)) {
      throw new CiphervisorError("CONFLICT", `a VM named '${spec.name}' already exists on host ${this.name}`);
    }
    const npt = new NestedPageTable();
    const vmcbPa = this.#frames.alloc();
    this.#dram.write(vmcbPa, new Uint8Array(PAGE_SIZE));
    const asid = this.#nextPlainAsid++;
    return {
      vmcb: new Vmcb(vmcbPa, { asid, mode: "none", npt }),
      npt,
      devices: new HostDevices(this.model, "none"),
      registeredGhcb: { gpa: undefined },
      asid,
      handle: undefined,
      vmsaPas: [],
      measurement: undefined,
      launchDigest: undefined,
      launchInputs: undefined,
      exits: 0,
    };
  }

  /** Cold migration: a powered-off VM's definition moves; its next power-on is a fresh launch on `target`. */
  coldMigrate(name: string, target: Host): VmStatus {
    const vm = this.#vm(name);
    assertAllowed(name, vm.spec.security, "cold-migrate");
    if (vm.launched)
      throw new CiphervisorError("CONFLICT", `VM '${name}' is powered on; power it off to cold-migrate`);
    target.define(vm.spec);
    this.#vms.delete(name);
    return target.status(name);
  }

  /** Per VM, how a maintenance drain moves it. */
  drainPlan(): DrainStep[] {
    return this.list().map((s): DrainStep => {
      const spec = this.#vm(s.name).spec;
      const on = s.power === "running" || s.power === "paused" || s.power === "suspended";
      if (!on)
        return {
          vm: s.name,
          security: s.security,
          power: s.power,
          path: "nothing-to-do",
          reason: "powered off",
        };
      if (s.security === "none") {
        return {
          vm: s.name,
          security: s.security,
          power: s.power,
          path: "live-migrate",
          reason: "ordinary VM: vMotion",
        };
      }
      return {
        vm: s.name,
        security: s.security,
        power: s.power,
        path: "restart-elsewhere",
        reason: `${s.security.toUpperCase()} VMs cannot be live-migrated: shut down and restarted on a host with a free ${s.security === "sev-snp" ? "SEV-SNP" : s.security === "sev-es" ? "SEV-ES" : "SEV"} ASID`,
        pool: s.security === "sev-snp" ? "sev-es" : s.security,
        needsOwner: Boolean(spec.session || spec.attestation),
      };
    });
  }

  // --- SEV-SNP attestation --------------------------------------------------------------------------------------

  /**
   * A signed SEV-SNP attestation report of a running SNP VM, with the caller's 64 bytes as REPORT_DATA. The
   * hypervisor cannot ask the firmware for it: only the guest holds VMPCK0. So, as a host's guest agent runs
   * `snpguest report` inside the guest, the host writes the request into the guest-agent mailbox (a shared page,
   * guest/agent-mailbox.ts) and raises the hypervisor callback interrupt; the guest kernel seals MSG_REPORT_REQ
   * under VMPCK0 from its secrets page and makes the SNP guest request exit, which the host relays to the firmware
   * (SNP_GUEST_REQUEST, kvm/snp-guest-request.ts); the guest opens the response and answers in the mailbox.
   *
   * @throws CiphervisorError INVALID_INPUT (not 64 bytes), CONFLICT (not a running SNP VM), GUEST_OS_UNSUPPORTED
   *   (the kernel has no SNP guest driver), SEV_FIRMWARE (the firmware refused the request), REPORT_INVALID (the
   *   guest did not answer, or its answer did not authenticate)
   */
  attestationReport(name: string, reportData: Uint8Array): { report: Uint8Array } {
    const vm = this.#vm(name);
    if (reportData.length !== 64) {
      throw new CiphervisorError("INVALID_INPUT", `REPORT_DATA is 64 bytes, got ${reportData.length}`, {
        details: { field: "reportData" },
      });
    }
    const l = vm.launched;
    if (!l?.snp || vm.power !== "running") {
      throw new CiphervisorError(
        "CONFLICT",
        `VM '${name}' is not a running SEV-SNP VM (${vm.spec.security}, ${vm.power}); only SNP guests have attestation reports`,
      );
    }
    const mailbox = l.npt.translate(AGENT_MAILBOX_GPA);
    if (mailbox === undefined) {
      throw new CiphervisorError(
        "GUEST_OS_UNSUPPORTED",
        `guest OS of VM '${name}' has no SEV-SNP guest agent (no mailbox page)`,
      );
    }
    this.#dram.write(mailbox, encodeAgentRequest(reportData));
    l.vmcb.control.eventInj = { vector: AGENT_VECTOR, type: 0 };
    this.run(name, BOOT_EXITS);
    const answer = decodeAgentAnswer(this.#dram.read(mailbox, AGENT_MAILBOX_SIZE));
    this.#dram.write(mailbox, new Uint8Array(AGENT_MAILBOX_SIZE));
    if (answer.state === AgentState.DONE && answer.report) return { report: answer.report };
    const status = this.status(name);
    if (answer.state === AgentState.PENDING) {
      throw new CiphervisorError(
        "REPORT_INVALID",
        `the guest of VM '${name}' did not answer the attestation request (${status.power}${status.reason ? `: ${status.reason}` : ""})`,
      );
    }
    const detail = `0x${answer.detail.toString(16)}`;
    switch (answer.error) {
      case AgentError.UNSUPPORTED:
        throw new CiphervisorError(
          "GUEST_OS_UNSUPPORTED",
          `guest OS of VM '${name}' cannot request SEV-SNP reports`,
        );
      case AgentError.GUEST_REQUEST_FAILED:
      case AgentError.REPORT_REFUSED:
        throw new CiphervisorError(
          "SEV_FIRMWARE",
          `SNP_GUEST_REQUEST for VM '${name}' failed: ${answer.error === AgentError.REPORT_REFUSED ? "MSG_REPORT_RSP status" : "SW_EXITINFO2"} ${detail}`,
          { details: { detail } },
        );
      default:
        throw new CiphervisorError(
          "REPORT_INVALID",
          `the guest of VM '${name}' could not open the firmware's response (error ${answer.error})`,
        );
    }
  }

  // --- what the hypervisor may look at ------------------------------------------------------------------------

  /**
   * The hypervisor's view of a launched VM (introspection/hypervisor-view.ts): DRAM as stored, the NPT, the VMCB,
   * the SEV-ES VMSA ciphertext and the GHCB — exactly what real hardware lets a hypervisor read; on an SNP host its
   * writes pass the RMP's check. Undefined while the VM is powered off.
   */
  view(name: string): HypervisorView | undefined {
    const l = this.#vm(name).launched;
    return l ? new HypervisorView(this.#dram, { vmcb: l.vmcb, npt: l.npt }, this.#snp?.rmp) : undefined;
  }
}
