/**
 * Page state changes the way Linux makes them (snp-memory.ts, the kernel calls SET_MEMORY_SHARED / _PRIVATE), with
 * the host's KVM answering the SNP_PSC event (hypervisor/kvm/page-state-change.ts): a private page made shared is
 * plaintext the hypervisor reads and writes; made private again it is the guest's (a host write faults, per the RMP)
 * and holds what the guest writes. A hypervisor that lies is caught: answering PRIVATE without the RMPUPDATE, the
 * guest's PVALIDATE faults (#NPF, RMP); answering SHARED without it, the guest's first shared write faults;
 * swapping the page before the guest shares it, the guest's PVALIDATE answers CF = 1 and the kernel stops; using the
 * exit to swap another private page, that page raises #VC 0x404 at its next access.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../../errors.ts";
import { createSnpBench, type SnpBench, stopReason } from "../../hypervisor/snp-test-bench.ts";
import type { MachineObserver } from "../../machine/execution.ts";
import { SvmExit } from "../../machine/exit-codes.ts";
import { GHCB_SHARED_BUFFER } from "../../machine/ghcb.ts";
import { PscDescriptor, PscOp, SNP_PSC_EXIT } from "../../machine/page-state-change.ts";
import { PF_RMP, type Rmp, RmpReturn, VC_PAGE_NOT_VALIDATED } from "../../machine/rmp.ts";
import { guestOsProfile } from "../os-profiles.ts";
import { kernelAddress, Routine } from "./routines.ts";

const profile = guestOsProfile("linux-5.19");
const SHARED = kernelAddress(profile, Routine.SET_MEMORY_SHARED);
const PRIVATE = kernelAddress(profile, Routine.SET_MEMORY_PRIVATE);

/** Converts `buf` shared and back, with a HLT at each stage for the hypervisor. */
const PROGRAM = `
.private buf, 12288
.private other, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x1111111111111111
    store [buf], rax
    store [other], rax
    hlt                          ; A: buf private
    mov   rax, buf
    mov   rcx, PAGES
    call  ${SHARED}              ; set_memory_decrypted(buf, PAGES)
    store [mailbox], rax
    mov   rax, 0x2222222222222222
    store [buf], rax
    hlt                          ; B: buf shared
    load  rbx, [buf]
    store [mailbox+8], rbx
    mov   rax, buf
    mov   rcx, PAGES
    call  ${PRIVATE}             ; set_memory_encrypted(buf, PAGES)
    store [mailbox+16], rax
    mov   rax, 0x3333333333333333
    store [buf], rax
    hlt                          ; C: buf private again
    load  rbx, [buf]
    store [mailbox+24], rbx
    load  rbx, [other]
    store [mailbox+32], rbx
    hlt
`;

function u64(b: Uint8Array, at = 0): bigint {
  return new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0, true);
}

function setup(o: { pages?: number; pscBatchLimit?: number; observer?: MachineObserver } = {}) {
  const b = createSnpBench({
    source: PROGRAM.replaceAll("PAGES", String(o.pages ?? 1)),
    ...(o.pscBatchLimit ? { pscBatchLimit: o.pscBatchLimit } : {}),
    ...(o.observer ? { observer: o.observer } : {}),
  });
  const sym = b.image.program.symbols;
  const exits: ReturnType<SnpBench["step"]>[] = [];
  /** Runs to the next HLT of the BSP; fails the test if the host stops the guest first. */
  const toHlt = () => {
    for (let i = 0; i < 5000; i++) {
      const h = b.step();
      exits.push(h);
      if (h.outcome.action === "stop") assert.fail(h.outcome.reason);
      if (h.exit.exitCode === SvmExit.HLT) return;
    }
    assert.fail("no HLT");
  };
  /** Steps until an SNP_PSC request for `op` is answered (the host's handling done, the guest not yet resumed). */
  const toPsc = (op: number) => {
    for (let i = 0; i < 100; i++) {
      const h = b.step();
      if (h.outcome.action === "stop") assert.fail(h.outcome.reason);
      if (h.ghcb?.exitCode === SNP_PSC_EXIT) {
        const g = b.view.ghcb()!;
        const d = new PscDescriptor(g.bytes.subarray(GHCB_SHARED_BUFFER, 0xff0));
        if (d.entry(0).op === op) return h;
      }
    }
    assert.fail("no page state change");
  };
  const buf = sym.get("buf")!;
  const mailbox = (at: number) => u64(b.view.readGuestPhysical(sym.get("mailbox")!, 64), at);
  const entry = (gpa: number) => b.rmp.entry(b.view.frameOf(gpa)!);
  return { b, sym, buf, exits, toHlt, toPsc, mailbox, entry };
}

const rmpViolation = (e: unknown) => isCiphervisorError(e, "RMP_VIOLATION");

describe("SEV-SNP page state changes made by the guest kernel", () => {
  it("shared: the hypervisor reads and writes plaintext; private again: its write faults, the guest's data stays", () => {
    const t = setup();
    t.toHlt(); // boot, then A
    assert.deepEqual([t.entry(t.buf).assigned, t.entry(t.buf).validated], [true, true]);
    t.toHlt(); // B
    assert.equal(t.mailbox(0), 0n, "set_memory_decrypted returned 0");
    assert.equal(t.entry(t.buf).assigned, false, "hypervisor-owned");
    assert.equal(u64(t.b.view.readGuestPhysical(t.buf, 8)), 0x2222222222222222n, "plaintext");
    t.b.view.writeGuestPhysical(t.buf, new Uint8Array(8).fill(0x44));
    t.toHlt(); // C
    assert.equal(t.mailbox(8), 0x4444444444444444n, "the guest read what the hypervisor wrote");
    assert.equal(t.mailbox(16), 0n);
    const e = t.entry(t.buf);
    assert.deepEqual([e.assigned, e.asid, e.gpa, e.validated], [true, t.b.asid, t.buf, true]);
    assert.notEqual(u64(t.b.view.readGuestPhysical(t.buf, 8)), 0x3333333333333333n, "ciphertext again");
    assert.throws(() => t.b.view.writeGuestPhysical(t.buf, new Uint8Array(8)), rmpViolation);
    t.toHlt();
    assert.deepEqual([t.mailbox(24), t.mailbox(32)], [0x3333333333333333n, 0x1111111111111111n]);
    const psc = t.exits.filter((h) => h.ghcb?.exitCode === SNP_PSC_EXIT);
    assert.equal(psc.length, 1 + 2, "one at boot, one each way");
  });

  it("a host that completes one entry per request: the kernel re-issues until cur_entry passes end_entry", () => {
    const t = setup({ pages: 3, pscBatchLimit: 1 });
    t.toHlt();
    const before = t.exits.length;
    t.toHlt();
    const psc = t.exits.slice(before).filter((h) => h.ghcb?.exitCode === SNP_PSC_EXIT);
    assert.equal(psc.length, 3);
    for (const i of [0, 1, 2]) assert.equal(t.entry(t.buf + i * 4096).assigned, false);
    t.toHlt();
    t.toHlt();
    assert.deepEqual([t.mailbox(16), t.mailbox(24)], [0n, 0x3333333333333333n]);
    for (const i of [0, 1, 2]) assert.equal(t.entry(t.buf + i * 4096).validated, true);
  });

  it("a kernel call with a bad request (not page aligned, or already shared) returns −22 and changes nothing", () => {
    const b = createSnpBench({
      source: `
.private buf, 4096
.shared  mailbox, 4096
start:
    mov   rax, buf
    add   rax, 8
    mov   rcx, 1
    call  ${SHARED}
    store [mailbox], rax
    mov   rax, mailbox
    mov   rcx, 1
    call  ${SHARED}
    store [mailbox+8], rax
    hlt
`,
    });
    const last = b.run().at(-1)!;
    assert.equal(last.exit.exitCode, SvmExit.HLT);
    const m = b.view.readGuestPhysical(b.image.program.symbols.get("mailbox")!, 16);
    assert.deepEqual([u64(m), u64(m, 8)], [(1n << 64n) - 22n, (1n << 64n) - 22n]);
  });
});

describe("a hypervisor that lies about page state changes is caught", () => {
  it("PRIVATE answered without the RMPUPDATE: the guest's PVALIDATE faults (#NPF, RMP) at the page", () => {
    const t = setup();
    t.toHlt();
    t.toHlt();
    // The host's KVM answers success but its RMPUPDATEs go nowhere.
    const honest = t.b.kvm.rmp;
    const liar = {
      entry: (pa: number) => honest.entry(pa),
      rmpupdate: () => RmpReturn.SUCCESS,
    } as unknown as Rmp;
    t.b.kvm.rmp = liar;
    const h = t.toPsc(PscOp.PRIVATE);
    assert.deepEqual(h.ghcb?.response, { info1: 0n, info2: 0n });
    t.b.kvm.rmp = honest;
    const next = t.b.step();
    assert.equal(next.exit.exitCode, SvmExit.NPF);
    assert.equal(next.exit.exitInfo1 & PF_RMP, PF_RMP);
    assert.equal(next.exit.exitInfo2, BigInt(t.buf));
    assert.equal(next.outcome.action, "stop");
    assert.equal(t.entry(t.buf).assigned, false, "the page never became private");
  });

  it("SHARED answered without the RMPUPDATE: the guest's first shared write faults; nothing leaks in plaintext", () => {
    const t = setup();
    t.toHlt();
    const honest = t.b.kvm.rmp;
    t.b.kvm.rmp = {
      entry: (pa: number) => honest.entry(pa),
      rmpupdate: () => RmpReturn.SUCCESS,
    } as unknown as Rmp;
    t.toPsc(PscOp.SHARED);
    t.b.kvm.rmp = honest;
    let stop: ReturnType<SnpBench["step"]> | undefined;
    for (let i = 0; i < 20 && !stop; i++) {
      const h = t.b.step();
      if (h.outcome.action === "stop") stop = h;
    }
    assert.ok(stop, "the guest cannot go on");
    assert.equal(stop.exit.exitCode, SvmExit.NPF);
    assert.equal(stop.exit.exitInfo1 & PF_RMP, PF_RMP);
    assert.equal(stop.exit.exitInfo2, BigInt(t.buf));
    assert.equal(t.entry(t.buf).assigned, true);
    assert.notEqual(u64(t.b.view.readGuestPhysical(t.buf, 8)), 0x2222222222222222n);
  });

  it("the page swapped for a fresh one before the guest shares it: the rescinding PVALIDATE answers CF = 1", () => {
    const t = setup();
    t.toHlt();
    const fresh = t.b.frames.alloc();
    assert.equal(t.b.rmp.rmpupdate(fresh, { assigned: true, asid: t.b.asid, gpa: t.buf }), RmpReturn.SUCCESS);
    t.b.view.remap(t.buf, fresh);
    let stop: ReturnType<SnpBench["step"]> | undefined;
    for (let i = 0; i < 20 && !stop; i++) {
      const h = t.b.step();
      if (h.outcome.action === "stop") stop = h;
    }
    assert.match(stopReason(stop), /reason set 1, code 2: PVALIDATE failed/);
    assert.equal(
      t.exits.filter((h) => h.ghcb?.exitCode === SNP_PSC_EXIT).length,
      1,
      "the kernel never asked for the swapped page",
    );
  });

  it("the exit used to swap another private page under the guest: #VC 0x404 when the guest next reads it", () => {
    const vc: bigint[] = [];
    const t = setup({ observer: { onException: (vector, code) => vector === 29 && vc.push(code) } });
    t.toHlt();
    t.toHlt();
    const other = t.sym.get("other")!;
    t.toPsc(PscOp.PRIVATE);
    // Besides the honest RMPUPDATE, the hypervisor maps a fresh frame it assigned at `other`'s GPA.
    const fresh = t.b.frames.alloc();
    t.b.rmp.rmpupdate(fresh, { assigned: true, asid: t.b.asid, gpa: other });
    t.b.view.remap(other, fresh);
    const seen = vc.length;
    let stop: ReturnType<SnpBench["step"]> | undefined;
    for (let i = 0; i < 50 && !stop; i++) {
      const h = t.b.step();
      if (h.outcome.action === "stop") stop = h;
    }
    assert.match(stopReason(stop), /requested termination \(reason set 0, code 0/);
    assert.deepEqual(vc.slice(seen), [BigInt(VC_PAGE_NOT_VALIDATED)]);
    assert.equal(t.mailbox(24), 0x3333333333333333n, "the converted page itself is fine");
    assert.equal(t.mailbox(32), 0n, "the guest never reported the swapped page");
  });
});
