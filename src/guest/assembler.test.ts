import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { decodeInstruction, ISA, LONG, NO_REG, Op, Reg, SHORT } from "../machine/isa.ts";
import { assemble, DEFAULT_CODE_BASE } from "./assembler.ts";

function decodeAll(code: Uint8Array) {
  const out = [];
  for (let o = 0; o < code.length; ) {
    const ins = decodeInstruction(code, o);
    assert.ok(ins, `decodable at ${o}`);
    out.push(ins);
    o += ins.length;
  }
  return out;
}

describe("guest assembler", () => {
  it("encodes registers, immediates, memory operands, branches and I/O as the ISA table says", () => {
    const p = assemble(`
; comment
# another comment
.equ   LEAF, 0x8000001f
.private data, 16
.shared  box, 4097
start:  mov rax, LEAF
        mov rbx, rax
        add rbx, 5
        sub rbx, rcx
        load32 r8, [rbx+8]
        store [box-8+8], r15
        store8 [data], rax
        in16 dx
        out32 0x80
        jnz start
        jmp rdx
        cpuid
`);
    assert.equal(p.base, DEFAULT_CODE_BASE);
    assert.equal(p.entry, DEFAULT_CODE_BASE);
    const ins = decodeAll(p.code);
    assert.deepEqual(
      ins.map((i) => [i.opcode, i.a, i.b, i.s, i.imm]),
      [
        [Op.MOVI, Reg.rax, NO_REG, 0, 0x8000001fn],
        [Op.MOV, Reg.rbx, Reg.rax, 0, 0n],
        [0x20, Reg.rbx, NO_REG, 0, 5n],
        [0x11, Reg.rbx, Reg.rcx, 0, 0n],
        [Op.LOAD, Reg.r8, Reg.rbx, 4, 8n],
        [Op.STORE, Reg.r15, NO_REG, 8, BigInt(p.symbols.get("box")!)],
        [Op.STORE, Reg.rax, NO_REG, 1, BigInt(p.symbols.get("data")!)],
        [Op.IN, Reg.rdx, NO_REG, 2, 0n],
        [Op.OUT, NO_REG, NO_REG, 4, 0x80n],
        [Op.JNZ, NO_REG, NO_REG, 0, BigInt(DEFAULT_CODE_BASE)],
        [Op.JMPR, Reg.rdx, NO_REG, 0, 0n],
        [Op.CPUID, NO_REG, NO_REG, 0, 0n],
      ],
    );
    // Data areas follow the code, each page aligned, in declaration order.
    assert.deepEqual(p.regions, [
      { name: "data", gva: DEFAULT_CODE_BASE + 4096, size: 16, shared: false },
      { name: "box", gva: DEFAULT_CODE_BASE + 8192, size: 4097, shared: true },
    ]);
  });

  it("places data in the code stream and honours .entry and .align", () => {
    const p = assemble(`
.entry main
greeting: .asciz "hi\\n"
.align 8
table: .quad greeting, 0x1122334455667788
.byte 1, 2
.word 0x0304
.long 0x05060708
main: hlt
`);
    const g = p.symbols.get("greeting")!;
    assert.deepEqual([...p.code.subarray(0, 4)], [0x68, 0x69, 0x0a, 0]);
    assert.equal(p.symbols.get("table"), g + 8);
    const dv = new DataView(p.code.buffer);
    assert.equal(dv.getBigUint64(8, true), BigInt(g));
    assert.equal(dv.getBigUint64(16, true), 0x1122334455667788n);
    assert.deepEqual([...p.code.subarray(24, 32)], [1, 2, 4, 3, 8, 7, 6, 5]);
    assert.equal(p.entry, p.symbols.get("main"));
    assert.equal(p.code[32], Op.HLT);
  });

  it("accepts every mnemonic of the ISA table", () => {
    const lines = ISA.map((row) => {
      switch (row.form) {
        case "none":
          return row.mnemonic;
        case "r":
          return `${row.mnemonic} rax`;
        case "rr":
          return `${row.mnemonic} rax, rbx`;
        case "ri":
          return `${row.mnemonic} rax, 1`;
        case "load":
          return "load rax, [rbx+1]";
        case "store":
          return "store [rbx+1], rax";
        case "target":
          return `${row.mnemonic} here`;
        default:
          // "io"
          return `${row.mnemonic}8 0x80`;
      }
    });
    const p = assemble(`here:\n${lines.join("\n")}\n`);
    const ins = decodeAll(p.code);
    assert.deepEqual(
      ins.map((i) => i.opcode),
      ISA.map((r) => r.opcode),
    );
    assert.deepEqual(
      ins.map((i) => i.length),
      ISA.map((r) => (r.length === LONG ? 12 : SHORT)),
    );
  });

  it("reports the first error with its line number (INVALID_INPUT)", () => {
    const cases: [string, RegExp][] = [
      ["nop\nfrobnicate rax", /line 2: unknown instruction 'frobnicate'/],
      ["mov rax", /line 1: mov takes 2 operand\(s\)/],
      ["mov 5, rax", /operand 1 of mov must be a register/],
      ["jmp nowhere", /line 1: unknown symbol 'nowhere'/],
      ["x:\nx:", /line 2: 'x' is defined twice/],
      ["load rax, rbx", /load needs a \[memory\] operand/],
      ["in8 rcx", /port register must be dx/],
      [".private buf, 0", /buf: size must be positive/],
      [".bogus 1", /unknown directive '.bogus'/],
      [".entry missing\nnop", /unknown entry label 'missing'/],
      ["rax:", /'rax' is a register name/],
    ];
    for (const [src, re] of cases) {
      assert.throws(
        () => assemble(src),
        (e) => isCiphervisorError(e, "INVALID_INPUT") && re.test(e.message),
        src,
      );
    }
  });

  it("assembles the documented example in docs/guest-isa.md", () => {
    const doc = readFileSync(join(import.meta.dirname, "../../docs/guest-isa.md"), "utf8");
    const blocks = [...doc.matchAll(/```asm\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(blocks.length >= 1);
    for (const b of blocks) assert.ok(assemble(b).code.length > 0);
    for (const row of ISA)
      assert.ok(doc.includes(`\`${row.mnemonic}`), `docs/guest-isa.md documents ${row.mnemonic}`);
  });
});
