/**
 * The guest kernels, run natively by the emulated CPU (src/machine/native-code.ts). One kernel per guest OS
 * profile (os-profiles.ts), all from the same routines; the profile decides what the kernel can do.
 *
 * Boot. The kernel reads its boot information from private memory — a kernel that cannot set the C-bit (no SEV
 * support) reads it as ciphertext and stops there. Under SEV-ES an SEV-ES-capable kernel negotiates the GHCB
 * protocol with SEV_INFO over the GHCB MSR protocol, registers its GHCB GPA when both sides speak version 2, points
 * the GHCB MSR at its GHCB, and jumps to the program.
 *
 * Boot messages. A kernel with Linux's efi_secret driver (profile `efiSecret`) reads the firmware's SEV secret area
 * and prints one line per injected secret — its GUID, size and SHA-256, never the data (efi-secret.ts) — through
 * printk (printk.ts), ISA code whose OUTs leave the guest as real exits; then the program starts.
 *
 * #VC. For each non-automatic exit the handler decodes the faulting instruction, copies into the GHCB exactly the
 * registers that exit needs (vc-exits.ts) with their valid bits, issues VMGEXIT, and on return checks the
 * hypervisor's answer, copies the outputs back and skips the instruction. All of its state across the VMGEXIT is in
 * the exception frame and boot information (private memory) and in registers (the VMSA).
 *
 * SEV-SNP. An SNP-active kernel (SEV_STATUS bit 2) also asks for the hypervisor's features, makes its boot GHCB
 * shared, accepts the memory the firmware left unvalidated, makes its other shared buffers shared and starts its
 * APs with SNP AP creation (snp-boot.ts, snp-memory.ts, snp-smp.ts); a program can convert its own pages with the
 * SET_MEMORY_SHARED / SET_MEMORY_PRIVATE kernel calls (routines.ts).
 *
 * SEV-SNP guest agent. On the hypervisor callback interrupt an SNP kernel answers the host's attestation-report
 * request in its guest-agent mailbox: it seals MSG_REPORT_REQ under VMPCK0 from its own secrets page and makes the
 * SNP guest request exit (snp-guest.ts), then returns from the interrupt.
 *
 * A kernel without SEV-ES support has no #VC handler: vector 29 reaches its generic exception handler, which stops
 * the VM with "guest OS … does not support SEV-ES: unhandled #VC on CPUID at RIP …".
 */
import { exitCodeRow, SvmExit } from "../../machine/exit-codes.ts";
import {
  EXPOSABLE_FIELDS,
  GHCB_DEFAULT_USAGE,
  GHCB_PROTOCOL_MAX,
  GhcbMsr,
  GhcbResponse,
  GhcbView,
  MSR_GHCB,
  MSR_SEV_STATUS,
  msrCode,
  terminationRequest,
} from "../../machine/ghcb.ts";
import { decodeInstruction, Op, Reg } from "../../machine/isa.ts";
import {
  ExceptionFrame,
  NATIVE_CODE_BASE,
  type NativeCpu,
  type NativeGuestCode,
  type NativeStep,
  Vector,
} from "../../machine/native-code.ts";
import { BOOT_MAGIC, BootInfo, KLOG_GPA, KLOG_SIZE, PERCPU_GPA, PRINTK_GPA } from "../layout.ts";
import { GUEST_OS_PROFILES, type GuestOsProfile } from "../os-profiles.ts";
import { efiSecretMessages } from "./efi-secret.ts";
import type { KernelContext } from "./kernel-context.ts";
import {
  kernelAddress,
  PROFILE_STRIDE,
  ROUTINE_STRIDE,
  Routine,
  type RoutineId,
  Termination,
  type TerminationReason,
} from "./routines.ts";
import {
  acceptMemory,
  bootBuffersShared,
  bootGhcbShared,
  bootHvFeatures,
  bootTable,
  registerGhcb,
  requestHvFeatures,
} from "./snp-boot.ts";
import { agentCallback, agentReportDone, type SnpKernelIo } from "./snp-guest.ts";
import { kapiReturn, pscContinue, pscIssue, setMemory } from "./snp-memory.ts";
import { apEntry, apGhcbRegistered, smpApCreated, smpMessages, smpNext } from "./snp-smp.ts";
import { type VcContext, vcExit } from "./vc-exits.ts";

export { kernelAddress, Routine, type RoutineId, Termination } from "./routines.ts";

function hex(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

function exitName(code: bigint): string {
  return exitCodeRow(Number(code))?.name ?? `exit ${hex(code)}`;
}

/** The kernels of every profile in the table, as the CPU's native code. */
export class GuestKernels implements NativeGuestCode {
  run(rip: number, cpu: NativeCpu): NativeStep {
    const off = rip - NATIVE_CODE_BASE;
    const profile = GUEST_OS_PROFILES[Math.floor(off / PROFILE_STRIDE)];
    const routine = (off % PROFILE_STRIDE) / ROUTINE_STRIDE;
    if (!profile || !Number.isInteger(routine)) {
      return { kind: "shutdown", message: `kernel: jump into the middle of kernel text at RIP ${hex(rip)}` };
    }
    return new KernelStep(profile, cpu).run(routine);
  }
}

class KernelStep implements KernelContext {
  constructor(
    readonly profile: GuestOsProfile,
    readonly cpu: NativeCpu,
  ) {}

  at(routine: RoutineId): number {
    return kernelAddress(this.profile, routine);
  }

  #at(routine: RoutineId): number {
    return this.at(routine);
  }

  boot(field: number): bigint {
    return this.cpu.readU64(PERCPU_GPA + 0x100 + field);
  }

  setBoot(field: number, v: bigint): void {
    this.cpu.writeU64(PERCPU_GPA + 0x100 + field, v);
  }

  #boot(field: number): bigint {
    return this.boot(field);
  }

  #setBoot(field: number, v: bigint): void {
    this.setBoot(field, v);
  }

  #frame(field: number): bigint {
    return this.cpu.readU64(Number(this.cpu.state.tr.base) + field);
  }

  /** Asks the hypervisor to end the VM (GHCB MSR protocol termination request), then halts forever. */
  terminate(reason: TerminationReason): NativeStep {
    this.cpu.wrmsr(MSR_GHCB, terminationRequest(reason.set, reason.code));
    return { kind: "vmgexit", resume: this.#at(Routine.TERMINATED) };
  }

  #terminate(reason: TerminationReason): NativeStep {
    return this.terminate(reason);
  }

  ghcbExit(resume: RoutineId): NativeStep {
    this.cpu.wrmsr(MSR_GHCB, this.#boot(BootInfo.GHCB_GPA));
    return { kind: "vmgexit", resume: this.#at(resume) };
  }

  /** SEV-SNP active for this vCPU (SEV_STATUS bit 2) and the kernel supports it. */
  get #snp(): boolean {
    return this.profile.sevSnp && (this.cpu.rdmsr(MSR_SEV_STATUS) & 4n) !== 0n;
  }

  run(routine: number): NativeStep {
    switch (routine) {
      case Routine.BOOT:
        return this.#bootEntry();
      case Routine.BOOT_SEV_INFO:
        return this.#bootSevInfo();
      case Routine.BOOT_GHCB_REGISTERED:
        return this.#bootGhcbRegistered();
      case Routine.BOOT_DONE:
        return this.#bootDone();
      case Routine.VC_HANDLER:
        return this.#vcHandler();
      case Routine.VC_COMPLETE:
        return this.#vcComplete();
      case Routine.GENERIC_EXCEPTION:
        return this.#unhandled();
      case Routine.TERMINATED:
        return { kind: "hlt", resume: this.#at(Routine.TERMINATED) };
      case Routine.PROGRAM_START:
        return this.#programStart();
      case Routine.AGENT_CALLBACK:
        return this.#agentCallback();
      case Routine.AGENT_REPORT_DONE:
        agentReportDone(this.#snpIo());
        return this.#iret(Number(this.#frame(ExceptionFrame.RIP)));
      case Routine.BOOT_HV_FEATURES:
        return bootHvFeatures(this);
      case Routine.BOOT_GHCB_SHARED:
        return bootGhcbShared(this);
      case Routine.SNP_ACCEPT:
        return acceptMemory(this);
      case Routine.PSC_ISSUE:
        return pscIssue(this);
      case Routine.PSC_CONTINUE:
        return pscContinue(this);
      case Routine.SNP_BOOT_SHARED:
        return bootBuffersShared(this);
      case Routine.SMP_NEXT:
        return smpNext(this);
      case Routine.SMP_AP_CREATED:
        return smpApCreated(this);
      case Routine.AP_ENTRY:
        return apEntry(this);
      case Routine.AP_GHCB_REGISTERED:
        return apGhcbRegistered(this);
      case Routine.AP_IDLE:
        return { kind: "hlt", resume: this.#at(Routine.AP_IDLE) };
      case Routine.SET_MEMORY_SHARED:
        return setMemory(this, true);
      case Routine.SET_MEMORY_PRIVATE:
        return setMemory(this, false);
      case Routine.KAPI_RETURN:
        return kapiReturn(this);
      default:
        return { kind: "shutdown", message: `kernel: no routine at offset ${routine}` };
    }
  }

  #bootEntry(): NativeStep {
    const p = this.profile;
    if (this.#boot(BootInfo.MAGIC) !== BOOT_MAGIC) {
      const why = this.cpu.sevActive
        ? `guest OS ${p.name} does not support SEV: its page tables leave the C-bit clear, so it reads its own encrypted memory as ciphertext (boot information unreadable)`
        : `guest OS ${p.name}: boot information is corrupt`;
      return { kind: "shutdown", message: why };
    }
    const status = this.cpu.rdmsr(MSR_SEV_STATUS);
    if (status & 2n && p.sevEs) {
      this.cpu.wrmsr(MSR_GHCB, BigInt(GhcbMsr.SEV_INFO_REQ));
      return { kind: "vmgexit", resume: this.#at(Routine.BOOT_SEV_INFO) };
    }
    return { kind: "jump", rip: this.#at(Routine.BOOT_DONE) };
  }

  #bootSevInfo(): NativeStep {
    const v = this.cpu.rdmsr(MSR_GHCB);
    if (msrCode(v) !== GhcbMsr.SEV_INFO_RESP) return this.#terminate(Termination.GENERAL);
    const hvMax = Number((v >> 48n) & 0xffffn);
    const hvMin = Number((v >> 32n) & 0xffffn);
    const mine = this.profile.ghcbProtocol ?? { min: 1, max: 1 };
    const version = Math.min(hvMax, mine.max, GHCB_PROTOCOL_MAX);
    if (version < Math.max(hvMin, mine.min)) return this.#terminate(Termination.PROTOCOL_UNSUPPORTED);
    this.#setBoot(BootInfo.PROTOCOL, BigInt(version));
    this.#setBoot(BootInfo.C_BIT, (v >> 24n) & 0xffn);
    if (this.#snp) {
      // SEV-SNP needs GHCB version 2 and a hypervisor that says it supports SNP (Linux `sev_enable`).
      if (version < 2) return this.#terminate(Termination.SNP_UNSUPPORTED);
      return requestHvFeatures(this);
    }
    if (version >= 2) return registerGhcb(this);
    return { kind: "jump", rip: this.#at(Routine.BOOT_DONE) };
  }

  #bootGhcbRegistered(): NativeStep {
    const v = this.cpu.rdmsr(MSR_GHCB);
    const gfn = this.#boot(BootInfo.GHCB_GPA) >> 12n;
    if (msrCode(v) !== GhcbMsr.REG_GPA_RESP || v >> 12n !== gfn) {
      return this.#terminate(Termination.GHCB_REGISTRATION);
    }
    if (this.#snp && bootTable(this)) return { kind: "jump", rip: this.#at(Routine.SNP_ACCEPT) };
    return { kind: "jump", rip: this.#at(Routine.BOOT_DONE) };
  }

  #bootDone(): NativeStep {
    if (this.cpu.sevEsActive && this.profile.sevEs) this.cpu.wrmsr(MSR_GHCB, this.#boot(BootInfo.GHCB_GPA));
    const text = this.#bootMessages();
    if (text.length === 0) return { kind: "jump", rip: Number(this.#boot(BootInfo.ENTRY)) };
    // The messages go out through printk (ISA code, real OUT exits), which comes back to PROGRAM_START.
    this.cpu.write(KLOG_GPA, text);
    this.cpu.gpr[Reg.rsi] = BigInt(KLOG_GPA);
    this.cpu.gpr[Reg.rcx] = BigInt(text.length);
    this.cpu.gpr[Reg.rdi] = BigInt(this.#at(Routine.PROGRAM_START));
    return { kind: "jump", rip: PRINTK_GPA };
  }

  /**
   * What the kernel says at boot: the efi_secret driver's lines when it has the driver and a secret area, and an SNP
   * kernel with APs how many CPUs came up.
   */
  #bootMessages(): Uint8Array {
    const size = Number(this.#boot(BootInfo.SECRET_SIZE));
    const lines =
      this.profile.efiSecret && size > 0
        ? efiSecretMessages(this.cpu.read(Number(this.#boot(BootInfo.SECRET_GPA)), size))
        : [];
    if (this.#snp) lines.push(...smpMessages(this));
    if (lines.length === 0) return new Uint8Array(0);
    const text = Buffer.from(lines.map((l) => `${l}\n`).join(""), "utf8");
    return text.subarray(0, KLOG_SIZE);
  }

  #snpIo(): SnpKernelIo {
    return {
      cpu: this.cpu,
      boot: (f) => this.#boot(f),
      setBoot: (f, v) => this.#setBoot(f, v),
      protocol: Number(this.#boot(BootInfo.PROTOCOL)),
    };
  }

  #agentCallback(): NativeStep {
    if (agentCallback(this.#snpIo())) {
      this.cpu.wrmsr(MSR_GHCB, this.#boot(BootInfo.GHCB_GPA));
      return { kind: "vmgexit", resume: this.#at(Routine.AGENT_REPORT_DONE) };
    }
    return this.#iret(Number(this.#frame(ExceptionFrame.RIP)));
  }

  #programStart(): NativeStep {
    for (const r of [Reg.rax, Reg.rcx, Reg.rsi, Reg.rdi]) this.cpu.gpr[r] = 0n;
    return { kind: "jump", rip: Number(this.#boot(BootInfo.ENTRY)) };
  }

  /** Decodes the instruction that raised #VC and builds the handler's context. */
  #vcContext(): { ctx: VcContext; rip: number; length: number; code: bigint } | NativeStep {
    const rip = Number(this.#frame(ExceptionFrame.RIP));
    const code = this.#frame(ExceptionFrame.ERROR_CODE);
    const ins = decodeInstruction(this.cpu.read(rip, 12));
    if (!ins) {
      return {
        kind: "shutdown",
        message: `kernel: cannot decode the instruction at RIP ${hex(rip)} (#VC ${exitName(code)})`,
      };
    }
    return {
      ctx: { gpr: this.cpu.gpr, state: this.cpu.state, ins, dr7: this.#boot(BootInfo.DR7) },
      rip,
      length: ins.length,
      code,
    };
  }

  /** Returns from the exception to `rip`, restoring RSP and RFLAGS from the frame (IRET). */
  #iret(rip: number): NativeStep {
    this.cpu.gpr[Reg.rsp] = this.#frame(ExceptionFrame.RSP);
    this.cpu.state.rflags = this.#frame(ExceptionFrame.RFLAGS);
    return { kind: "jump", rip };
  }

  #vcHandler(): NativeStep {
    const c = this.#vcContext();
    if ("kind" in c) return c;
    const row = vcExit(Number(c.code));
    if (!row || row.handling === "unsupported") return this.#terminate(Termination.GENERAL);
    if (row.handling === "local") {
      row.apply(c.ctx, new GhcbView(new Uint8Array(4096)));
      return this.#iret(c.rip + c.length);
    }
    const ghcbGva = Number(this.#boot(BootInfo.GHCB_GVA));
    const ghcb = new GhcbView(this.cpu.read(ghcbGva, 4096));
    ghcb.invalidate();
    const inputs = row.inputs(c.ctx);
    for (const f of EXPOSABLE_FIELDS) {
      const v = inputs[f];
      if (v !== undefined) ghcb.set(f, v);
    }
    ghcb.set("swExitCode", c.code);
    ghcb.set("swExitInfo1", row.exitInfo1(c.ctx));
    ghcb.set("swExitInfo2", 0n);
    ghcb.usage = GHCB_DEFAULT_USAGE;
    ghcb.protocolVersion = Number(this.#boot(BootInfo.PROTOCOL)) || 1;
    if (c.code === BigInt(SvmExit.WRITE_DR7)) this.#setBoot(BootInfo.DR7, c.ctx.gpr[c.ctx.ins.a]!);
    this.cpu.write(ghcbGva, ghcb.bytes);
    this.cpu.wrmsr(MSR_GHCB, this.#boot(BootInfo.GHCB_GPA));
    return { kind: "vmgexit", resume: this.#at(Routine.VC_COMPLETE) };
  }

  #vcComplete(): NativeStep {
    const c = this.#vcContext();
    if ("kind" in c) return c;
    const row = vcExit(Number(c.code));
    if (!row) return this.#terminate(Termination.GENERAL);
    const ghcb = new GhcbView(this.cpu.read(Number(this.#boot(BootInfo.GHCB_GVA)), 4096));
    const response = Number(ghcb.get("swExitInfo1") & 0xffffffffn);
    if (response === GhcbResponse.ISSUE_EXCEPTION) {
      const vector = Number(ghcb.get("swExitInfo2") & 0xffn);
      // Linux's MSR accessors survive #GP ("unchecked MSR access error") and read 0; anything else is fatal.
      if (vector === Vector.GP && c.code === BigInt(SvmExit.MSR)) {
        if (c.ctx.ins.opcode === Op.RDMSR) {
          c.ctx.gpr[Reg.rax] = 0n;
          c.ctx.gpr[Reg.rdx] = 0n;
        }
        return this.#iret(c.rip + c.length);
      }
      return {
        kind: "shutdown",
        message: `guest OS ${this.profile.name}: the hypervisor injected vector ${vector} for ${exitName(c.code)} at RIP ${hex(c.rip)}`,
      };
    }
    if (response !== GhcbResponse.OK) return this.#terminate(Termination.GENERAL);
    for (const f of row.outputs(c.ctx)) if (!ghcb.isValid(f)) return this.#terminate(Termination.GENERAL);
    row.apply(c.ctx, ghcb);
    return this.#iret(c.rip + c.length);
  }

  #unhandled(): NativeStep {
    const vector = Number(this.#frame(ExceptionFrame.VECTOR));
    const code = this.#frame(ExceptionFrame.ERROR_CODE);
    const rip = this.#frame(ExceptionFrame.RIP);
    const name = this.profile.name;
    if (vector === Vector.VC) {
      return {
        kind: "shutdown",
        message: `guest OS ${name} does not support SEV-ES: unhandled #VC on ${exitName(code)} at RIP ${hex(rip)}`,
      };
    }
    const what = { 6: "#UD (invalid opcode)", 13: "#GP (general protection)", 14: "#PF (page fault)" }[
      vector
    ];
    const extra = vector === Vector.PF ? ` accessing ${hex(this.cpu.state.cr2)}` : "";
    return {
      kind: "shutdown",
      message: `guest OS ${name}: kernel panic: unhandled ${what ?? `exception ${vector}`} at RIP ${hex(rip)}${extra} (error code ${hex(code)})`,
    };
  }
}
