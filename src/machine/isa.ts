/**
 * The emulated CPU's instruction set: a tiny, x86-flavoured ISA that guest programs are written in (documented for
 * users in docs/guest-isa.md; assembled by src/guest/assembler.ts). It is not x86 machine code: it exists so a
 * guest can do what matters for SEV and SEV-ES — compute on registers, touch private and shared memory, and execute
 * the instructions a hypervisor intercepts (CPUID, IN/OUT, RDMSR/WRMSR, HLT, VMMCALL, VMGEXIT, …) — with the
 * architectural side effects x86 has (RAX/RCX/RDX conventions, RFLAGS, RIP).
 *
 * Encoding: every instruction starts with 4 bytes `[opcode, a, b, s]`; the *long* ones add an 8-byte little-endian
 * immediate (12 bytes in all). `a` and `b` are register numbers in x86 order (RAX = 0 … R15 = 15) or 0xFF for
 * "none"; `s` is an access size in bytes where one applies.
 */
import { SvmExit } from "./exit-codes.ts";

export const GPR_NAMES = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;
export type GprName = (typeof GPR_NAMES)[number];

export const Reg = {
  rax: 0,
  rcx: 1,
  rdx: 2,
  rbx: 3,
  rsp: 4,
  rbp: 5,
  rsi: 6,
  rdi: 7,
  r8: 8,
  r9: 9,
  r10: 10,
  r11: 11,
  r12: 12,
  r13: 13,
  r14: 14,
  r15: 15,
} as const satisfies Record<GprName, number>;

/** "No register" in an `a`/`b` slot (absolute addressing, immediate port). */
export const NO_REG = 0xff;

export const SHORT = 4;
export const LONG = 12;

/**
 * Operand shapes, for the assembler and the docs:
 * - `none`: no operands; `r`: one register (a); `rr`: a, b; `ri`: a, immediate
 * - `load`: a, [b + imm]; `store`: [b + imm], a  (b may be NO_REG: absolute address)
 * - `target`: immediate address; `io`: size s, port in imm (a = NO_REG) or in DX (a = RDX)
 */
export type OperandForm = "none" | "r" | "rr" | "ri" | "load" | "store" | "target" | "io";

export interface OpcodeRow {
  opcode: number;
  mnemonic: string;
  form: OperandForm;
  length: typeof SHORT | typeof LONG;
  /** The intercept this instruction can trigger (an SVM exit code), if any. */
  exit?: number;
  doc: string;
}

/** ALU operations in opcode order: reg-reg at 0x10 + i, reg-imm at 0x20 + i. */
export const ALU_OPS = ["add", "sub", "and", "or", "xor", "shl", "shr", "mul", "cmp"] as const;
export type AluOp = (typeof ALU_OPS)[number];
export const ALU_RR_BASE = 0x10;
export const ALU_RI_BASE = 0x20;

export const Op = {
  NOP: 0x00,
  HLT: 0x01,
  MOV: 0x02,
  MOVI: 0x03,
  LOAD: 0x04,
  STORE: 0x05,
  PUSH: 0x06,
  POP: 0x07,
  CALL: 0x08,
  RET: 0x09,
  JMP: 0x0a,
  JZ: 0x0b,
  JNZ: 0x0c,
  JB: 0x0d,
  JAE: 0x0e,
  JMPR: 0x0f,
  CPUID: 0x30,
  IN: 0x31,
  OUT: 0x32,
  RDMSR: 0x33,
  WRMSR: 0x34,
  RDTSC: 0x35,
  RDTSCP: 0x36,
  RDPMC: 0x37,
  VMMCALL: 0x38,
  WBINVD: 0x39,
  INVD: 0x3a,
  MONITOR: 0x3b,
  MWAIT: 0x3c,
  PAUSE: 0x3d,
  MOV_TO_DR7: 0x3e,
  MOV_FROM_DR7: 0x3f,
  VMGEXIT: 0x40,
  RDRAND: 0x41,
  UD2: 0x42,
  PVALIDATE: 0x43,
  RMPADJUST: 0x44,
} as const;

const ALU_DOCS: Record<AluOp, string> = {
  add: "a ← a + b (mod 2^64); sets ZF, SF, CF (carry out)",
  sub: "a ← a − b (mod 2^64); sets ZF, SF, CF (borrow)",
  and: "a ← a & b; sets ZF, SF, clears CF",
  or: "a ← a | b; sets ZF, SF, clears CF",
  xor: "a ← a ^ b; sets ZF, SF, clears CF",
  shl: "a ← a << (b & 63); sets ZF, SF",
  shr: "a ← a >> (b & 63) (logical); sets ZF, SF",
  mul: "a ← a × b (low 64 bits); sets ZF, SF",
  cmp: "computes a − b and sets ZF, SF, CF like sub, without writing a",
};

/** The one opcode table: the CPU, the assembler, the disassembler and docs/guest-isa.md all follow it. */
export const ISA: readonly OpcodeRow[] = [
  { opcode: Op.NOP, mnemonic: "nop", form: "none", length: SHORT, doc: "does nothing" },
  {
    opcode: Op.HLT,
    mnemonic: "hlt",
    form: "none",
    length: SHORT,
    exit: SvmExit.HLT,
    doc: "halts until the next event; intercepted by the hypervisor (automatic exit, also under SEV-ES)",
  },
  { opcode: Op.MOV, mnemonic: "mov", form: "rr", length: SHORT, doc: "a ← b" },
  { opcode: Op.MOVI, mnemonic: "mov", form: "ri", length: LONG, doc: "a ← imm64" },
  {
    opcode: Op.LOAD,
    mnemonic: "load",
    form: "load",
    length: LONG,
    doc: "a ← zero-extended s bytes at [b + imm] (load = 8, load32, load16, load8)",
  },
  {
    opcode: Op.STORE,
    mnemonic: "store",
    form: "store",
    length: LONG,
    doc: "low s bytes of a → [b + imm] (store = 8, store32, store16, store8)",
  },
  { opcode: Op.PUSH, mnemonic: "push", form: "r", length: SHORT, doc: "rsp ← rsp − 8; [rsp] ← a" },
  { opcode: Op.POP, mnemonic: "pop", form: "r", length: SHORT, doc: "a ← [rsp]; rsp ← rsp + 8" },
  { opcode: Op.CALL, mnemonic: "call", form: "target", length: LONG, doc: "push the next RIP; jump to imm" },
  { opcode: Op.RET, mnemonic: "ret", form: "none", length: SHORT, doc: "pop RIP" },
  { opcode: Op.JMP, mnemonic: "jmp", form: "target", length: LONG, doc: "jump to imm" },
  { opcode: Op.JZ, mnemonic: "jz", form: "target", length: LONG, doc: "jump if ZF (alias je)" },
  { opcode: Op.JNZ, mnemonic: "jnz", form: "target", length: LONG, doc: "jump if not ZF (alias jne)" },
  {
    opcode: Op.JB,
    mnemonic: "jb",
    form: "target",
    length: LONG,
    doc: "jump if CF: unsigned below (alias jc)",
  },
  {
    opcode: Op.JAE,
    mnemonic: "jae",
    form: "target",
    length: LONG,
    doc: "jump if not CF: unsigned above or equal (alias jnc)",
  },
  { opcode: Op.JMPR, mnemonic: "jmp", form: "r", length: SHORT, doc: "jump to the address in a" },
  ...ALU_OPS.flatMap((name, i): OpcodeRow[] => [
    { opcode: ALU_RR_BASE + i, mnemonic: name, form: "rr", length: SHORT, doc: ALU_DOCS[name] },
    {
      opcode: ALU_RI_BASE + i,
      mnemonic: name,
      form: "ri",
      length: LONG,
      doc: `${ALU_DOCS[name]} (b = imm64)`,
    },
  ]),
  {
    opcode: Op.CPUID,
    mnemonic: "cpuid",
    form: "none",
    length: SHORT,
    exit: SvmExit.CPUID,
    doc: "eax/ebx/ecx/edx ← CPUID(leaf eax, sub-leaf ecx); upper halves cleared",
  },
  {
    opcode: Op.IN,
    mnemonic: "in",
    form: "io",
    length: LONG,
    exit: SvmExit.IOIO,
    doc: "in8/in16/in32 PORT|dx: low s bytes of rax ← port (in32 zero-extends rax)",
  },
  {
    opcode: Op.OUT,
    mnemonic: "out",
    form: "io",
    length: LONG,
    exit: SvmExit.IOIO,
    doc: "out8/out16/out32 PORT|dx: port ← low s bytes of rax",
  },
  {
    opcode: Op.RDMSR,
    mnemonic: "rdmsr",
    form: "none",
    length: SHORT,
    exit: SvmExit.MSR,
    doc: "edx:eax ← MSR[ecx]",
  },
  {
    opcode: Op.WRMSR,
    mnemonic: "wrmsr",
    form: "none",
    length: SHORT,
    exit: SvmExit.MSR,
    doc: "MSR[ecx] ← edx:eax",
  },
  {
    opcode: Op.RDTSC,
    mnemonic: "rdtsc",
    form: "none",
    length: SHORT,
    exit: SvmExit.RDTSC,
    doc: "edx:eax ← time-stamp counter",
  },
  {
    opcode: Op.RDTSCP,
    mnemonic: "rdtscp",
    form: "none",
    length: SHORT,
    exit: SvmExit.RDTSCP,
    doc: "edx:eax ← TSC; ecx ← TSC_AUX",
  },
  {
    opcode: Op.RDPMC,
    mnemonic: "rdpmc",
    form: "none",
    length: SHORT,
    exit: SvmExit.RDPMC,
    doc: "edx:eax ← performance counter ecx",
  },
  {
    opcode: Op.VMMCALL,
    mnemonic: "vmmcall",
    form: "none",
    length: SHORT,
    exit: SvmExit.VMMCALL,
    doc: "hypercall: number in rax, arguments in rbx, rcx, rdx, rsi; result in rax",
  },
  {
    opcode: Op.WBINVD,
    mnemonic: "wbinvd",
    form: "none",
    length: SHORT,
    exit: SvmExit.WBINVD,
    doc: "write back and invalidate caches",
  },
  {
    opcode: Op.INVD,
    mnemonic: "invd",
    form: "none",
    length: SHORT,
    exit: SvmExit.INVD,
    doc: "invalidate caches without writing back",
  },
  {
    opcode: Op.MONITOR,
    mnemonic: "monitor",
    form: "none",
    length: SHORT,
    exit: SvmExit.MONITOR,
    doc: "arm address monitor (rax address, ecx extensions, edx hints)",
  },
  {
    opcode: Op.MWAIT,
    mnemonic: "mwait",
    form: "none",
    length: SHORT,
    exit: SvmExit.MWAIT,
    doc: "wait for the monitored store (eax hints, ecx extensions)",
  },
  {
    opcode: Op.PAUSE,
    mnemonic: "pause",
    form: "none",
    length: SHORT,
    exit: SvmExit.PAUSE,
    doc: "spin-loop hint",
  },
  {
    opcode: Op.MOV_TO_DR7,
    mnemonic: "movdr7",
    form: "r",
    length: SHORT,
    exit: SvmExit.WRITE_DR7,
    doc: "movdr7 a: DR7 ← a",
  },
  {
    opcode: Op.MOV_FROM_DR7,
    mnemonic: "readdr7",
    form: "r",
    length: SHORT,
    exit: SvmExit.READ_DR7,
    doc: "readdr7 a: a ← DR7",
  },
  {
    opcode: Op.VMGEXIT,
    mnemonic: "vmgexit",
    form: "none",
    length: SHORT,
    exit: SvmExit.VMGEXIT,
    doc: "SEV-ES: exit to the hypervisor with the GHCB MSR (0x403); elsewhere it is VMMCALL (`rep vmmcall`)",
  },
  {
    opcode: Op.RDRAND,
    mnemonic: "rdrand",
    form: "r",
    length: SHORT,
    doc: "a ← 64 random bits from the CPU's generator (never intercepted; deterministic per machine seed)",
  },
  { opcode: Op.UD2, mnemonic: "ud2", form: "none", length: SHORT, doc: "raises #UD (invalid opcode)" },
  {
    opcode: Op.PVALIDATE,
    mnemonic: "pvalidate",
    form: "none",
    length: SHORT,
    doc: "SEV-SNP: validate (rdx = 1) or invalidate (rdx = 0) the page at GVA rax, size rcx (0 = 4 KiB, 1 = 2 MiB); rax ← return code, CF = 1 when the Validated bit did not change; #UD outside SNP",
  },
  {
    opcode: Op.RMPADJUST,
    mnemonic: "rmpadjust",
    form: "none",
    length: SHORT,
    doc: "SEV-SNP: set the permissions of a lower VMPL on the page at GVA rax (rcx: bits 7:0 mask, 15:8 VMPL, 16 VMSA; rdx: size); rax ← return code; #UD outside SNP",
  },
];

/** Instruction length per opcode byte; 0 = invalid opcode (#UD). */
export const LENGTH_OF = new Uint8Array(256);
for (const row of ISA) LENGTH_OF[row.opcode] = row.length;

const BY_OPCODE = new Map(ISA.map((r) => [r.opcode, r]));

export function opcodeRow(opcode: number): OpcodeRow | undefined {
  return BY_OPCODE.get(opcode);
}

/** A decoded instruction (the assembler's output unit and the disassembler's input). */
export interface Instruction {
  opcode: number;
  a: number;
  b: number;
  s: number;
  imm: bigint;
}

/** Encodes one instruction; its length follows the opcode table. */
export function encodeInstruction(ins: Instruction): Uint8Array {
  const len = LENGTH_OF[ins.opcode];
  if (!len) throw new RangeError(`unknown opcode 0x${ins.opcode.toString(16)}`);
  const out = new Uint8Array(len);
  out[0] = ins.opcode;
  out[1] = ins.a;
  out[2] = ins.b;
  out[3] = ins.s;
  if (len === LONG) new DataView(out.buffer).setBigUint64(4, BigInt.asUintN(64, ins.imm), true);
  return out;
}

/** Decodes the instruction at `offset`, or undefined for an invalid opcode or a truncated buffer. */
export function decodeInstruction(
  bytes: Uint8Array,
  offset = 0,
): (Instruction & { length: number }) | undefined {
  const opcode = bytes[offset];
  if (opcode === undefined) return undefined;
  const length = LENGTH_OF[opcode]!;
  if (!length || offset + length > bytes.length) return undefined;
  const imm =
    length === LONG ? new DataView(bytes.buffer, bytes.byteOffset + offset + 4, 8).getBigUint64(0, true) : 0n;
  return { opcode, a: bytes[offset + 1]!, b: bytes[offset + 2]!, s: bytes[offset + 3]!, imm, length };
}
