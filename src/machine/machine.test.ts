import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { isCiphervisorError } from "../errors.ts";
import { createLab, type Lab } from "../hypervisor/introspection/lab.ts";
import { decodeVmsa } from "../measure/vmsa.ts";
import { KeySlotTable } from "../sev/key-slots.ts";
import { cpuModel } from "./cpu-models.ts";
import { Dram } from "./dram.ts";
import { SvmExit, VMEXIT_INVALID } from "./exit-codes.ts";
import { GhcbMsr } from "./ghcb.ts";
import { Machine } from "./machine.ts";
import { NestedPageTable } from "./nested-page-table.ts";
import { VmsaIntegrityStore } from "./trusted-memory.ts";
import { Vmcb } from "./vmcb.ts";

const MODES = ["none", "sev", "sev-es"] as const;

/** A program that exercises every intercepted instruction kind and leaves its results in a shared page. */
const WORKOUT = `
.shared out, 4096
.private scratch, 4096
start:
    mov   rax, 0
    cpuid
    store32 [out], rbx           ; "Auth"
    mov   rcx, 0xc0000103
    mov   rax, 0x1234
    mov   rdx, 0x5
    wrmsr
    mov   rax, 0
    mov   rdx, 0
    rdmsr
    store [out+8], rax
    store [out+16], rdx
    mov   rax, 0xabcd
    in8   0x3fd                  ; merges into AL: 0xab60
    store [out+24], rax
    mov   rax, 1                 ; KVM_HC_VAPIC_POLL_IRQ
    vmmcall
    store [out+32], rax
    mov   rax, 0x7777
    store [scratch], rax
    load  rbx, [scratch]
    store [out+40], rbx
    mov   rax, 'o'
    out8  0x3f8
    mov   rax, 'k'
    out8  0x3f8
    mov   rbx, 0x1122334455667788
    hlt
    mov   rax, 0
    out8  0xf4
`;

function outWords(lab: Lab, n: number): bigint[] {
  const gva = lab.image.program.symbols.get("out")!;
  const bytes = lab.view.readGuestPhysical(gva, n * 8);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
}

describe("the emulated machine runs guest programs (issue 3)", () => {
  for (const mode of MODES) {
    it(`${mode}: every intercepted instruction reaches the host and gives the same results`, () => {
      const lab = createLab({ source: WORKOUT, mode });
      const exits = lab.run();
      assert.equal(exits.at(-1)!.outcome.action, "stop");
      assert.match((exits.at(-1)!.outcome as { reason: string }).reason, /isa-debug-exit/);
      assert.equal(lab.vm.devices.console, "ok");
      assert.deepEqual(outWords(lab, 6), [0x68747541n, 0x1234n, 0x5n, 0xab60n, 0n, 0x7777n]);
    });
  }

  it("plain SEV: registers sit in the VMCB save area in plaintext, private memory is ciphertext", () => {
    const lab = createLab({ source: WORKOUT, mode: "sev" });
    const exits = lab.run({ until: (h) => h.exit.exitCode === SvmExit.HLT });
    assert.equal(exits.at(-1)!.exit.exitCode, SvmExit.HLT);
    const page = new Uint8Array(4096);
    page.set(lab.view.saveArea().bytes.subarray(0x400, 0x400 + 0x670));
    assert.equal(decodeVmsa(page).rbx, 0x1122334455667788n);
    const scratch = lab.image.program.symbols.get("scratch")!;
    assert.notDeepEqual(
      lab.view.readGuestPhysical(scratch, 8),
      new Uint8Array([0x77, 0x77, 0, 0, 0, 0, 0, 0]),
    );
  });

  it("SEV-ES: the kernel negotiates the GHCB protocol, registers its GHCB, and every NAE goes through #VC", () => {
    const lab = createLab({ source: WORKOUT, mode: "sev-es" });
    const exits = lab.run();
    assert.ok(exits.every((h) => h.exit.exitCode === SvmExit.VMGEXIT || h.exit.exitCode === SvmExit.HLT));
    const msr = exits.filter((h) => h.msrProtocol).map((h) => Number(h.msrProtocol!.request & 0xfffn));
    assert.deepEqual(msr, [GhcbMsr.SEV_INFO_REQ, GhcbMsr.REG_GPA_REQ]);
    assert.equal(lab.vm.registeredGhcb.gpa, BigInt(lab.image.ghcbGpa!));
    const ghcbCodes = exits.filter((h) => h.ghcb).map((h) => Number(h.ghcb!.exitCode));
    assert.deepEqual(ghcbCodes, [0x72, 0x7c, 0x7c, 0x7b, 0x81, 0x7b, 0x7b, 0x7b]);
    // The VMSA in DRAM is ciphertext: the value in RBX appears nowhere in it.
    const vmsa = Buffer.from(lab.view.saveArea().bytes);
    const rbx = Buffer.alloc(8);
    rbx.writeBigUInt64LE(0x1122334455667788n);
    assert.equal(vmsa.indexOf(rbx), -1);
  });

  it("Linux 5.10 speaks GHCB protocol 1 and does not register its GHCB", () => {
    const lab = createLab({ source: WORKOUT, mode: "sev-es", guestOs: "linux-5.10" });
    const exits = lab.run();
    const msr = exits.filter((h) => h.msrProtocol).map((h) => Number(h.msrProtocol!.request & 0xfffn));
    assert.deepEqual(msr, [GhcbMsr.SEV_INFO_REQ]);
    assert.equal(lab.vm.devices.console, "ok");
  });

  it("a kernel without SEV-ES support dies at its first #VC, with a reason a person understands", () => {
    const lab = createLab({ source: WORKOUT, mode: "sev-es", guestOs: "linux-4.16" });
    const exits = lab.run();
    assert.equal(exits.length, 1);
    assert.equal(exits[0]!.exit.exitCode, SvmExit.SHUTDOWN);
    const cpuidRip = (lab.image.program.symbols.get("start")! + 12).toString(16);
    assert.equal(
      (exits[0]!.outcome as { reason: string }).reason,
      `guest OS Linux 4.16–5.9 does not support SEV-ES: unhandled #VC on CPUID at RIP 0x${cpuidRip}`,
    );
  });

  it("a kernel without SEV support reads its own encrypted memory as ciphertext and stops at boot", () => {
    const lab = createLab({ source: WORKOUT, mode: "sev", guestOs: "windows-server-2022" });
    const exits = lab.run();
    assert.equal(exits.length, 1);
    assert.match(
      (exits[0]!.outcome as { reason: string }).reason,
      /Windows Server 2022 does not support SEV/,
    );
    const plain = createLab({ source: WORKOUT, mode: "none", guestOs: "windows-server-2022" });
    plain.run();
    assert.equal(plain.vm.devices.console, "ok");
  });

  for (const mode of ["sev", "sev-es"] as const) {
    it(`${mode}: a nested page fault shows the GPA, and the access restarts once the host maps the page`, () => {
      const lab = createLab({ source: WORKOUT, mode });
      const scratch = lab.image.program.symbols.get("scratch")!;
      const frame = lab.view.frameOf(scratch)!;
      lab.vm.npt.unmap(scratch);
      const exits = lab.run({ until: (h) => h.exit.exitCode === SvmExit.NPF, maxExits: 50 });
      const npf = exits.at(-1)!;
      assert.equal(npf.exit.exitCode, SvmExit.NPF);
      assert.equal(npf.exit.exitInfo2, BigInt(scratch));
      assert.equal(npf.exit.exitInfo1 & 2n, 2n, "a write fault");
      lab.view.remap(scratch, frame);
      lab.run();
      assert.deepEqual(outWords(lab, 6).at(-1), 0x7777n);
    });
  }

  it("the host timer ends a run that never exits, and the guest continues where it was", () => {
    const lab = createLab({
      source: "start:\n  add rbx, 1\n  jmp start\n",
      mode: "sev",
      instructionBudget: 1000,
    });
    const rbx = () => {
      const page = new Uint8Array(4096);
      page.set(lab.view.saveArea().bytes.subarray(0x400, 0x400 + 0x670));
      return decodeVmsa(page).rbx;
    };
    assert.equal(lab.step().exit.exitCode, SvmExit.INTR);
    const first = rbx();
    assert.equal(lab.step().exit.exitCode, SvmExit.INTR);
    // Two instructions per increment: the second run adds exactly 1000 / 2.
    assert.ok(first > 0n);
    assert.equal(rbx() - first, 500n);
  });

  it("an exception the hypervisor injects reaches the guest's IDT", () => {
    const lab = createLab({ source: WORKOUT, mode: "sev" });
    lab.vm.vmcb.control.eventInj = { vector: 13, type: 3, errorCode: 0 };
    const exits = lab.run();
    assert.equal(exits.length, 1);
    assert.match((exits[0]!.outcome as { reason: string }).reason, /unhandled #GP/);
  });
});

describe("VMRUN refuses what the hardware refuses (VMEXIT_INVALID)", () => {
  function bare(generation: "naples" | "rome", minSevAsid?: number) {
    const model = cpuModel(generation);
    const dram = new Dram(16 * 1024 * 1024);
    const slots = new KeySlotTable(model.memoryMode, seededRandom(1));
    const machine = new Machine({
      model,
      minSevAsid,
      memory: dram,
      keySlots: slots,
      vmsaIntegrity: new VmsaIntegrityStore(),
      rng: seededRandom(2),
    });
    return { machine, slots, model };
  }

  it("a Naples host refuses SEV-ES and says why", () => {
    const { machine } = bare("naples");
    const vmcb = new Vmcb(0x1000, { asid: 1, mode: "sev-es", npt: new NestedPageTable(), vmsaPa: 0x2000 });
    const exit = machine.vmrun(vmcb);
    assert.equal(exit.exitCode, VMEXIT_INVALID);
    assert.equal(vmcb.control.exitCode, VMEXIT_INVALID);
    assert.match(exit.reason!, /naples .* does not support SEV-ES/);
  });

  it("a host with min_sev_asid = 1 has no ES pool and says so", () => {
    const { machine } = bare("rome", 1);
    assert.equal(machine.asidPools().es.count, 0);
    assert.equal(machine.cpuid8000001f().edx, 1);
    const exit = machine.vmrun(
      new Vmcb(0x1000, { asid: 1, mode: "sev-es", npt: new NestedPageTable(), vmsaPa: 0x2000 }),
    );
    assert.equal(exit.exitCode, VMEXIT_INVALID);
    assert.match(exit.reason!, /min_sev_asid = 1: the BIOS left no SEV-ES ASIDs/);
    assert.throws(
      () => createLab({ source: WORKOUT, mode: "sev-es", generation: "rome", minSevAsid: 1 }),
      (e) => isCiphervisorError(e, "REQUIREMENT_FAILED") && /no SEV-ES ASIDs/.test(e.message),
    );
  });

  it("an SEV-ES ASID must come from the ES pool, and a key must be programmed", () => {
    const { machine, slots } = bare("rome");
    const inSevPool = machine.vmrun(
      new Vmcb(0x1000, { asid: 200, mode: "sev-es", npt: new NestedPageTable(), vmsaPa: 0x2000 }),
    );
    assert.match(inSevPool.reason!, /plain-SEV pool/);
    const noKey = machine.vmrun(new Vmcb(0x1000, { asid: 200, mode: "sev", npt: new NestedPageTable() }));
    assert.match(noKey.reason!, /no memory-encryption key is programmed for ASID 200/);
    slots.program(5, new Uint8Array(16));
    const noVmsa = machine.vmrun(
      new Vmcb(0x1000, { asid: 5, mode: "sev-es", npt: new NestedPageTable(), vmsaPa: 0x2000 }),
    );
    assert.match(noVmsa.reason!, /VMSA at 0x2000 is not the one/);
    const badVmcb = machine.vmrun(
      new Vmcb(0x10_0000_0000, { asid: 5, mode: "sev", npt: new NestedPageTable() }),
    );
    assert.match(badVmcb.reason!, /not a page of system memory/);
  });
});
