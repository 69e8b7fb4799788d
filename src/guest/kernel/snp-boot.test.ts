/**
 * An SEV-SNP guest validates its own memory (snp-boot.ts, machine/firmware-handoff.ts, hypervisor/snp-guest-memory.ts;
 * docs/sev-interface.md §14.2): the host only assigns pages in the RMP (RMPUPDATE leaves them unvalidated), the
 * guest firmware PVALIDATEs what it loads, the kernel PVALIDATEs the memory left unaccepted — and makes its GHCB and
 * guest-agent buffers shared with page state changes. A page the guest never validated raises #VC 0x404 at its first
 * private access; a PVALIDATE that changes nothing (CF = 1: the page was validated already) stops the kernel.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createSnpBench, stopReason } from "../../hypervisor/snp-test-bench.ts";
import { SvmExit } from "../../machine/exit-codes.ts";
import { GhcbMsr, msrCode } from "../../machine/ghcb.ts";
import { SNP_PSC_EXIT } from "../../machine/page-state-change.ts";
import { VC_PAGE_NOT_VALIDATED } from "../../machine/rmp.ts";
import type { GuestImage } from "../image.ts";
import { AGENT_MAILBOX_GPA, apPages, GHCB_GPA, SNP_BOOT_TABLE_GPA, SNP_REQUEST_GPA } from "../layout.ts";
import { decodeSnpBootTable, encodeSnpBootTable, type SnpBootTable } from "../snp-boot-table.ts";

const PROGRAM = `
.private data, 8192
.shared  mailbox, 4096
start:
    load  rax, [data+4096]       ; accepted memory reads as zero (the kernel cleared it)
    store [mailbox], rax
    mov   rax, 0x1234567812345678
    store [data], rax
    load  rbx, [data]
    store [mailbox+8], rbx
    hlt
`;

function u64(b: Uint8Array, at = 0): bigint {
  return new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0, true);
}

/** Rewrites the boot table the firmware hands the kernel (a firmware that gets it wrong). */
function editTable(edit: (t: SnpBootTable) => void) {
  return (image: GuestImage) => {
    const page = image.pages.find((p) => p.gpa === SNP_BOOT_TABLE_GPA)!;
    const t = decodeSnpBootTable(page.data);
    edit(t);
    page.data.set(encodeSnpBootTable(t));
  };
}

describe("SEV-SNP boot: the guest validates its memory, the host only assigns it", () => {
  it("after the hand-off the data pages are assigned but unvalidated; after boot the kernel has validated them", () => {
    const b = createSnpBench({ source: PROGRAM, vcpus: 2 });
    assert.deepEqual(b.handoff, { ok: true });
    const sym = b.image.program.symbols;
    const entry = (gpa: number) => b.rmp.entry(b.view.frameOf(gpa)!);
    for (const gpa of [sym.get("data")!, sym.get("data")! + 4096]) {
      assert.deepEqual(
        [entry(gpa).assigned, entry(gpa).validated],
        [true, false],
        "the host did not validate",
      );
    }
    assert.deepEqual([entry(0x100000).assigned, entry(0x100000).validated], [true, true], "the firmware did");
    assert.deepEqual(
      [entry(GHCB_GPA).assigned, entry(GHCB_GPA).validated],
      [true, true],
      "the GHCB starts private",
    );

    const exits = b.run();
    const last = exits.at(-1)!;
    assert.equal(last.exit.exitCode, SvmExit.HLT, last.outcome.action === "stop" ? last.outcome.reason : "");
    for (const gpa of [sym.get("data")!, sym.get("data")! + 4096]) {
      assert.deepEqual([entry(gpa).validated, entry(gpa).immutable], [true, false]);
    }
    const mailbox = b.view.readGuestPhysical(sym.get("mailbox")!, 16);
    assert.deepEqual([u64(mailbox), u64(mailbox, 8)], [0n, 0x1234567812345678n]);
    // Made shared at boot: the GHCB (MSR protocol), the agent pages and the AP's GHCB (one SNP_PSC request).
    for (const gpa of [GHCB_GPA, AGENT_MAILBOX_GPA, SNP_REQUEST_GPA, apPages(1).ghcb]) {
      assert.equal(entry(gpa).assigned, false, `0x${gpa.toString(16)} is hypervisor-owned`);
    }
    const msrPsc = exits.filter((h) => h.msrProtocol && msrCode(h.msrProtocol.request) === GhcbMsr.PSC_REQ);
    assert.equal(msrPsc.length, 1);
    const naePsc = exits.filter((h) => h.ghcb?.exitCode === SNP_PSC_EXIT);
    assert.equal(naePsc.length, 1);
    assert.deepEqual(naePsc[0]!.ghcb!.response, { info1: 0n, info2: 0n });
  });

  it("a page the kernel never validated: its first private access is #VC 0x404 and the kernel stops", () => {
    const exceptions: { vector: number; errorCode: bigint }[] = [];
    const b = createSnpBench({
      source: PROGRAM,
      observer: { onException: (vector, errorCode) => exceptions.push({ vector, errorCode }) },
      // The firmware leaves the second page of `data` out of the accept list it hands the kernel.
      editImage: editTable((t) => {
        t.accept = t.accept.map((r) => ({ ...r, pages: 1 }));
      }),
    });
    const last = b.run().at(-1)!;
    assert.equal(last.outcome.action, "stop");
    assert.match(stopReason(last), /requested termination \(reason set 0, code 0/);
    assert.deepEqual(
      exceptions.filter((e) => e.vector === 29 && e.errorCode === BigInt(VC_PAGE_NOT_VALIDATED)).length,
      1,
    );
    const second = b.rmp.entry(b.view.frameOf(b.image.program.symbols.get("data")! + 4096)!);
    assert.deepEqual([second.assigned, second.validated], [true, false]);
    // Control: with the full list the same program runs to its HLT (previous test).
  });

  it("double validation: a page listed twice answers CF = 1 the second time and the kernel stops (PVALIDATE failed)", () => {
    const b = createSnpBench({
      source: PROGRAM,
      editImage: editTable((t) => {
        t.accept = [...t.accept, { ...t.accept[0]!, pages: 1 }];
      }),
    });
    const last = b.run().at(-1)!;
    assert.equal(last.outcome.action, "stop");
    assert.match(stopReason(last), /reason set 1, code 2: PVALIDATE failed/);
  });

  it("a page the firmware validated, handed to the kernel to accept again: CF = 1, the kernel stops", () => {
    const b = createSnpBench({
      source: PROGRAM,
      editImage: editTable((t) => {
        t.accept = [{ gpa: 0x100000, pages: 1 }, ...t.accept];
      }),
    });
    const last = b.run().at(-1)!;
    assert.match(stopReason(last), /PVALIDATE failed/);
  });
});
