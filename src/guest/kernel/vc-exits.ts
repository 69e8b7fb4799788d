/**
 * What an SEV-ES-capable Linux kernel's #VC handler does for each non-automatic exit (torvalds/linux
 * `arch/x86/kernel/sev*.c` `vc_handle_*`; docs/sev-interface.md §12.3, §12.5): which registers it copies into the GHCB
 * (only those — each with its valid bit), which exit_info_1 it computes from the faulting instruction, which
 * outputs it requires back, and how it applies them. One table; the kernel (kernel.ts) interprets it.
 */

import { SvmExit } from "../../machine/exit-codes.ts";
import type { ExposableField, GhcbView } from "../../machine/ghcb.ts";
import { type Instruction, Op, Reg } from "../../machine/isa.ts";
import { ioioExitInfo } from "../../machine/nae-exits.ts";
import type { Vmsa } from "../../measure/vmsa.ts";

export interface VcContext {
  gpr: BigUint64Array;
  state: Vmsa;
  /** The faulting instruction, decoded from (private) guest memory. */
  ins: Instruction;
  /** The kernel's cached DR7. */
  dr7: bigint;
}

export interface VcExitRow {
  code: number;
  /**
   * "ghcb": ask the hypervisor; "local": answered inside the guest (Linux keeps DR7 in a per-CPU variable);
   * "unsupported": Linux refuses it ("#VC exception for INVD??? Seriously???") and terminates.
   */
  handling: "ghcb" | "local" | "unsupported";
  /** Registers copied into the GHCB (all marked valid). */
  inputs(c: VcContext): Partial<Record<ExposableField, bigint>>;
  exitInfo1(c: VcContext): bigint;
  /** Fields that must come back valid, or the kernel treats the answer as a hypervisor error. */
  outputs(c: VcContext): ExposableField[];
  /** Applies the hypervisor's answer to the registers. */
  apply(c: VcContext, ghcb: GhcbView): void;
}

const LO32 = 0xffffffffn;
const X86_CR4_OSXSAVE = 1n << 18n;

function ioPort(c: VcContext): number {
  return Number((c.ins.a === Reg.rdx ? c.gpr[Reg.rdx]! : c.ins.imm) & 0xffffn);
}

function ioSize(c: VcContext): 1 | 2 | 4 {
  return c.ins.s === 2 ? 2 : c.ins.s === 4 ? 4 : 1;
}

function lowBits(v: bigint, bytes: number): bigint {
  return v & ((1n << BigInt(8 * bytes)) - 1n);
}

const noInputs = () => ({});
const zero = () => 0n;
const noOutputs = (): ExposableField[] => [];
const nothing = () => {};

export const VC_EXITS: readonly VcExitRow[] = [
  {
    code: SvmExit.CPUID,
    handling: "ghcb",
    inputs: (c) => ({
      rax: c.gpr[Reg.rax]!,
      rcx: c.gpr[Reg.rcx]!,
      // XGETBV would #GP without CR4.OSXSAVE, so Linux sends the reset value then.
      xcr0: c.state.cr4 & X86_CR4_OSXSAVE ? c.state.xcr0 : 1n,
    }),
    exitInfo1: zero,
    outputs: () => ["rax", "rbx", "rcx", "rdx"],
    apply: (c, g) => {
      c.gpr[Reg.rax] = g.get("rax") & LO32;
      c.gpr[Reg.rbx] = g.get("rbx") & LO32;
      c.gpr[Reg.rcx] = g.get("rcx") & LO32;
      c.gpr[Reg.rdx] = g.get("rdx") & LO32;
    },
  },
  {
    code: SvmExit.IOIO,
    handling: "ghcb",
    // Only the bytes the port access uses leave the guest (Linux `vc_handle_ioio`: lower_bits(regs->ax, bits)).
    inputs: (c) => ({ rax: c.ins.opcode === Op.IN ? 0n : lowBits(c.gpr[Reg.rax]!, ioSize(c)) }),
    exitInfo1: (c) => ioioExitInfo(ioPort(c), ioSize(c), c.ins.opcode === Op.IN),
    outputs: (c) => (c.ins.opcode === Op.IN ? ["rax"] : []),
    apply: (c, g) => {
      if (c.ins.opcode !== Op.IN) return;
      const size = ioSize(c);
      const v = lowBits(g.get("rax"), size);
      const rax = c.gpr[Reg.rax]!;
      c.gpr[Reg.rax] = size === 4 ? v : (rax & ~((1n << BigInt(8 * size)) - 1n)) | v;
    },
  },
  {
    code: SvmExit.MSR,
    handling: "ghcb",
    inputs: (c) =>
      c.ins.opcode === Op.WRMSR
        ? { rcx: c.gpr[Reg.rcx]!, rax: c.gpr[Reg.rax]!, rdx: c.gpr[Reg.rdx]! }
        : { rcx: c.gpr[Reg.rcx]! },
    exitInfo1: (c) => (c.ins.opcode === Op.WRMSR ? 1n : 0n),
    outputs: (c) => (c.ins.opcode === Op.WRMSR ? [] : ["rax", "rdx"]),
    apply: (c, g) => {
      if (c.ins.opcode === Op.WRMSR) return;
      c.gpr[Reg.rax] = g.get("rax") & LO32;
      c.gpr[Reg.rdx] = g.get("rdx") & LO32;
    },
  },
  {
    code: SvmExit.VMMCALL,
    handling: "ghcb",
    // rax + CPL, plus the KVM hypercall arguments (`kvm_sev_es_hcall_prepare`: rbx, rcx, rdx, rsi).
    inputs: (c) => ({
      rax: c.gpr[Reg.rax]!,
      cpl: 0n,
      rbx: c.gpr[Reg.rbx]!,
      rcx: c.gpr[Reg.rcx]!,
      rdx: c.gpr[Reg.rdx]!,
      rsi: c.gpr[Reg.rsi]!,
    }),
    exitInfo1: zero,
    outputs: () => ["rax"],
    apply: (c, g) => {
      c.gpr[Reg.rax] = g.get("rax");
    },
  },
  {
    code: SvmExit.RDTSC,
    handling: "ghcb",
    inputs: noInputs,
    exitInfo1: zero,
    outputs: () => ["rax", "rdx"],
    apply: (c, g) => {
      c.gpr[Reg.rax] = g.get("rax") & LO32;
      c.gpr[Reg.rdx] = g.get("rdx") & LO32;
    },
  },
  {
    code: SvmExit.RDTSCP,
    handling: "ghcb",
    inputs: noInputs,
    exitInfo1: zero,
    outputs: () => ["rax", "rcx", "rdx"],
    apply: (c, g) => {
      c.gpr[Reg.rax] = g.get("rax") & LO32;
      c.gpr[Reg.rcx] = g.get("rcx") & LO32;
      c.gpr[Reg.rdx] = g.get("rdx") & LO32;
    },
  },
  {
    code: SvmExit.RDPMC,
    handling: "ghcb",
    inputs: (c) => ({ rcx: c.gpr[Reg.rcx]! }),
    exitInfo1: zero,
    outputs: () => ["rax", "rdx"],
    apply: (c, g) => {
      c.gpr[Reg.rax] = g.get("rax") & LO32;
      c.gpr[Reg.rdx] = g.get("rdx") & LO32;
    },
  },
  {
    code: SvmExit.WRITE_DR7,
    handling: "ghcb",
    inputs: (c) => ({ rax: c.gpr[c.ins.a]! }),
    exitInfo1: zero,
    outputs: noOutputs,
    apply: nothing,
  },
  {
    code: SvmExit.READ_DR7,
    handling: "local",
    inputs: noInputs,
    exitInfo1: zero,
    outputs: noOutputs,
    apply: (c) => {
      c.gpr[c.ins.a] = c.dr7;
    },
  },
  {
    code: SvmExit.WBINVD,
    handling: "ghcb",
    inputs: noInputs,
    exitInfo1: zero,
    outputs: noOutputs,
    apply: nothing,
  },
  {
    code: SvmExit.INVD,
    handling: "unsupported",
    inputs: noInputs,
    exitInfo1: zero,
    outputs: noOutputs,
    apply: nothing,
  },
  {
    code: SvmExit.MONITOR,
    handling: "ghcb",
    inputs: (c) => ({ rax: c.gpr[Reg.rax]!, rcx: c.gpr[Reg.rcx]!, rdx: c.gpr[Reg.rdx]! }),
    exitInfo1: zero,
    outputs: noOutputs,
    apply: nothing,
  },
  {
    code: SvmExit.MWAIT,
    handling: "ghcb",
    inputs: (c) => ({ rax: c.gpr[Reg.rax]!, rcx: c.gpr[Reg.rcx]! }),
    exitInfo1: zero,
    outputs: noOutputs,
    apply: nothing,
  },
];

const BY_CODE = new Map(VC_EXITS.map((r) => [r.code, r]));

export function vcExit(code: number): VcExitRow | undefined {
  return BY_CODE.get(code);
}
