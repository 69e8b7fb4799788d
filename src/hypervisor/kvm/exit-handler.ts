/**
 * Reference host exit handling — the part of KVM's SVM code that runs after a #VMEXIT — for one vCPU of a guest
 * launched by `launch.ts`. It is what the emulated hypervisor (src/hypervisor) runs between VMRUNs:
 *
 * - plain SEV / non-SEV intercepts: read the operands from the plaintext VMCB save area, emulate, write the results
 *   back and move RIP to nRIP (everything the hypervisor needs — and can abuse — is right there);
 * - SEV-ES VMGEXIT: the GHCB MSR protocol or the GHCB (vmgexit.ts); the hypervisor never sees the VMSA's contents;
 * - HLT / interrupts: resume; NPF: stop unless the caller maps the page; SHUTDOWN and VMEXIT_INVALID: stop with the
 *   reason a person can act on.
 */

import { PAGE_SIZE, type SystemMemory } from "../../machine/dram.ts";
import { mergeIn } from "../../machine/execution.ts";
import { SvmExit, VMEXIT_INVALID } from "../../machine/exit-codes.ts";
import type { VmExit } from "../../machine/machine.ts";
import { Ioio, ioioSize } from "../../machine/nae-exits.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import { SAVE_AREA_SIZE, type Vmcb } from "../../machine/vmcb.ts";
import { decodeVmsa, encodeVmsa, type Vmsa } from "../../measure/vmsa.ts";
import type { HostDevices, HostRegs } from "./devices.ts";
import type { SnpGuestKvm } from "./snp-context.ts";
import type { SnpGuestRequestChannel } from "./snp-guest-request.ts";
import { type GhcbExchange, handleVmgexit } from "./vmgexit.ts";

/** One guest as the host knows it. */
export interface HostVm {
  memory: SystemMemory;
  vmcb: Vmcb;
  npt: NestedPageTable;
  devices: HostDevices;
  cBit: number;
  /** GHCB GPA registered through the MSR protocol (GHCB v2). */
  registeredGhcb: { gpa: bigint | undefined };
  /** SEV-SNP guests: where the SNP guest request exit goes (snp-guest-request.ts). */
  snp?: SnpGuestRequestChannel;
  /** SEV-SNP guests: page state changes and AP creation (snp-events.ts). */
  snpGuest?: SnpGuestKvm;
}

export type HostOutcome = { action: "resume" } | { action: "stop"; reason: string };

export interface HandledExit {
  exit: VmExit;
  outcome: HostOutcome;
  /** SEV-ES GHCB requests: what the host saw and answered. */
  ghcb?: GhcbExchange;
  /** SEV-ES MSR-protocol requests. */
  msrProtocol?: { request: bigint; response: bigint };
}

function readSaveArea(vm: HostVm): Vmsa {
  const page = new Uint8Array(PAGE_SIZE);
  page.set(vm.memory.read(vm.vmcb.saveAreaPa, SAVE_AREA_SIZE));
  return decodeVmsa(page);
}

function writeSaveArea(vm: HostVm, s: Vmsa): void {
  vm.memory.write(vm.vmcb.saveAreaPa, encodeVmsa(s).subarray(0, SAVE_AREA_SIZE));
}

/** Intercept handling for guests whose registers the host can read (none, sev): KVM's ordinary SVM path. */
function handleIntercept(vm: HostVm, exit: VmExit): HostOutcome {
  const s = readSaveArea(vm);
  const regs: HostRegs = {
    rax: s.rax,
    rbx: s.rbx,
    rcx: s.rcx,
    rdx: s.rdx,
    rsi: s.rsi,
    cpl: BigInt(s.cpl),
    xcr0: s.xcr0,
  };
  const result = vm.devices.emulate(exit.exitCode, exit.exitInfo1, regs);
  if (result.inject) {
    vm.vmcb.control.eventInj = { vector: result.inject.vector, type: 3, errorCode: result.inject.errorCode };
  } else {
    const r = result.regs;
    if (exit.exitCode === SvmExit.IOIO && exit.exitInfo1 & BigInt(Ioio.TYPE_IN)) {
      s.rax = mergeIn(s.rax, ioioSize(exit.exitInfo1) || 1, r.rax ?? 0n);
    } else {
      if (r.rax !== undefined) s.rax = r.rax;
      if (r.rbx !== undefined) s.rbx = r.rbx;
      if (r.rcx !== undefined) s.rcx = r.rcx;
      if (r.rdx !== undefined) s.rdx = r.rdx;
    }
    s.rip = vm.vmcb.control.nRip;
  }
  writeSaveArea(vm, s);
  return result.stop === undefined ? { action: "resume" } : { action: "stop", reason: result.stop };
}

const INTERCEPTED_INSTRUCTIONS = new Set<number>([
  SvmExit.CPUID,
  SvmExit.IOIO,
  SvmExit.MSR,
  SvmExit.VMMCALL,
  SvmExit.RDTSC,
  SvmExit.RDTSCP,
  SvmExit.RDPMC,
  SvmExit.READ_DR7,
  SvmExit.WRITE_DR7,
  SvmExit.WBINVD,
  SvmExit.INVD,
  SvmExit.MONITOR,
  SvmExit.MWAIT,
]);

/**
 * Handles one #VMEXIT and says whether to VMRUN again. Never throws for anything the guest can do.
 *
 * @param hooks.afterSnapshot tests only: races the host's GHCB snapshot
 */
export function handleExit(
  vm: HostVm,
  exit: VmExit,
  hooks: { afterSnapshot?: () => void } = {},
): HandledExit {
  const c = vm.vmcb.control;
  const done = (outcome: HostOutcome): HandledExit => ({ exit, outcome });
  switch (exit.exitCode) {
    case VMEXIT_INVALID:
      return done({ action: "stop", reason: `VMRUN failed: ${exit.reason ?? "invalid VMCB state"}` });
    case SvmExit.SHUTDOWN:
      return done({ action: "stop", reason: exit.guestMessage ?? "the guest shut down (triple fault)" });
    case SvmExit.HLT:
      // Non-SEV-ES: skip the HLT (nRIP); an SEV-ES guest's RIP is already past it.
      if (!c.sevEsEnable) {
        const s = readSaveArea(vm);
        s.rip = c.nRip;
        writeSaveArea(vm, s);
      }
      return done({ action: "resume" });
    case SvmExit.INTR:
    case SvmExit.VINTR:
    case SvmExit.PAUSE:
      return done({ action: "resume" });
    case SvmExit.NPF:
      return done({
        action: "stop",
        reason: `nested page fault at GPA 0x${exit.exitInfo2.toString(16)} (not mapped by the host)`,
      });
    case SvmExit.VMGEXIT: {
      if (!c.sevEsEnable) return done({ action: "stop", reason: "VMGEXIT from a guest that is not SEV-ES" });
      const r = handleVmgexit({
        memory: vm.memory,
        npt: vm.npt,
        devices: vm.devices,
        cBit: vm.cBit,
        ghcbMsr: c.ghcbGpa,
        respond: (v) => {
          c.ghcbGpa = v;
        },
        registeredGhcb: vm.registeredGhcb,
        ...(vm.snp ? { snp: vm.snp } : {}),
        ...(vm.snpGuest ? { snpGuest: vm.snpGuest } : {}),
        afterSnapshot: hooks.afterSnapshot,
      });
      const out: HandledExit = {
        exit,
        outcome: r.kind === "stop" ? { action: "stop", reason: r.reason } : { action: "resume" },
      };
      if (r.ghcb) out.ghcb = r.ghcb;
      if (r.kind === "resume" && r.msrProtocol) out.msrProtocol = r.msrProtocol;
      return out;
    }
    default:
      if (INTERCEPTED_INSTRUCTIONS.has(exit.exitCode) && !c.sevEsEnable)
        return done(handleIntercept(vm, exit));
      return done({ action: "stop", reason: `unexpected ${exit.name} exit` });
  }
}
