/**
 * The text assembler for the guest ISA (src/machine/isa.ts; user documentation in docs/guest-isa.md).
 *
 * ```asm
 * .private counter, 8        ; a private (encrypted) data area
 * .shared  mailbox, 4096     ; a shared page the hypervisor can read
 * .entry   start
 * start:
 *     mov   rcx, 10
 * loop:
 *     cpuid                  ; intercepted: #VC under SEV-ES, a #VMEXIT otherwise
 *     sub   rcx, 1
 *     jnz   loop
 *     hlt
 * ```
 *
 * Two passes: instruction lengths depend only on the mnemonic and operand kinds, so the first pass places every
 * label; data areas follow the code, each page-aligned (the C-bit is per page); the second pass encodes.
 * Errors are `INVALID_INPUT` with the line number.
 */
import { CiphervisorError } from "../errors.ts";
import {
  ALU_OPS,
  ALU_RI_BASE,
  ALU_RR_BASE,
  encodeInstruction,
  GPR_NAMES,
  type Instruction,
  LONG,
  NO_REG,
  Op,
  Reg,
  SHORT,
} from "../machine/isa.ts";

/** Default guest-virtual address of the first instruction (see layout.ts). */
export const DEFAULT_CODE_BASE = 0x10_0000;
const PAGE = 4096;

export interface DataRegion {
  name: string;
  gva: number;
  size: number;
  /** true: mapped with the C-bit clear, readable by the hypervisor. */
  shared: boolean;
}

export interface GuestProgram {
  /** Guest-virtual address of `code[0]`. */
  base: number;
  code: Uint8Array;
  entry: number;
  /** Page-aligned data areas after the code, in declaration order. */
  regions: DataRegion[];
  symbols: ReadonlyMap<string, number>;
}

type Operand =
  | { kind: "reg"; reg: number }
  | { kind: "imm"; expr: string }
  | { kind: "mem"; base: number; expr: string }
  | { kind: "str"; bytes: Uint8Array };

interface Line {
  no: number;
  label?: string;
  op?: string;
  args: Operand[];
  raw: string;
}

function fail(no: number, msg: string): never {
  throw new CiphervisorError("INVALID_INPUT", `line ${no}: ${msg}`);
}

const REGS = new Map<string, number>(GPR_NAMES.map((n, i) => [n, i]));
const NAME = /^[A-Za-z_.$][\w.$]*$/;

/** Splits on commas outside brackets and quotes. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = false;
  let cur = "";
  for (const ch of s) {
    if (ch === '"') quote = !quote;
    if (!quote && ch === "[") depth++;
    if (!quote && ch === "]") depth--;
    if (!quote && depth === 0 && ch === ",") {
      out.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function stripComment(s: string): string {
  let quote = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '"') quote = !quote;
    if (!quote && (ch === ";" || ch === "#")) return s.slice(0, i);
  }
  return s;
}

function parseString(no: number, t: string): Uint8Array {
  if (!t.startsWith('"') || !t.endsWith('"') || t.length < 2) fail(no, `expected a "string", got '${t}'`);
  const body = t
    .slice(1, -1)
    .replace(/\\(n|t|0|\\|")/g, (_, c: string) =>
      c === "n" ? "\n" : c === "t" ? "\t" : c === "0" ? "\0" : c,
    );
  return new TextEncoder().encode(body);
}

function parseOperand(no: number, t: string): Operand {
  const lower = t.toLowerCase();
  const r = REGS.get(lower);
  if (r !== undefined) return { kind: "reg", reg: r };
  if (t.startsWith('"')) return { kind: "str", bytes: parseString(no, t) };
  if (t.startsWith("[")) {
    if (!t.endsWith("]")) fail(no, `unterminated memory operand '${t}'`);
    const inner = t.slice(1, -1).trim();
    const m = /^([A-Za-z]\w*)\s*(?:([+-])\s*(.+))?$/.exec(inner);
    if (m && REGS.has(m[1]!.toLowerCase())) {
      const base = REGS.get(m[1]!.toLowerCase())!;
      return { kind: "mem", base, expr: m[2] ? `${m[2]}${m[3]}` : "0" };
    }
    if (!inner) fail(no, "empty memory operand");
    return { kind: "mem", base: NO_REG, expr: inner };
  }
  return { kind: "imm", expr: t };
}

function parseLines(source: string): Line[] {
  const lines: Line[] = [];
  source.split(/\r?\n/).forEach((rawLine, i) => {
    const no = i + 1;
    let s = stripComment(rawLine).trim();
    if (!s) return;
    let label: string | undefined;
    const lm = /^([A-Za-z_.$][\w.$]*):/.exec(s);
    if (lm) {
      label = lm[1]!;
      s = s.slice(lm[0].length).trim();
    }
    if (!s) {
      lines.push({ no, label, args: [], raw: rawLine });
      return;
    }
    const sp = s.search(/\s/);
    const op = (sp < 0 ? s : s.slice(0, sp)).toLowerCase();
    const rest = sp < 0 ? "" : s.slice(sp + 1).trim();
    const args =
      op === ".equ" || op === ".private" || op === ".shared" || op === ".entry"
        ? []
        : splitArgs(rest).map((a) => parseOperand(no, a));
    const line: Line = { no, op, args, raw: rest };
    if (label !== undefined) line.label = label;
    lines.push(line);
  });
  return lines;
}

/** Evaluates `term (+|- term)*` where a term is a number, a 'c' character or a symbol. */
function evaluate(no: number, expr: string, symbols: ReadonlyMap<string, bigint>): bigint {
  const tokens = expr.replace(/\s+/g, "").match(/[+-]|[^+-]+/g);
  if (!tokens) fail(no, `empty expression`);
  let total = 0n;
  let sign = 1n;
  let expectTerm = true;
  for (const tok of tokens) {
    if (tok === "+" || tok === "-") {
      if (!expectTerm) {
        sign = tok === "-" ? -1n : 1n;
        expectTerm = true;
      } else if (tok === "-") sign = -sign;
      continue;
    }
    let v: bigint;
    // A radix prefix needs a digit after it (`0x_` is no number: BigInt("0x") would throw an untyped error).
    if (/^(0x_*[0-9a-f][0-9a-f_]*|0b_*[01][01_]*|\d[\d_]*)$/i.test(tok)) v = BigInt(tok.replace(/_/g, ""));
    else if (/^'.'$/.test(tok)) v = BigInt(tok.charCodeAt(1));
    else if (NAME.test(tok)) {
      const s = symbols.get(tok);
      if (s === undefined) fail(no, `unknown symbol '${tok}'`);
      v = s;
    } else fail(no, `cannot read '${tok}' in '${expr}'`);
    total += sign * v;
    sign = 1n;
    expectTerm = false;
  }
  if (expectTerm) fail(no, `expression '${expr}' ends with an operator`);
  return total;
}

const IO_SIZES: Record<string, number> = { "": 1, "8": 1, "16": 2, "32": 4 };
const MEM_SIZES: Record<string, number> = { "": 8, "64": 8, "32": 4, "16": 2, "8": 1 };
const NO_OPERANDS: Record<string, number> = {
  nop: Op.NOP,
  hlt: Op.HLT,
  ret: Op.RET,
  cpuid: Op.CPUID,
  rdmsr: Op.RDMSR,
  wrmsr: Op.WRMSR,
  rdtsc: Op.RDTSC,
  rdtscp: Op.RDTSCP,
  rdpmc: Op.RDPMC,
  vmmcall: Op.VMMCALL,
  wbinvd: Op.WBINVD,
  invd: Op.INVD,
  monitor: Op.MONITOR,
  mwait: Op.MWAIT,
  pause: Op.PAUSE,
  vmgexit: Op.VMGEXIT,
  ud2: Op.UD2,
  pvalidate: Op.PVALIDATE,
  rmpadjust: Op.RMPADJUST,
};
const BRANCHES: Record<string, number> = {
  jmp: Op.JMP,
  jz: Op.JZ,
  je: Op.JZ,
  jnz: Op.JNZ,
  jne: Op.JNZ,
  jb: Op.JB,
  jc: Op.JB,
  jae: Op.JAE,
  jnc: Op.JAE,
  call: Op.CALL,
};
const ONE_REG: Record<string, number> = {
  push: Op.PUSH,
  pop: Op.POP,
  rdrand: Op.RDRAND,
  movdr7: Op.MOV_TO_DR7,
  readdr7: Op.MOV_FROM_DR7,
};

/** An instruction whose immediate is still an expression (resolved in pass 2). */
interface Pending {
  ins: Omit<Instruction, "imm">;
  expr?: string;
  length: number;
}

/** Data bytes in the code stream (.quad / .byte / .ascii) — expressions resolved in pass 2. */
interface PendingData {
  size: number;
  items: { expr?: string; bytes?: Uint8Array; width: number }[];
}

function expectArgs(line: Line, n: number): void {
  if (line.args.length !== n) fail(line.no, `${line.op} takes ${n} operand(s), got ${line.args.length}`);
}

function regArg(line: Line, i: number): number {
  const a = line.args[i]!;
  if (a.kind !== "reg") fail(line.no, `operand ${i + 1} of ${line.op} must be a register`);
  return a.reg;
}

function immArg(line: Line, i: number): string {
  const a = line.args[i]!;
  if (a.kind !== "imm") fail(line.no, `operand ${i + 1} of ${line.op} must be a number or a label`);
  return a.expr;
}

/** Pass 1 for one instruction line: its encoding, with the immediate left as an expression. */
function translate(line: Line): Pending {
  const op = line.op!;
  const short = (opcode: number, a = NO_REG, b = NO_REG, s = 0): Pending => ({
    ins: { opcode, a, b, s },
    length: SHORT,
  });
  const long = (opcode: number, expr: string, a = NO_REG, b = NO_REG, s = 0): Pending => ({
    ins: { opcode, a, b, s },
    expr,
    length: LONG,
  });
  if (op in NO_OPERANDS) {
    expectArgs(line, 0);
    return short(NO_OPERANDS[op]!);
  }
  if (op in ONE_REG) {
    expectArgs(line, 1);
    return short(ONE_REG[op]!, regArg(line, 0));
  }
  if (op in BRANCHES) {
    expectArgs(line, 1);
    const t = line.args[0]!;
    if (op === "jmp" && t.kind === "reg") return short(Op.JMPR, t.reg);
    return long(BRANCHES[op]!, immArg(line, 0));
  }
  if (op === "mov") {
    expectArgs(line, 2);
    const dst = regArg(line, 0);
    const src = line.args[1]!;
    if (src.kind === "reg") return short(Op.MOV, dst, src.reg);
    return long(Op.MOVI, immArg(line, 1), dst);
  }
  const alu = (ALU_OPS as readonly string[]).indexOf(op);
  if (alu >= 0) {
    expectArgs(line, 2);
    const dst = regArg(line, 0);
    const src = line.args[1]!;
    if (src.kind === "reg") return short(ALU_RR_BASE + alu, dst, src.reg);
    return long(ALU_RI_BASE + alu, immArg(line, 1), dst);
  }
  const ls = /^(load|store)(64|32|16|8)?$/.exec(op);
  if (ls) {
    expectArgs(line, 2);
    const size = MEM_SIZES[ls[2] ?? ""]!;
    const isLoad = ls[1] === "load";
    const memArg = line.args[isLoad ? 1 : 0]!;
    if (memArg.kind !== "mem") fail(line.no, `${op} needs a [memory] operand`);
    const r = regArg(line, isLoad ? 0 : 1);
    return long(isLoad ? Op.LOAD : Op.STORE, memArg.expr, r, memArg.base, size);
  }
  const io = /^(in|out)(32|16|8)?$/.exec(op);
  if (io) {
    expectArgs(line, 1);
    const size = IO_SIZES[io[2] ?? ""]!;
    const opcode = io[1] === "in" ? Op.IN : Op.OUT;
    const port = line.args[0]!;
    if (port.kind === "imm" && port.expr.toLowerCase() === "dx")
      return long(opcode, "0", Reg.rdx, NO_REG, size);
    if (port.kind === "reg") {
      if (port.reg !== Reg.rdx) fail(line.no, `${op}: the port register must be dx/rdx`);
      return long(opcode, "0", Reg.rdx, NO_REG, size);
    }
    return long(opcode, immArg(line, 0), NO_REG, NO_REG, size);
  }
  return fail(line.no, `unknown instruction '${op}'`);
}

/** Pass 1 for a data directive in the code stream. */
function dataDirective(line: Line): PendingData | undefined {
  const op = line.op!;
  const width = op === ".quad" ? 8 : op === ".long" ? 4 : op === ".word" ? 2 : op === ".byte" ? 1 : 0;
  if (width) {
    if (line.args.length === 0) fail(line.no, `${op} needs values`);
    const items = line.args.map((a) => {
      if (a.kind !== "imm") fail(line.no, `${op} takes numbers or labels`);
      return { expr: a.expr, width };
    });
    return { size: width * items.length, items };
  }
  if (op === ".ascii" || op === ".asciz") {
    expectArgs(line, 1);
    const a = line.args[0]!;
    if (a.kind !== "str") fail(line.no, `${op} takes a "string"`);
    const bytes = op === ".asciz" ? new Uint8Array([...a.bytes, 0]) : a.bytes;
    return { size: bytes.length, items: [{ bytes, width: 1 }] };
  }
  return undefined;
}

/**
 * Assembles guest ISA text into a program image.
 *
 * @example
 * ```ts
 * const p = assemble("start:\n  mov rax, 1\n  hlt\n");
 * p.code.length; // 16
 * ```
 * @throws CiphervisorError INVALID_INPUT naming the line of the first error.
 */
export function assemble(source: string, opts: { base?: number } = {}): GuestProgram {
  const base = opts.base ?? DEFAULT_CODE_BASE;
  if (base % PAGE !== 0) throw new CiphervisorError("INVALID_INPUT", "the code base must be page aligned");
  const lines = parseLines(source);
  const symbols = new Map<string, bigint>();
  const equs: { line: Line; name: string; expr: string }[] = [];
  const regionDecls: { line: Line; name: string; expr: string; shared: boolean }[] = [];
  let entryName: { line: Line; name: string } | undefined;
  const items: { line: Line; at: number; pending?: Pending; data?: PendingData }[] = [];
  const define = (line: Line, name: string, v: bigint) => {
    if (symbols.has(name)) fail(line.no, `'${name}' is defined twice`);
    if (REGS.has(name.toLowerCase())) fail(line.no, `'${name}' is a register name`);
    symbols.set(name, v);
  };

  let pc = 0;
  for (const line of lines) {
    if (line.label !== undefined) define(line, line.label, BigInt(base + pc));
    const op = line.op;
    if (op === undefined) continue;
    if (op === ".equ" || op === ".private" || op === ".shared" || op === ".entry") {
      const parts = splitArgs(line.raw);
      if (op === ".entry") {
        if (parts.length !== 1 || !NAME.test(parts[0]!)) fail(line.no, ".entry takes one label");
        entryName = { line, name: parts[0]! };
      } else {
        if (parts.length !== 2 || !NAME.test(parts[0]!)) fail(line.no, `${op} takes a name and a value`);
        if (op === ".equ") equs.push({ line, name: parts[0]!, expr: parts[1]! });
        else regionDecls.push({ line, name: parts[0]!, expr: parts[1]!, shared: op === ".shared" });
      }
      continue;
    }
    if (op === ".align") {
      expectArgs(line, 1);
      const n = Number(evaluate(line.no, immArg(line, 0), symbols));
      if (!Number.isInteger(n) || n < 1 || n > PAGE) fail(line.no, ".align takes 1..4096");
      const pad = (n - (pc % n)) % n;
      if (pad)
        items.push({ line, at: pc, data: { size: pad, items: [{ bytes: new Uint8Array(pad), width: 1 }] } });
      pc += pad;
      continue;
    }
    const data = dataDirective(line);
    if (data) {
      items.push({ line, at: pc, data });
      pc += data.size;
      continue;
    }
    if (op.startsWith(".")) fail(line.no, `unknown directive '${op}'`);
    const pending = translate(line);
    items.push({ line, at: pc, pending });
    pc += pending.length;
  }
  const codeSize = pc;

  // .equ may use labels (all placed now) and earlier .equ names.
  for (const e of equs) define(e.line, e.name, evaluate(e.line.no, e.expr, symbols));

  const regions: DataRegion[] = [];
  let next = base + Math.ceil(Math.max(codeSize, 1) / PAGE) * PAGE;
  for (const r of regionDecls) {
    const size = Number(evaluate(r.line.no, r.expr, symbols));
    if (!Number.isSafeInteger(size) || size <= 0) fail(r.line.no, `${r.name}: size must be positive`);
    define(r.line, r.name, BigInt(next));
    regions.push({ name: r.name, gva: next, size, shared: r.shared });
    next += Math.ceil(size / PAGE) * PAGE;
  }

  const code = new Uint8Array(codeSize);
  for (const it of items) {
    if (it.pending) {
      const p = it.pending;
      const imm = p.expr === undefined ? 0n : evaluate(it.line.no, p.expr, symbols);
      code.set(encodeInstruction({ ...p.ins, imm }), it.at);
    } else if (it.data) {
      let at = it.at;
      for (const d of it.data.items) {
        if (d.bytes) {
          code.set(d.bytes, at);
          at += d.bytes.length;
        } else {
          let v = BigInt.asUintN(8 * d.width, evaluate(it.line.no, d.expr!, symbols));
          for (let i = 0; i < d.width; i++, v >>= 8n) code[at + i] = Number(v & 0xffn);
          at += d.width;
        }
      }
    }
  }

  let entry = base;
  if (entryName) {
    const v = symbols.get(entryName.name);
    if (v === undefined) fail(entryName.line.no, `unknown entry label '${entryName.name}'`);
    entry = Number(v);
  } else if (symbols.has("start")) entry = Number(symbols.get("start"));
  const numeric = new Map<string, number>();
  for (const [k, v] of symbols) numeric.set(k, Number(v));
  return { base, code, entry, regions, symbols: numeric };
}
