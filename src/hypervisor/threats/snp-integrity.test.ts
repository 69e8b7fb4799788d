/**
 * docs/threat-model.md §8 item 5 (E-INTEGRITY-GAPS), issue 14: the three integrity attacks of integrity-gaps.test.ts
 * — replaying old ciphertext, remapping a GPA to another frame (SEVered), moving ciphertext blocks — set up the same
 * way against an SEV-SNP guest whose memory is assigned and validated through the Reverse Map Table
 * (src/machine/rmp.ts; APM vol. 2 section 15.36). Each now fails: the hypervisor's writes to the guest's pages
 * fault (#PF with the RMP bit), so replays and block moves never land, and a remapped GPA is caught — a #NPF with
 * the RMP bit the hypervisor sees, #VC PAGE_NOT_VALIDATED inside the guest, or the guest's PVALIDATE answering
 * CF = 0 on a page it had validated. Each test also runs the same steps against SEV-ES (or, for the block move,
 * Naples SEV as integrity-gaps.test.ts does), where they succeed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../../errors.ts";
import { createLab, type Lab } from "../../hypervisor/introspection/lab.ts";
import { createSnpLab, type SnpLab } from "../../hypervisor/introspection/snp-lab.ts";
import { SvmExit } from "../../machine/exit-codes.ts";
import { NPF_ENC, PF_RMP, RmpReturn, VC_PAGE_NOT_VALIDATED } from "../../machine/rmp.ts";
import { handleExit } from "../kvm/exit-handler.ts";

import { mustHlt, REPLAY, SEVERED, toHlt, u64 } from "./integrity-attacks.ts";

const TRIALS = 200;
const CONTROL_TRIALS = 20;

const esStep = (lab: Lab) => () => handleExit(lab.vm, lab.machine.vmrun(lab.vm.vmcb));

const rmpViolation = (e: unknown) => isCiphervisorError(e, "RMP_VIOLATION") && /RMP/.test(e.message);

const SEVERED_CHECKED = `
.private secret, 4096
.private response, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x5afe5afe5afe5afe
    store [response], rax
loop:
    rdrand rax
    store [secret], rax
    hlt                         ; a request arrives (the hypervisor may have remapped response)
    mov   rax, response
    mov   rcx, 0                ; 4 KiB
    mov   rdx, 1                ; validate
    pvalidate
    jb    intact                ; CF = 1: it was validated already — still the page the launch gave us
    mov   rbx, 0xbad0bad0bad0bad0
    store [mailbox], rbx        ; CF = 0: an unvalidated frame now sits at this GPA — refuse to answer
    hlt
    jmp   loop
intact:
    load  rbx, [response]
    store [mailbox], rbx
    hlt
    jmp   loop
`;

describe("SEV-SNP closes the integrity gaps (E-INTEGRITY-GAPS, issue 14)", () => {
  it(`replay: ${TRIALS} writes of old ciphertext all fault (#PF, RMP) and the guest reads its newest value`, () => {
    const values: bigint[] = [];
    const lab = createSnpLab({
      source: REPLAY,
      seed: "snp-replay",
      observer: { onRdrand: (v) => values.push(v) },
    });
    const sym = lab.image.program.symbols;
    const cell = sym.get("cell")!;
    const frame = lab.view.frameOf(cell)!;
    assert.deepEqual(
      [lab.rmp.entry(frame).assigned, lab.rmp.entry(frame).validated, lab.rmp.entry(frame).immutable],
      [true, true, true],
    );
    let refused = 0;
    let replayed = 0;
    for (let t = 0; t < TRIALS; t++) {
      mustHlt(lab.step);
      const old = lab.view.readGuestPhysical(cell, 4096); // reads are allowed: ciphertext
      assert.notEqual(u64(old), values.at(-1));
      mustHlt(lab.step);
      const current = lab.view.readGuestPhysical(cell, 4096);
      try {
        lab.view.writeGuestPhysical(cell, old);
      } catch (e) {
        assert.ok(rmpViolation(e), String(e));
        refused++;
      }
      assert.deepEqual(lab.view.readGuestPhysical(cell, 4096), current, "nothing was written");
      // Nor can the hypervisor take the page back to write it: the launch left it Immutable.
      assert.equal(lab.rmp.rmpupdate(frame, { assigned: false }), RmpReturn.FAIL_PERMISSION);
      mustHlt(lab.step);
      const reported = u64(lab.view.readGuestPhysical(sym.get("mailbox")!, 8));
      const [a, b] = values.slice(-2);
      assert.notEqual(a, b);
      if (reported === a) replayed++;
      assert.equal(reported, b);
    }
    assert.deepEqual({ refused, replayed }, { refused: TRIALS, replayed: 0 });
  });

  it("replay control: the same steps against SEV-ES succeed (integrity-gaps.test.ts)", () => {
    const values: bigint[] = [];
    const lab = createLab({
      source: REPLAY,
      mode: "sev-es",
      seed: "snp-replay-control",
      observer: { onRdrand: (v) => values.push(v) },
    });
    const sym = lab.image.program.symbols;
    let replayed = 0;
    for (let t = 0; t < CONTROL_TRIALS; t++) {
      mustHlt(esStep(lab));
      const old = lab.view.readGuestPhysical(sym.get("cell")!, 4096);
      mustHlt(esStep(lab));
      lab.view.writeGuestPhysical(sym.get("cell")!, old);
      mustHlt(esStep(lab));
      if (u64(lab.view.readGuestPhysical(sym.get("mailbox")!, 8)) === values.at(-2)) replayed++;
    }
    assert.equal(replayed, CONTROL_TRIALS);
  });

  it(`SEVered: ${TRIALS / 2} remaps to the secret's frame are each a #NPF with the RMP bit; nothing leaks`, () => {
    const secrets: bigint[] = [];
    const lab = createSnpLab({
      source: SEVERED,
      seed: "snp-severed",
      observer: { onRdrand: (v) => secrets.push(v) },
    });
    const sym = lab.image.program.symbols;
    const response = sym.get("response")!;
    const mailbox = sym.get("mailbox")!;
    const original = lab.view.frameOf(response)!;
    let leaked = 0;
    let caught = 0;
    for (let t = 0; t < TRIALS; t++) {
      mustHlt(lab.step);
      if (t % 2 === 1) {
        mustHlt(lab.step);
        assert.equal(u64(lab.view.readGuestPhysical(mailbox, 8)), 0x5afe5afe5afe5afen);
        continue;
      }
      lab.view.remap(response, lab.view.frameOf(sym.get("secret")!)!);
      const stopped = toHlt(lab.step);
      assert.ok(stopped, "the remapped access must not run to the HLT");
      const e = lab.view.lastExit();
      assert.equal(e.exitCode, SvmExit.NPF);
      assert.equal(e.exitInfo1 & PF_RMP, PF_RMP, "EXITINFO1 bit 31 (RMP)");
      assert.equal(e.exitInfo1 & NPF_ENC, NPF_ENC, "EXITINFO1 bit 34 (C = 1)");
      assert.equal(e.exitInfo2, BigInt(response));
      caught++;
      if (u64(lab.view.readGuestPhysical(mailbox, 8)) === secrets.at(-1)) leaked++;
      // The hypervisor gives up and puts the frame back; the load restarts and the echo is the right one.
      lab.view.remap(response, original);
      mustHlt(lab.step);
      assert.equal(u64(lab.view.readGuestPhysical(mailbox, 8)), 0x5afe5afe5afe5afen);
    }
    assert.deepEqual({ caught, leaked }, { caught: TRIALS / 2, leaked: 0 });
  });

  it("SEVered control: the same remap against SEV-ES makes the echo send the secret (integrity-gaps.test.ts)", () => {
    const secrets: bigint[] = [];
    const lab = createLab({
      source: SEVERED,
      mode: "sev-es",
      seed: "snp-severed-control",
      observer: { onRdrand: (v) => secrets.push(v) },
    });
    const sym = lab.image.program.symbols;
    let leaked = 0;
    for (let t = 0; t < CONTROL_TRIALS; t++) {
      mustHlt(esStep(lab));
      lab.view.remap(sym.get("response")!, lab.view.frameOf(sym.get("secret")!)!);
      mustHlt(esStep(lab));
      if (u64(lab.view.readGuestPhysical(sym.get("mailbox")!, 8)) === secrets.at(-1)) leaked++;
    }
    assert.equal(leaked, CONTROL_TRIALS);
  });

  it("a remap to a fresh frame the hypervisor assigns at the same GPA: #VC 0x404 in the guest, which stops", () => {
    const exceptions: { vector: number; errorCode: bigint }[] = [];
    const lab = createSnpLab({
      source: SEVERED,
      seed: "snp-fresh-frame",
      observer: { onException: (vector, errorCode) => exceptions.push({ vector, errorCode }) },
    });
    const sym = lab.image.program.symbols;
    const response = sym.get("response")!;
    mustHlt(lab.step);
    const seen = exceptions.length;
    // The original frame cannot be reassigned (Immutable); a fresh one can, and RMPUPDATE leaves it unvalidated.
    assert.equal(
      lab.rmp.rmpupdate(lab.view.frameOf(response)!, { assigned: false }),
      RmpReturn.FAIL_PERMISSION,
    );
    const fresh = lab.frames.alloc();
    lab.view.writePhysical(fresh, lab.view.readGuestPhysical(sym.get("secret")!, 4096));
    assert.equal(
      lab.rmp.rmpupdate(fresh, { assigned: true, asid: lab.vm.asid, gpa: response }),
      RmpReturn.SUCCESS,
    );
    lab.view.remap(response, fresh);
    const stopped = toHlt(lab.step);
    assert.ok(stopped && stopped.outcome.action === "stop");
    assert.deepEqual(exceptions.slice(seen), [{ vector: 29, errorCode: BigInt(VC_PAGE_NOT_VALIDATED) }]);
    assert.equal(u64(lab.view.readGuestPhysical(sym.get("mailbox")!, 8)), 0n, "the echo never answered");
  });

  it("the guest's PVALIDATE answers CF = 1 on its own page and CF = 0 after a remap: it refuses to answer", () => {
    const lab = createSnpLab({ source: SEVERED_CHECKED, seed: "snp-pvalidate" });
    const sym = lab.image.program.symbols;
    const response = sym.get("response")!;
    const mailbox = sym.get("mailbox")!;
    mustHlt(lab.step);
    mustHlt(lab.step);
    assert.equal(u64(lab.view.readGuestPhysical(mailbox, 8)), 0x5afe5afe5afe5afen, "CF = 1: intact");
    // Remap to the secret's frame: PVALIDATE's own RMP check fails as #NPF (RMP), seen by the hypervisor.
    mustHlt(lab.step);
    lab.view.remap(response, lab.view.frameOf(sym.get("secret")!)!);
    assert.ok(toHlt(lab.step));
    assert.equal(lab.view.lastExit().exitCode, SvmExit.NPF);
    assert.equal(lab.view.lastExit().exitInfo1 & PF_RMP, PF_RMP);
    // Remap to a fresh frame assigned at the GPA: PVALIDATE validates it (CF = 0) and the guest refuses.
    const fresh = lab.frames.alloc();
    lab.rmp.rmpupdate(fresh, { assigned: true, asid: lab.vm.asid, gpa: response });
    lab.view.remap(response, fresh);
    mustHlt(lab.step);
    assert.equal(u64(lab.view.readGuestPhysical(mailbox, 8)), 0xbad0bad0bad0bad0n, "CF = 0: remapped");
    assert.equal(lab.rmp.entry(fresh).validated, true);
  });

  it("block move: copying a ciphertext block within a private page faults; the guest reads what it wrote", () => {
    const source = `
.private page, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x0123456789abcdef
    store [page], rax
    hlt                        ; the hypervisor tries to move the block at page+0 to page+0x40
    load  rbx, [page+0x40]
    store [mailbox], rbx
    load  rbx, [page]
    store [mailbox+8], rbx
    hlt
`;
    const naples = `
.private page, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x0123456789abcdef
    store [page], rax
    mov   rax, 0x1111111111111111
    store [page+8], rax
    hlt                        ; the hypervisor tries to move the block at page+0 to page+0x40
    load  rbx, [page+0x40]
    store [mailbox], rbx
    load  rbx, [page+0x48]
    store [mailbox+8], rbx
    hlt
`;
    const lab: SnpLab = createSnpLab({ source, seed: "snp-block-move" });
    const sym = lab.image.program.symbols;
    const page = sym.get("page")!;
    mustHlt(lab.step);
    const before = lab.view.readGuestPhysical(page, 4096);
    assert.throws(
      () => lab.view.writeGuestPhysical(page + 0x40, lab.view.readGuestPhysical(page, 16)),
      rmpViolation,
    );
    assert.throws(
      () => lab.view.writePhysical(lab.view.frameOf(page)! + 0x40, new Uint8Array(16)),
      rmpViolation,
    );
    assert.deepEqual(lab.view.readGuestPhysical(page, 4096), before);
    mustHlt(lab.step);
    const mailbox = lab.view.readGuestPhysical(sym.get("mailbox")!, 16);
    assert.deepEqual([u64(mailbox), u64(mailbox.subarray(8))], [0n, 0x0123456789abcdefn]);
    // Control: on Naples SEV (XE mode) the same move lands and decrypts to P ⊕ T(a) ⊕ T(b) (integrity-gaps.test.ts).
    const es = createLab({ generation: "naples", mode: "sev", source: naples });
    mustHlt(esStep(es));
    const p = es.image.program.symbols.get("page")!;
    const moved = es.view.readGuestPhysical(p, 16);
    es.view.writeGuestPhysical(p + 0x40, moved);
    assert.deepEqual(es.view.readGuestPhysical(p + 0x40, 16), moved, "the write landed");
  });
});
