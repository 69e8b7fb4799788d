/**
 * The devices and CPU features a host emulates for its guests, KVM/QEMU style: the guest-visible CPUID, a few MSRs,
 * I/O ports (a serial console, the POST port, an isa-debug-exit power-off port), KVM's hypercall numbers, a TSC.
 * The same emulation serves every mode: for plain SEV the host reads the operands from the plaintext save area,
 * for SEV-ES from the GHCB fields the guest marked valid — and, for SEV-ES, operands the guest did not expose are
 * zero here, exactly as KVM's zeroed register copy.
 */
import type { CpuModel } from "../../machine/cpu-models.ts";
import { SvmExit } from "../../machine/exit-codes.ts";
import { Ioio, ioioSize } from "../../machine/nae-exits.ts";
import type { SecurityMode } from "../../machine/vmcb.ts";

/** The registers a host emulation reads and writes (what KVM syncs for SEV-ES guests). */
export interface HostRegs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  cpl: bigint;
  xcr0: bigint;
}

export interface EmulationResult {
  /** Register outputs (other registers unchanged). */
  regs: Partial<HostRegs>;
  /** Ask the guest to take an exception (KVM: inject #GP for an unknown MSR). */
  inject?: { vector: number; errorCode?: number };
  /** The guest asked for something the host ends the VM for (power-off). */
  stop?: string;
}

export const Port = { SERIAL: 0x3f8, SERIAL_LSR: 0x3fd, POST: 0x80, DEBUG_EXIT: 0xf4 } as const;
export const Msr = { APIC_BASE: 0x1b, TSC_AUX: 0xc000_0103, EFER: 0xc000_0080 } as const;
/** KVM hypercall numbers the host knows (include/uapi/linux/kvm_para.h). */
export const KvmHypercall = { VAPIC_POLL_IRQ: 1n, KICK_CPU: 5n } as const;
const KVM_ENOSYS = 1000n;
const KVM_EPERM = 1n;

const LO32 = 0xffffffffn;
const M64 = (1n << 64n) - 1n;

/** Console bytes a host keeps per guest. */
export const CONSOLE_LIMIT = 64 * 1024;
/** Trimmed in steps, not per byte, so a chatty guest costs amortized O(1) per byte. */
const CONSOLE_SLACK = 4 * 1024;

/** One guest's devices. State (console text, MSRs, TSC) is per guest and deterministic. */
export class HostDevices {
  readonly model: CpuModel;
  readonly mode: SecurityMode;
  /**
   * What the guest wrote to the serial console: the last CONSOLE_LIMIT bytes (a guest can write forever; the host
   * keeps a bounded tail, as a serial log with rotation would), and how many earlier bytes were dropped.
   */
  console = "";
  consoleDropped = 0;
  /** Last value written to the POST port (0x80). */
  postCode = 0;
  dr7 = 0x400n;
  readonly #msrs = new Map<number, bigint>([
    [Msr.APIC_BASE, 0xfee0_0900n],
    [Msr.TSC_AUX, 0n],
  ]);
  readonly #writableMsrs = new Set<number>([Msr.TSC_AUX]);
  #tsc = 0n;

  #consoleByte(b: number): void {
    this.console += String.fromCharCode(b);
    if (this.console.length > CONSOLE_LIMIT + CONSOLE_SLACK) {
      const cut = this.console.length - CONSOLE_LIMIT;
      this.console = this.console.slice(cut);
      this.consoleDropped += cut;
    }
  }

  constructor(model: CpuModel, mode: SecurityMode) {
    this.model = model;
    this.mode = mode;
  }

  /** The CPUID the guest sees (a small, fixed subset; unknown leaves read zero, as KVM's do). */
  cpuid(leaf: number, subleaf: number, xcr0: bigint): [number, number, number, number] {
    const vendor: [number, number, number] = [0x68747541, 0x444d4163, 0x69746e65];
    switch (leaf) {
      case 0:
        return [0xd, vendor[0], vendor[1], vendor[2]];
      case 1:
        // ECX bit 31: running under a hypervisor.
        return [this.model.cpuidSignature, 0x0000_0800, 0x8000_0000 >>> 0, 0x178b_fbff];
      case 0xd: {
        // XSAVE area size depends on XCR0 — why KVM needs XCR0 for this leaf (docs/sev-interface.md §12.3).
        if (subleaf !== 0) return [0, 0, 0, 0];
        const size = xcr0 & 4n ? 0x340 : 0x240;
        return [0x7, size, 0x340, 0];
      }
      case 0x8000_0000:
        return [0x8000_001f, vendor[0], vendor[1], vendor[2]];
      case 0x8000_001f: {
        // What QEMU passes a guest: SEV / SEV-ES / SEV-SNP bits (1, 3, 4), the C-bit position, reduced-phys-bits 1.
        const eax =
          this.mode === "none" ? 0 : this.mode === "sev" ? 0x2 : this.mode === "sev-snp" ? 0x1a : 0xa;
        const ebx = this.mode === "none" ? 0 : (this.model.cBit & 0x3f) | (1 << 6);
        return [eax, ebx, 0, 0];
      }
      default:
        return [0, 0, 0, 0];
    }
  }

  tsc(): bigint {
    this.#tsc += 2_000_003n;
    return this.#tsc;
  }

  /**
   * Emulates one intercepted instruction from its exit code, exit_info_1 and the registers the host can see.
   * Never throws: anything unknown becomes an injected exception or zeroes, as in KVM.
   */
  emulate(exitCode: number, info1: bigint, r: HostRegs): EmulationResult {
    switch (exitCode) {
      case SvmExit.CPUID: {
        const [a, b, c, d] = this.cpuid(Number(r.rax & LO32), Number(r.rcx & LO32), r.xcr0);
        return {
          regs: { rax: BigInt(a >>> 0), rbx: BigInt(b >>> 0), rcx: BigInt(c >>> 0), rdx: BigInt(d >>> 0) },
        };
      }
      case SvmExit.IOIO:
        return this.#io(info1, r);
      case SvmExit.MSR: {
        const msr = Number(r.rcx & LO32);
        if (info1 & 1n) {
          if (!this.#writableMsrs.has(msr)) return { regs: {}, inject: { vector: 13, errorCode: 0 } };
          this.#msrs.set(msr, ((r.rdx & LO32) << 32n) | (r.rax & LO32));
          return { regs: {} };
        }
        const v = this.#msrs.get(msr);
        if (v === undefined) return { regs: {}, inject: { vector: 13, errorCode: 0 } };
        return { regs: { rax: v & LO32, rdx: v >> 32n } };
      }
      case SvmExit.VMMCALL: {
        if (r.cpl !== 0n) return { regs: { rax: -KVM_EPERM & M64 } };
        if (r.rax === KvmHypercall.VAPIC_POLL_IRQ || r.rax === KvmHypercall.KICK_CPU)
          return { regs: { rax: 0n } };
        return { regs: { rax: -KVM_ENOSYS & M64 } };
      }
      case SvmExit.RDTSC:
      case SvmExit.RDTSCP: {
        const t = this.tsc();
        const regs: Partial<HostRegs> = { rax: t & LO32, rdx: t >> 32n };
        if (exitCode === SvmExit.RDTSCP) regs.rcx = this.#msrs.get(Msr.TSC_AUX)! & LO32;
        return { regs };
      }
      case SvmExit.RDPMC:
        return { regs: { rax: 0n, rdx: 0n } };
      case SvmExit.WRITE_DR7:
        this.dr7 = r.rax;
        return { regs: {} };
      case SvmExit.READ_DR7:
        return { regs: { rax: this.dr7 } };
      default:
        // WBINVD, INVD, MONITOR, MWAIT: nothing to emulate (KVM treats MWAIT as NOP).
        return { regs: {} };
    }
  }

  #io(info1: bigint, r: HostRegs): EmulationResult {
    const port = Number((info1 >> BigInt(Ioio.PORT_SHIFT)) & 0xffffn);
    const size = ioioSize(info1) || 1;
    const mask = (1n << BigInt(8 * size)) - 1n;
    if (info1 & BigInt(Ioio.TYPE_IN)) {
      const v = port === Port.SERIAL_LSR ? 0x60n : mask;
      return { regs: { rax: v & mask } };
    }
    const v = r.rax & mask;
    if (port === Port.SERIAL) this.#consoleByte(Number(v & 0xffn));
    else if (port === Port.POST) this.postCode = Number(v);
    else if (port === Port.DEBUG_EXIT) {
      return { regs: {}, stop: `the guest powered off through isa-debug-exit (code ${v})` };
    }
    return { regs: {} };
  }
}
