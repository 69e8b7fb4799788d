/**
 * The vCPUs of an SEV-SNP guest as KVM keeps them (torvalds/linux `arch/x86/kvm/svm/sev.c`: `sev_snp_ap_creation`,
 * `sev_snp_init_protected_guest_state`, `pre_sev_run`): each has its own VMCB and registered GHCB, and — what SNP AP
 * creation adds — a VMSA GPA waiting to be installed (`snp_vmsa_gpa`) and a "waiting for reset" flag. AP creation
 * only records the request and kicks the target; the target installs the new VMSA itself before its next VMRUN
 * (KVM_REQ_UPDATE_PROTECTED_GUEST_STATE), which is `updateProtectedGuestState` here.
 *
 * At launch every vCPU has the VMSA the host launched with SNP_LAUNCH_UPDATE (GHCB 56421 allows both that and AP
 * creation). The BSP runs from it. An AP's launched VMSA starts at OVMF's SEV-ES AP reset vector — x86 firmware code
 * the emulator cannot execute — so an AP that keeps it stays uninitialized, never run; one the guest creates runs.
 */
import { SvmExit } from "../../machine/exit-codes.ts";
import type { Machine } from "../../machine/machine.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import type { Vmcb } from "../../machine/vmcb.ts";
import { type HandledExit, type HostVm, handleExit } from "./exit-handler.ts";

/** KVM's MP states as they matter here. */
export type VcpuMpState = "runnable" | "halted" | "uninitialized";

/** Whose VMSA the vCPU runs: the launch's (SNP_LAUNCH_UPDATE), the guest's own (AP creation), or none (destroyed). */
export type VcpuVmsaSource = "launch" | "guest" | "none";

/** What the host can tell about one vCPU (all of it hypervisor state: the VMSA's contents stay hidden). */
export interface VcpuStatus {
  apicId: number;
  mpState: VcpuMpState;
  vmsa: VcpuVmsaSource;
  /** System physical address of the VMSA page the VMCB points at (the launch VMSA's until the guest replaces it). */
  vmsaPa: number;
  /** The GPA of the guest's own VMSA page, once it created this vCPU. */
  vmsaGpa?: number;
  /** The GHCB GPA this vCPU registered (MSR protocol 0x012). */
  registeredGhcb?: number;
  exits: number;
}

export class SnpVcpu {
  /** KVM `snp_vmsa_gpa`: what the next protected-state update installs (undefined = INVALID_PAGE). */
  pendingVmsaGpa: number | undefined = undefined;
  /** KVM `snp_ap_waiting_for_reset`: an AP creation request is waiting for this vCPU's next update. */
  waitingForReset = false;
  /** KVM_REQ_UPDATE_PROTECTED_GUEST_STATE: the kick of a CREATE or DESTROY request. */
  updateRequested = false;
  vmsa: VcpuVmsaSource = "launch";
  vmsaGpa: number | undefined = undefined;
  exits = 0;

  constructor(
    readonly apicId: number,
    readonly vmcb: Vmcb,
    public mpState: VcpuMpState,
    /** The GHCB GPA this vCPU registered (KVM keeps one per vCPU). */
    readonly registeredGhcb: { gpa: bigint | undefined } = { gpa: undefined },
  ) {}

  status(): VcpuStatus {
    const out: VcpuStatus = {
      apicId: this.apicId,
      mpState: this.mpState,
      vmsa: this.vmsa,
      vmsaPa: this.vmcb.control.vmsaPa,
      exits: this.exits,
    };
    if (this.vmsaGpa !== undefined) out.vmsaGpa = this.vmsaGpa;
    if (this.registeredGhcb.gpa !== undefined) out.registeredGhcb = Number(this.registeredGhcb.gpa);
    return out;
  }
}

/** What AP creation needs of the guest's vCPUs. */
export interface SnpVcpuTable {
  /** KVM `sev->vmsa_features`: the SEV_FEATURES every VMSA of this guest must carry. */
  readonly vmsaFeatures: bigint;
  byApicId(apicId: number): SnpVcpu | undefined;
}

/**
 * `sev_snp_init_protected_guest_state`: the vCPU drops its VMSA and goes offline; with a GPA waiting it takes the
 * guest page there as its VMSA and becomes runnable. A fresh VMSA starts with a GHCB MSR of zero.
 */
export function updateProtectedGuestState(v: SnpVcpu, npt: NestedPageTable): void {
  v.updateRequested = false;
  if (!v.waitingForReset) return;
  v.waitingForReset = false;
  v.mpState = "halted";
  v.vmsa = "none";
  const gpa = v.pendingVmsaGpa;
  v.pendingVmsaGpa = undefined;
  if (gpa === undefined) return;
  const hpa = npt.translate(gpa);
  if (hpa === undefined) return;
  v.vmcb.control.vmsaPa = hpa;
  v.vmcb.control.ghcbGpa = 0n;
  v.vmsa = "guest";
  v.vmsaGpa = gpa;
  v.mpState = "runnable";
}

/** The vCPUs of one guest, BSP first (APIC ID = index). */
export class SnpVcpuSet implements SnpVcpuTable {
  constructor(
    readonly vmsaFeatures: bigint,
    readonly vcpus: readonly SnpVcpu[],
  ) {}

  byApicId(apicId: number): SnpVcpu | undefined {
    return this.vcpus[apicId];
  }

  status(): VcpuStatus[] {
    return this.vcpus.map((v) => v.status());
  }
}

/** Why a vCPU stopped the VM, or undefined when it went idle. */
export type VcpuRunResult = { stopped: false } | { stopped: true; reason: string; handled: HandledExit };

/**
 * Runs one vCPU (the host's KVM_RUN) until it halts or stops the VM, at most `maxExits` exits: the pending
 * protected-state update first; a vCPU without a valid VMSA is not entered (KVM `pre_sev_run` refuses it).
 */
export function runVcpu(machine: Machine, v: SnpVcpu, vm: HostVm, maxExits: number): VcpuRunResult {
  if (v.updateRequested) updateProtectedGuestState(v, vm.npt);
  if (v.mpState !== "runnable" || v.vmsa === "none") return { stopped: false };
  const own: HostVm = { ...vm, vmcb: v.vmcb, registeredGhcb: v.registeredGhcb };
  for (let i = 0; i < maxExits; i++) {
    const handled = handleExit(own, machine.vmrun(v.vmcb));
    v.exits++;
    if (handled.outcome.action === "stop") return { stopped: true, reason: handled.outcome.reason, handled };
    if (handled.exit.exitCode === SvmExit.HLT) {
      v.mpState = "halted";
      return { stopped: false };
    }
  }
  return { stopped: false };
}

/**
 * Runs every AP an AP creation request kicked, each until it idles or stops the VM (what the kicked vCPU threads
 * of KVM do; here one after the other, right after the exit that kicked them). An AP's own requests may kick more.
 */
export function runKickedAps(machine: Machine, set: SnpVcpuSet, vm: HostVm, maxExits: number): VcpuRunResult {
  for (let round = 0; round < set.vcpus.length; round++) {
    const kicked = set.vcpus.filter((v) => v.apicId !== 0 && v.updateRequested);
    if (kicked.length === 0) break;
    for (const v of kicked) {
      const r = runVcpu(machine, v, vm, maxExits);
      if (r.stopped) return { ...r, reason: `vCPU ${v.apicId}: ${r.reason}` };
    }
  }
  return { stopped: false };
}
