/**
 * An SEV-SNP guest starts its APs itself with SNP AP creation (snp-smp.ts; hypervisor/kvm/ap-creation.ts): it
 * writes each AP's VMSA into a private page, marks the page a VMSA with RMPADJUST, and asks the host to CREATE; the
 * host switches the AP's VMCB to that page and runs it; the AP registers its own GHCB and comes online. A host that
 * refuses one AP leaves that CPU down (the guest takes the VMSA bit back); a host that does not advertise the
 * feature gets no request at all, and the APs keep the VMSAs the host launched.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SnpVcpu } from "../../hypervisor/kvm/snp-vcpus.ts";
import { createSnpBench, stopReason } from "../../hypervisor/snp-test-bench.ts";
import { SNP_AP_CREATION_EXIT } from "../../machine/ap-creation.ts";
import { SvmExit, VMEXIT_INVALID } from "../../machine/exit-codes.ts";
import { GhcbHvFeature } from "../../machine/ghcb.ts";
import { RmpReturn } from "../../machine/rmp.ts";
import { apPages } from "../layout.ts";

const PROGRAM = `
.shared mailbox, 4096
start:
    hlt
`;

/** The console is the serial port's text (printk's OUT exits through the GHCB). */
function console(b: ReturnType<typeof createSnpBench>): string {
  return b.vm.devices.console;
}

describe("SEV-SNP APs started by the guest (SNP AP creation)", () => {
  it("3 APs: each runs from the VMSA page the guest built, registers its own GHCB and comes online", () => {
    const b = createSnpBench({ source: PROGRAM, vcpus: 4 });
    const launched = b.vcpus.vcpus.map((v) => v.vmcb.control.vmsaPa);
    const exits = b.run();
    assert.equal(exits.at(-1)!.exit.exitCode, SvmExit.HLT);
    assert.match(console(b), /^smp: Brought up 1 node, 4 CPUs\n/);
    assert.equal(exits.filter((h) => h.ghcb?.exitCode === SNP_AP_CREATION_EXIT).length, 3);
    for (const id of [1, 2, 3]) {
      const ap = b.vcpus.byApicId(id)!;
      const pages = apPages(id);
      const s = ap.status();
      assert.deepEqual(
        [s.vmsa, s.vmsaGpa, s.registeredGhcb, s.mpState],
        ["guest", pages.vmsa, pages.ghcb, "halted"],
      );
      assert.equal(s.vmsaPa, b.view.frameOf(pages.vmsa));
      assert.notEqual(s.vmsaPa, launched[id], "no longer the launch VMSA");
      // RMPADJUST with RDX = target VMPL1 | VMSA: the page is a VMSA, VMPL1 has no rights (Linux's `1 | VMSA`).
      const e = b.rmp.entry(s.vmsaPa);
      assert.deepEqual([e.assigned, e.validated, e.vmsa, e.vmplPerms[1]], [true, true, true, 0]);
      assert.equal(b.rmp.entry(b.view.frameOf(pages.ghcb)!).assigned, false, "its GHCB was made shared");
    }
    assert.deepEqual(b.vcpus.byApicId(0)!.status().vmsa, "launch", "the BSP runs from its launched VMSA");
  });

  it("the hypervisor cannot change an AP's VMSA: its write faults; an RMPUPDATE clears the VMSA bit and VMRUN refuses", () => {
    const b = createSnpBench({ source: PROGRAM, vcpus: 2 });
    b.run();
    const ap = b.vcpus.byApicId(1)!;
    const pa = ap.vmcb.control.vmsaPa;
    assert.throws(() => b.view.writePhysical(pa, new Uint8Array(8)), /RMP/);
    assert.equal(b.rmp.rmpupdate(pa, { assigned: false }), RmpReturn.SUCCESS);
    assert.equal(
      b.rmp.rmpupdate(pa, { assigned: true, asid: b.asid, gpa: apPages(1).vmsa }),
      RmpReturn.SUCCESS,
    );
    ap.mpState = "runnable";
    const exit = b.machine.vmrun(ap.vmcb);
    assert.equal(exit.exitCode, VMEXIT_INVALID);
    assert.match(exit.reason ?? "", /not a VMSA page assigned to ASID/);
  });

  it("a host that refuses one AP (no vCPU with that APIC ID): that CPU stays down, its page stops being a VMSA", () => {
    const b = createSnpBench({ source: PROGRAM, vcpus: 3 });
    (b.vcpus.vcpus as SnpVcpu[]).pop();
    const exits = b.run();
    assert.equal(exits.at(-1)!.exit.exitCode, SvmExit.HLT);
    const refused = exits.filter((h) => h.ghcb?.refusal !== undefined);
    assert.equal(refused.length, 1);
    assert.match(refused[0]!.ghcb!.refusal!, /invalid AP APIC ID 0x2/);
    assert.match(
      console(b),
      /smpboot: do_boot_cpu failed\(-22\) to wakeup CPU#2\nsmp: Brought up 1 node, 2 CPUs\n/,
    );
    const vmsa2 = b.rmp.entry(b.view.frameOf(apPages(2).vmsa)!);
    assert.deepEqual([vmsa2.assigned, vmsa2.vmsa], [true, false]);
    assert.equal(b.vcpus.byApicId(1)!.status().vmsa, "guest");
  });

  it("a host without the SNP AP creation feature gets no request; the APs keep their launch VMSAs, unstarted", () => {
    const b = createSnpBench({ source: PROGRAM, vcpus: 3, hvFeatures: GhcbHvFeature.SNP });
    const exits = b.run();
    assert.equal(exits.at(-1)!.exit.exitCode, SvmExit.HLT);
    assert.equal(exits.filter((h) => h.ghcb?.exitCode === SNP_AP_CREATION_EXIT).length, 0);
    assert.match(console(b), /^smp: Brought up 1 node, 1 CPU\n/);
    for (const id of [1, 2]) {
      assert.deepEqual(
        [
          b.vcpus.byApicId(id)!.status().vmsa,
          b.vcpus.byApicId(id)!.status().mpState,
          b.vcpus.byApicId(id)!.exits,
        ],
        ["launch", "uninitialized", 0],
      );
    }
  });

  it("a host that advertises no SNP at all: the kernel ends the VM (reason set 0, code 2)", () => {
    const b = createSnpBench({ source: PROGRAM, hvFeatures: 0n });
    const last = b.run().at(-1)!;
    assert.match(stopReason(last), /reason set 0, code 2: SEV-SNP not supported/);
  });

  it("RMPADJUST takes RCX = page size and RDX = target VMPL | permissions << 8 | VMSA << 16 (Linux's operands)", () => {
    const b = createSnpBench({
      source: `
.private page, 4096
.shared  mailbox, 4096
start:
    mov   rax, page
    mov   rcx, 0
    mov   rdx, 0x0302            ; VMPL2 gets READ | WRITE
    rmpadjust
    store [mailbox], rax
    mov   rax, page
    mov   rcx, 0
    mov   rdx, 0x20000           ; bit 17 is reserved
    rmpadjust
    store [mailbox+8], rax
    hlt
`,
    });
    assert.equal(b.run().at(-1)!.exit.exitCode, SvmExit.HLT);
    const sym = b.image.program.symbols;
    const m = b.view.readGuestPhysical(sym.get("mailbox")!, 16);
    const v = new DataView(m.buffer, m.byteOffset);
    assert.deepEqual([v.getBigUint64(0, true), v.getBigUint64(8, true)], [0n, BigInt(RmpReturn.FAIL_INPUT)]);
    assert.deepEqual(b.rmp.entry(b.view.frameOf(sym.get("page")!)!).vmplPerms, [0x1f, 0, 3, 0]);
  });
});
