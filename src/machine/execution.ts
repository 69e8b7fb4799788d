/**
 * One VMRUN's worth of guest execution: the interpreter of the guest ISA (isa.ts), intercepts, exception delivery
 * (#VC for SEV-ES non-automatic exits, docs/sev-interface.md §12.5), native kernel steps, and the reason the run ends.
 * `machine.ts` wraps it with the VMRUN checks and the state load/save that make SEV and SEV-ES differ.
 */
import type { Vmsa } from "../measure/vmsa.ts";
import { isNonAutomatic, SvmExit } from "./exit-codes.ts";
import { MSR_GHCB, MSR_SEV_STATUS } from "./ghcb.ts";
import { ALU_RI_BASE, ALU_RR_BASE, GPR_NAMES, LENGTH_OF, LONG, NO_REG, Op, Reg } from "./isa.ts";
import { GuestPageFault, type MemoryPath, NestedPageFault, PageNotValidated } from "./memory-path.ts";
import { ioioExitInfo } from "./nae-exits.ts";
import {
  ExceptionFrame,
  IDT_ENTRY_SIZE,
  isNativeRip,
  type NativeCpu,
  type NativeGuestCode,
  type NativeStep,
  Vector,
} from "./native-code.ts";
import { decodeRmpadjustAttributes, PF_RMP, type Rmp, RmpReturn } from "./rmp.ts";
import type { VmcbControl } from "./vmcb.ts";

// Local aliases: tooling may compile imported bindings to getters, which would run on every instruction.
const O = Op;
const LEN = LENGTH_OF;
const EXIT = SvmExit;
const M64 = (1n << 64n) - 1n;
const CF = 1n;
const ZF = 1n << 6n;
const SF = 1n << 7n;
const PAGE = 4096;

/** Why a run ended: an exit code and its exit information, as the CPU writes them into the VMCB. */
export interface ExitRequest {
  code: number;
  info1: bigint;
  info2: bigint;
  nRip: bigint;
  /** SHUTDOWN only: what the guest kernel would have printed (see NativeStep "shutdown"). */
  guestMessage?: string;
}

/** The hardware the interpreter asks for things outside the guest (deterministic per machine). */
export interface Hardware {
  cpuid(leaf: number, subleaf: number): { eax: number; ebx: number; ecx: number; edx: number };
  rdrand(): bigint;
  tsc(): bigint;
}

/** Ground-truth instrumentation for tests and demos — the omniscient observer, never the hypervisor. */
export interface MachineObserver {
  /** Every RDRAND result, as the guest receives it. */
  onRdrand?(value: bigint): void;
  /** A guest store of `size` bytes (the value, zero-extended) to guest-virtual `gva`. */
  onStore?(gva: number, size: number, value: bigint): void;
  /** An intercepted instruction is about to exit or raise #VC: the guest's registers at that moment. */
  onIntercept?(exitCode: number, gpr: ArrayLike<bigint>, rip: number): void;
  /** The CPU is delivering an exception inside the guest (e.g. #VC 0x404 for an unvalidated SNP page). */
  onException?(vector: number, errorCode: bigint, rip: number): void;
}

export interface ExecutionConfig {
  mem: MemoryPath;
  state: Vmsa;
  gpr: BigUint64Array;
  control: VmcbControl;
  /** The GHCB MSR (MSR 0xC001_0130) of this vCPU; loaded from and stored to the VMCB by the caller. */
  ghcbMsr: { value: bigint };
  hw: Hardware;
  native: NativeGuestCode | undefined;
  observer: MachineObserver | undefined;
  budget: number;
  /** The host's RMP (SEV-SNP enabled host), for PVALIDATE and RMPADJUST. */
  rmp?: Rmp | undefined;
  /** SEV-SNP active for this guest (VMSA SEV_FEATURES bit 0). */
  snpActive?: boolean;
}

/** An exception raised by an instruction, to be delivered through the guest's IDT. */
class GuestException {
  constructor(
    readonly vector: number,
    readonly errorCode: bigint,
  ) {}
}

/** Delivery failed (no handler, or a fault while delivering): the vCPU triple-faults. */
class TripleFault {
  constructor(readonly message: string) {}
}

const VECTOR_NAMES: Record<number, string> = { 6: "#UD", 8: "#DF", 13: "#GP", 14: "#PF", 29: "#VC" };

export function vectorName(v: number): string {
  return VECTOR_NAMES[v] ?? `vector ${v}`;
}

function hex(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

export class Execution {
  readonly #c: ExecutionConfig;
  readonly #sevEs: boolean;
  #rip: number;
  #nativeCpu: NativeCpu | undefined;

  constructor(config: ExecutionConfig) {
    this.#c = config;
    this.#sevEs = config.control.sevEsEnable;
    this.#rip = Number(config.state.rip);
  }

  get #flags(): bigint {
    return this.#c.state.rflags;
  }

  #setFlags(result: bigint, carry: boolean | undefined): void {
    let f = this.#c.state.rflags & ~(ZF | SF | (carry === undefined ? 0n : CF));
    if (result === 0n) f |= ZF;
    if (result >> 63n) f |= SF;
    if (carry) f |= CF;
    this.#c.state.rflags = f;
  }

  /** Delivers an event the hypervisor injected (VMCB EVENTINJ) before the first instruction. */
  inject(vector: number, errorCode: bigint): ExitRequest | undefined {
    const exit = this.#deliverOrDie(vector, errorCode, this.#rip);
    return exit ? this.#finish(exit) : undefined;
  }

  /** Runs until the guest exits; state (RIP included) is left in `state`/`gpr` for the caller to save. */
  run(): ExitRequest {
    const budget = this.#c.budget;
    for (let n = 0; n < budget; n++) {
      const before = this.#rip;
      try {
        const exit = isNativeRip(this.#rip) ? this.#nativeStep() : this.#step();
        if (exit) return this.#finish(exit);
      } catch (e) {
        if (e instanceof NestedPageFault) {
          // The access restarts after the hypervisor fixes the NPT: RIP stays on the faulting instruction.
          this.#rip = before;
          return this.#finish({ code: EXIT.NPF, info1: e.errorCode, info2: BigInt(e.gpa), nRip: 0n });
        }
        if (e instanceof TripleFault) {
          this.#rip = before;
          return this.#finish({
            code: EXIT.SHUTDOWN,
            info1: 0n,
            info2: 0n,
            nRip: 0n,
            guestMessage: e.message,
          });
        }
        if (e instanceof GuestException || e instanceof GuestPageFault || e instanceof PageNotValidated) {
          const vector = e instanceof GuestPageFault ? Vector.PF : e.vector;
          const code = e instanceof GuestPageFault ? BigInt(e.errorCode) : e.errorCode;
          if (!(e instanceof GuestException)) this.#c.state.cr2 = BigInt(e.gva);
          const exit = this.#deliverOrDie(vector, code, before);
          if (exit) return this.#finish(exit);
          continue;
        }
        throw e;
      }
    }
    // Nothing else ended the run: the host's timer interrupt does (automatic exit in every mode).
    return this.#finish({ code: EXIT.INTR, info1: 0n, info2: 0n, nRip: 0n });
  }

  #finish(exit: ExitRequest): ExitRequest {
    this.#c.state.rip = BigInt(this.#rip);
    return exit;
  }

  /** Delivers an exception, or triple-faults into a SHUTDOWN exit (a fault while delivering included). */
  #deliverOrDie(vector: number, errorCode: bigint, rip: number): ExitRequest | undefined {
    try {
      this.#deliver(vector, errorCode, rip);
      return undefined;
    } catch (e) {
      if (e instanceof NestedPageFault) {
        // The instruction re-executes after the hypervisor maps the page and raises the exception again.
        this.#rip = rip;
        return { code: EXIT.NPF, info1: e.errorCode, info2: BigInt(e.gpa), nRip: 0n };
      }
      if (
        e instanceof GuestException ||
        e instanceof GuestPageFault ||
        e instanceof PageNotValidated ||
        e instanceof TripleFault
      ) {
        this.#rip = rip;
        return {
          code: EXIT.SHUTDOWN,
          info1: 0n,
          info2: 0n,
          nRip: 0n,
          guestMessage: `triple fault: ${vectorName(vector)} (error code ${hex(errorCode)}) at RIP ${hex(rip)} could not be delivered`,
        };
      }
      throw e;
    }
  }

  /**
   * Exception delivery: the IDT entry at idtr.base + 16·vector must be present; the CPU writes the exception frame
   * at tr.base (the per-CPU "IST" page), points RSP there and jumps to the handler.
   */
  #deliver(vector: number, errorCode: bigint, rip: number): void {
    const s = this.#c.state;
    const mem = this.#c.mem;
    this.#c.observer?.onException?.(vector, errorCode, rip);
    const entry = Number(s.idtr.base) + vector * IDT_ENTRY_SIZE;
    const handler = mem.readU64(entry);
    const flags = mem.readU64(entry + 8);
    if ((flags & 1n) === 0n) {
      throw new TripleFault(
        `triple fault: no IDT entry for ${vectorName(vector)} (error code ${hex(errorCode)}) at RIP ${hex(rip)}`,
      );
    }
    const frame = Number(s.tr.base);
    const gpr = this.#c.gpr;
    mem.writeU64(frame + ExceptionFrame.VECTOR, BigInt(vector));
    mem.writeU64(frame + ExceptionFrame.ERROR_CODE, errorCode);
    mem.writeU64(frame + ExceptionFrame.RIP, BigInt(rip));
    mem.writeU64(frame + ExceptionFrame.RSP, gpr[Reg.rsp]!);
    mem.writeU64(frame + ExceptionFrame.RFLAGS, s.rflags);
    gpr[Reg.rsp] = BigInt(frame);
    this.#rip = Number(handler);
  }

  /**
   * An intercepted event. Under SEV-ES a non-automatic one becomes #VC in the guest (RIP on the instruction, exit
   * code as error code); otherwise the vCPU exits. For automatic exits of SEV-ES guests RIP moves past the
   * instruction (the hypervisor cannot); for other guests RIP stays and nRIP tells the hypervisor where to go.
   */
  #intercept(code: number, info1: bigint, info2: bigint, next: number): ExitRequest | undefined {
    this.#c.observer?.onIntercept?.(code, this.#c.gpr, this.#rip);
    if (this.#sevEs && isNonAutomatic(code)) throw new GuestException(Vector.VC, BigInt(code));
    const nRip = BigInt(next);
    if (this.#sevEs) this.#rip = next;
    return { code, info1, info2, nRip: this.#sevEs ? 0n : nRip };
  }

  #intercepted(code: number): boolean {
    return this.#c.control.intercepts.has(code);
  }

  /** RDMSR of MSRs the CPU implements itself (not forwarded to the hypervisor). */
  #hwRdmsr(msr: number): bigint {
    const s = this.#c.state;
    switch (msr) {
      case MSR_GHCB:
        return this.#c.ghcbMsr.value;
      case MSR_SEV_STATUS:
        // SEV_STATUS (MSR C001_0131): bit 0 SEV, bit 1 SEV-ES, bit 2 SEV-SNP active.
        return (
          (this.#c.control.sevEnable ? 1n : 0n) | (this.#sevEs ? 2n : 0n) | (this.#c.snpActive ? 4n : 0n)
        );
      case 0xc000_0080:
        return s.efer;
      case 0xc000_0103:
        return BigInt(s.tscAux);
      default:
        throw new GuestException(Vector.GP, 0n);
    }
  }

  #hwWrmsr(msr: number, v: bigint): void {
    const s = this.#c.state;
    switch (msr) {
      case MSR_GHCB:
        this.#c.ghcbMsr.value = v;
        return;
      case 0xc000_0103:
        s.tscAux = Number(v & 0xffffffffn);
        return;
      default:
        // SEV_STATUS is read-only; EFER writes are not modelled.
        throw new GuestException(Vector.GP, 0n);
    }
  }

  /** Whether RDMSR/WRMSR of `msr` goes to the hypervisor. The GHCB MSR and SEV_STATUS never do under SEV-ES. */
  #msrIntercepted(msr: number): boolean {
    if (this.#sevEs && (msr === MSR_GHCB || msr === MSR_SEV_STATUS)) return false;
    return this.#intercepted(EXIT.MSR) && !this.#c.control.msrPassthrough.has(msr);
  }

  #native(): NativeCpu {
    if (this.#nativeCpu) return this.#nativeCpu;
    const c = this.#c;
    this.#nativeCpu = {
      gpr: c.gpr,
      state: c.state,
      readU64: (a) => c.mem.readU64(a),
      writeU64: (a, v) => c.mem.writeU64(a, v),
      read: (a, n) => c.mem.read(a, n),
      write: (a, d) => c.mem.write(a, d),
      rdmsr: (msr) => this.#hwRdmsr(msr),
      wrmsr: (msr, v) => this.#hwWrmsr(msr, v),
      pvalidate: (gva, pageSize, validate) =>
        this.#rmpOp(true, BigInt(gva), BigInt(pageSize), validate ? 1n : 0n),
      rmpadjust: (gva, pageSize, attributes) =>
        this.#rmpOp(false, BigInt(gva), BigInt(pageSize), attributes).code,
      invalidateTlb: () => c.mem.invalidateTlb(),
      sevActive: c.control.sevEnable,
      sevEsActive: this.#sevEs,
    };
    return this.#nativeCpu;
  }

  #nativeStep(): ExitRequest | undefined {
    const native = this.#c.native;
    const rip = this.#rip;
    if (!native) throw new GuestException(Vector.PF, 0x10n);
    let step: NativeStep;
    try {
      step = native.run(rip, this.#native());
    } catch (e) {
      // A kernel routine that faults on its own memory is a kernel bug: it dies, as a real kernel would.
      if (e instanceof GuestException || e instanceof GuestPageFault || e instanceof PageNotValidated) {
        throw new TripleFault(
          `kernel fault (${e instanceof GuestPageFault ? "#PF" : vectorName(e.vector)}) in kernel code at RIP ${hex(rip)}`,
        );
      }
      throw e;
    }
    switch (step.kind) {
      case "jump":
        this.#rip = step.rip;
        return undefined;
      case "vmgexit":
        if (!this.#sevEs) throw new TripleFault(`VMGEXIT outside SEV-ES in kernel code at RIP ${hex(rip)}`);
        this.#rip = step.resume;
        return { code: EXIT.VMGEXIT, info1: 0n, info2: 0n, nRip: 0n };
      case "hlt":
        if (!this.#intercepted(EXIT.HLT)) {
          this.#rip = step.resume;
          return { code: EXIT.INTR, info1: 0n, info2: 0n, nRip: 0n };
        }
        return this.#intercept(EXIT.HLT, 0n, 0n, step.resume);
      case "shutdown":
        return { code: EXIT.SHUTDOWN, info1: 0n, info2: 0n, nRip: 0n, guestMessage: step.message };
    }
  }

  /** Register operand access; slots above 15 (other than "none") are an invalid encoding: #UD. */
  readonly #reg = (r: number): bigint => {
    if (r > 15) throw new GuestException(Vector.UD, 0n);
    return this.#c.gpr[r]!;
  };

  readonly #setReg = (r: number, v: bigint): void => {
    if (r > 15) throw new GuestException(Vector.UD, 0n);
    this.#c.gpr[r] = v & M64;
  };

  /** The effective address [b + imm] (b = NO_REG: absolute). */
  #addr(b: number, imm: bigint): number {
    return Number(((b === NO_REG ? 0n : this.#reg(b)) + imm) & M64);
  }

  /** Executes one ISA instruction. */
  #step(): ExitRequest | undefined {
    const c = this.#c;
    const rip = this.#rip;
    const gpr = c.gpr;
    const off = rip % PAGE;
    let { data, view } = c.mem.fetchPage(rip);
    let at = off;
    const op = data[off]!;
    const len = LEN[op]!;
    if (len === 0) throw new GuestException(Vector.UD, 0n);
    if (off + len > PAGE) {
      // An instruction straddling two pages: fetch both halves (each a private fetch).
      const first = data.subarray(off);
      const second = c.mem.fetchPage(rip + first.length).data.subarray(0, len - first.length);
      data = new Uint8Array(len);
      data.set(first);
      data.set(second, first.length);
      view = new DataView(data.buffer);
      at = 0;
    }
    const a = data[at + 1]!;
    const b = data[at + 2]!;
    const sz = data[at + 3]!;
    const imm = len === LONG ? view.getBigUint64(at + 4, true) : 0n;
    const next = rip + len;
    const reg = this.#reg;
    const setReg = this.#setReg;

    if (op >= ALU_RR_BASE && op < ALU_RR_BASE + 9) {
      this.#alu(op - ALU_RR_BASE, a, reg(b), setReg, reg);
      this.#rip = next;
      return undefined;
    }
    if (op >= ALU_RI_BASE && op < ALU_RI_BASE + 9) {
      this.#alu(op - ALU_RI_BASE, a, imm, setReg, reg);
      this.#rip = next;
      return undefined;
    }
    switch (op) {
      case O.NOP:
        break;
      case O.MOV:
        setReg(a, reg(b));
        break;
      case O.MOVI:
        setReg(a, imm);
        break;
      case O.LOAD:
        if (sz !== 1 && sz !== 2 && sz !== 4 && sz !== 8) throw new GuestException(Vector.UD, 0n);
        setReg(a, sz === 8 ? c.mem.readU64(this.#addr(b, imm)) : c.mem.readSized(this.#addr(b, imm), sz));
        break;
      case O.STORE:
        if (sz !== 1 && sz !== 2 && sz !== 4 && sz !== 8) throw new GuestException(Vector.UD, 0n);
        if (sz === 8) c.mem.writeU64(this.#addr(b, imm), reg(a));
        else c.mem.writeSized(this.#addr(b, imm), sz, reg(a));
        c.observer?.onStore?.(this.#addr(b, imm), sz, reg(a) & ((1n << BigInt(8 * sz)) - 1n));
        break;
      case O.PUSH: {
        const sp = (gpr[Reg.rsp]! - 8n) & M64;
        c.mem.writeU64(Number(sp), reg(a));
        gpr[Reg.rsp] = sp;
        break;
      }
      case O.POP: {
        const v = c.mem.readU64(Number(gpr[Reg.rsp]!));
        gpr[Reg.rsp] = (gpr[Reg.rsp]! + 8n) & M64;
        setReg(a, v);
        break;
      }
      case O.CALL: {
        const sp = (gpr[Reg.rsp]! - 8n) & M64;
        c.mem.writeU64(Number(sp), BigInt(next));
        gpr[Reg.rsp] = sp;
        this.#rip = Number(imm);
        return undefined;
      }
      case O.RET: {
        const target = c.mem.readU64(Number(gpr[Reg.rsp]!));
        gpr[Reg.rsp] = (gpr[Reg.rsp]! + 8n) & M64;
        this.#rip = Number(target);
        return undefined;
      }
      case O.JMP:
        this.#rip = Number(imm);
        return undefined;
      case O.JMPR:
        this.#rip = Number(reg(a));
        return undefined;
      case O.JZ:
      case O.JNZ:
      case O.JB:
      case O.JAE: {
        const f = this.#flags;
        const taken =
          op === O.JZ
            ? (f & ZF) !== 0n
            : op === O.JNZ
              ? (f & ZF) === 0n
              : op === O.JB
                ? (f & CF) !== 0n
                : (f & CF) === 0n;
        this.#rip = taken ? Number(imm) : next;
        return undefined;
      }
      case O.RDRAND: {
        const v = c.hw.rdrand();
        c.observer?.onRdrand?.(v);
        setReg(a, v);
        break;
      }
      case O.UD2:
        throw new GuestException(Vector.UD, 0n);
      case O.HLT:
        if (this.#intercepted(EXIT.HLT)) return this.#intercept(EXIT.HLT, 0n, 0n, next);
        // Not intercepted: the vCPU sleeps until the host's next interrupt.
        this.#rip = next;
        return { code: EXIT.INTR, info1: 0n, info2: 0n, nRip: 0n };
      case O.PAUSE:
        if (this.#intercepted(EXIT.PAUSE)) return this.#intercept(EXIT.PAUSE, 0n, 0n, next);
        break;
      case O.VMGEXIT:
        if (this.#sevEs) {
          c.observer?.onIntercept?.(EXIT.VMGEXIT, gpr, rip);
          this.#rip = next;
          return { code: EXIT.VMGEXIT, info1: 0n, info2: 0n, nRip: 0n };
        }
        // Outside SEV-ES, VMGEXIT (`rep vmmcall`) is VMMCALL.
        return this.#vmmcall(next);
      case O.VMMCALL:
        return this.#vmmcall(next);
      default: {
        const exit = this.#system(op, a, b, sz, imm, next, reg, setReg);
        if (exit !== "done") return exit;
      }
    }
    this.#rip = next;
    return undefined;
  }

  #vmmcall(next: number): ExitRequest | undefined {
    if (this.#intercepted(EXIT.VMMCALL)) return this.#intercept(EXIT.VMMCALL, 0n, 0n, next);
    throw new GuestException(Vector.UD, 0n);
  }

  /** CPUID, I/O, MSRs, TSC, caches, DR7: intercepted → exit/#VC; otherwise the hardware's own behaviour. */
  #system(
    op: number,
    a: number,
    _b: number,
    sz: number,
    imm: bigint,
    next: number,
    reg: (r: number) => bigint,
    setReg: (r: number, v: bigint) => void,
  ): ExitRequest | undefined | "done" {
    const c = this.#c;
    const gpr = c.gpr;
    const lo32 = (v: bigint) => v & 0xffffffffn;
    const simple = (code: number): ExitRequest | undefined | "skip" =>
      this.#intercepted(code) ? this.#intercept(code, 0n, 0n, next) : "skip";
    switch (op) {
      case O.CPUID: {
        const r = simple(EXIT.CPUID);
        if (r !== "skip") return r;
        const v = c.hw.cpuid(Number(lo32(gpr[Reg.rax]!)), Number(lo32(gpr[Reg.rcx]!)));
        gpr[Reg.rax] = BigInt(v.eax >>> 0);
        gpr[Reg.rbx] = BigInt(v.ebx >>> 0);
        gpr[Reg.rcx] = BigInt(v.ecx >>> 0);
        gpr[Reg.rdx] = BigInt(v.edx >>> 0);
        return "done";
      }
      case O.IN:
      case O.OUT: {
        if (sz !== 1 && sz !== 2 && sz !== 4) throw new GuestException(Vector.UD, 0n);
        const port = Number((a === Reg.rdx ? gpr[Reg.rdx]! : imm) & 0xffffn);
        const isIn = op === O.IN;
        if (this.#intercepted(EXIT.IOIO)) {
          return this.#intercept(EXIT.IOIO, ioioExitInfo(port, sz, isIn), BigInt(next), next);
        }
        // No device answers an unintercepted port: reads float high, writes vanish.
        if (isIn) gpr[Reg.rax] = mergeIn(gpr[Reg.rax]!, sz, (1n << BigInt(8 * sz)) - 1n);
        return "done";
      }
      case O.RDMSR:
      case O.WRMSR: {
        const msr = Number(lo32(gpr[Reg.rcx]!));
        const write = op === O.WRMSR;
        if (this.#msrIntercepted(msr)) return this.#intercept(EXIT.MSR, write ? 1n : 0n, 0n, next);
        if (write) {
          this.#hwWrmsr(msr, (lo32(gpr[Reg.rdx]!) << 32n) | lo32(gpr[Reg.rax]!));
        } else {
          const v = this.#hwRdmsr(msr);
          gpr[Reg.rax] = lo32(v);
          gpr[Reg.rdx] = v >> 32n;
        }
        return "done";
      }
      case O.RDTSC:
      case O.RDTSCP: {
        const code = op === O.RDTSC ? EXIT.RDTSC : EXIT.RDTSCP;
        const r = simple(code);
        if (r !== "skip") return r;
        const t = c.hw.tsc();
        gpr[Reg.rax] = lo32(t);
        gpr[Reg.rdx] = t >> 32n;
        if (op === O.RDTSCP) gpr[Reg.rcx] = BigInt(c.state.tscAux >>> 0);
        return "done";
      }
      case O.RDPMC: {
        const r = simple(EXIT.RDPMC);
        if (r !== "skip") return r;
        gpr[Reg.rax] = 0n;
        gpr[Reg.rdx] = 0n;
        return "done";
      }
      case O.WBINVD:
      case O.INVD:
      case O.MONITOR:
      case O.MWAIT: {
        const code =
          op === O.WBINVD
            ? EXIT.WBINVD
            : op === O.INVD
              ? EXIT.INVD
              : op === O.MONITOR
                ? EXIT.MONITOR
                : EXIT.MWAIT;
        const r = simple(code);
        return r === "skip" ? "done" : r;
      }
      case O.MOV_TO_DR7: {
        if (this.#intercepted(EXIT.WRITE_DR7)) return this.#intercept(EXIT.WRITE_DR7, 0n, 0n, next);
        c.state.dr7 = reg(a);
        return "done";
      }
      case O.MOV_FROM_DR7: {
        if (this.#intercepted(EXIT.READ_DR7)) return this.#intercept(EXIT.READ_DR7, 0n, 0n, next);
        setReg(a, c.state.dr7);
        return "done";
      }
      case O.PVALIDATE:
      case O.RMPADJUST:
        this.#rmpInstruction(op === O.PVALIDATE);
        return "done";
      default:
        throw new GuestException(Vector.UD, 0n);
    }
  }

  /**
   * PVALIDATE (RAX = GVA, RCX = page size 0 = 4 KiB / 1 = 2 MiB, RDX = 1 validate / 0 invalidate) and RMPADJUST
   * (RAX = GVA, RCX = page size, RDX = attributes: bits 7:0 target VMPL, 15:8 permission mask, 16 VMSA — Linux
   * `pvalidate()` / `rmpadjust()`), APM vol. 3 and vol. 2 sections 15.36.6–15.36.7: RAX ← the return code; PVALIDATE
   * sets CF when Validated did not change and clears it otherwise. #UD outside an SNP-active guest; an RMP check
   * that fails is #VMEXIT(NPF).
   */
  #rmpInstruction(pvalidate: boolean): void {
    const gpr = this.#c.gpr;
    const r = this.#rmpOp(pvalidate, gpr[Reg.rax]!, gpr[Reg.rcx]!, gpr[Reg.rdx]!);
    gpr[Reg.rax] = BigInt(r.code);
    const s = this.#c.state;
    s.rflags = r.cf ? s.rflags | CF : s.rflags & ~CF;
  }

  /** The RMP instruction itself on its three operands; kernel code (native) issues it the same way. */
  #rmpOp(pvalidate: boolean, rax: bigint, rcx: bigint, rdx: bigint): { code: number; cf: boolean } {
    const c = this.#c;
    const rmp = c.rmp;
    if (!rmp || !c.snpActive) throw new GuestException(Vector.UD, 0n);
    const { gpa, hpa } = c.mem.translateOperand(Number(rax & 0x0000_ffff_ffff_ffffn));
    const asid = c.control.asid;
    let r: ReturnType<Rmp["pvalidate"]>;
    if (rcx > 1n) {
      r = { kind: "done", code: RmpReturn.FAIL_INPUT, cf: false };
    } else {
      const pageSize = Number(rcx) as 0 | 1;
      // A 2 MiB operand names its whole page: the GVA must be 2 MiB aligned (GPA = the page's first byte).
      const base = pageSize === 1 ? gpa : gpa - (gpa % PAGE);
      if (pvalidate) {
        r = rmp.pvalidate(hpa, { asid, gpa: base, pageSize, validate: (rdx & 1n) === 1n });
      } else if (rdx >> 17n !== 0n) {
        r = { kind: "done", code: RmpReturn.FAIL_INPUT, cf: false };
      } else {
        const a = decodeRmpadjustAttributes(rdx);
        r = rmp.rmpadjust(hpa, { asid, gpa: base, pageSize, ...a });
      }
    }
    if (r.kind === "npf") throw new NestedPageFault(gpa - (gpa % PAGE), r.errorBits | PF_RMP | (1n << 32n));
    c.mem.invalidateTlb();
    return { code: r.code, cf: r.cf };
  }

  #alu(
    i: number,
    a: number,
    y: bigint,
    setReg: (r: number, v: bigint) => void,
    reg: (r: number) => bigint,
  ): void {
    const x = reg(a);
    let r: bigint;
    let carry: boolean | undefined;
    switch (i) {
      case 0:
        r = (x + y) & M64;
        carry = x + y > M64;
        break;
      case 1:
      case 8:
        r = (x - y) & M64;
        carry = x < y;
        break;
      case 2:
        r = x & y;
        carry = false;
        break;
      case 3:
        r = x | y;
        carry = false;
        break;
      case 4:
        r = x ^ y;
        carry = false;
        break;
      case 5:
        r = (x << (y & 63n)) & M64;
        break;
      case 6:
        r = x >> (y & 63n);
        break;
      default:
        r = (x * y) & M64;
        break;
    }
    this.#setFlags(r, carry);
    if (i !== 8) setReg(a, r);
  }
}

/** IN semantics: 8/16-bit reads merge into RAX, a 32-bit read zero-extends. */
export function mergeIn(rax: bigint, size: number, value: bigint): bigint {
  if (size === 4) return value & 0xffffffffn;
  const mask = (1n << BigInt(8 * size)) - 1n;
  return (rax & ~mask & M64) | (value & mask);
}

/** Register names for messages: "rax" for 0 etc. */
export function gprName(r: number): string {
  return GPR_NAMES[r] ?? `r?${r}`;
}
