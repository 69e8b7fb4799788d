/**
 * KVM's SNP page state change (page-state-change.ts), both ways GHCB 56421 version 2 offers it, through the host's
 * VMGEXIT handling (vmgexit.ts): the MSR protocol request 0x014 / response 0x015, and the NAE event SNP_PSC
 * (0x8000_0010) with its descriptor in the GHCB's shared buffer. Checked against the RMP: SHARED leaves a page
 * hypervisor-owned, PRIVATE assigns it to the guest's ASID at its GPA unvalidated; cur_entry and cur_page record
 * progress, the host may stop early (the guest re-issues), and each malformed request gets its own error.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cpuModel } from "../../machine/cpu-models.ts";
import { Dram } from "../../machine/dram.ts";
import {
  GHCB_SHARED_BUFFER,
  GHCB_SIZE,
  GhcbError,
  GhcbMsr,
  GhcbResponse,
  GhcbView,
  KVM_HV_FEATURES,
} from "../../machine/ghcb.ts";
import { NestedPageTable } from "../../machine/nested-page-table.ts";
import {
  PSC_MSR_RESP_ERROR,
  PscDescriptor,
  type PscEntry,
  PscError,
  PscOp,
  pscMsrRequest,
  pscMsrResponse,
  SNP_PSC_EXIT,
} from "../../machine/page-state-change.ts";
import { Rmp, RmpReturn } from "../../machine/rmp.ts";
import { HostDevices } from "./devices.ts";
import { handleVmgexit } from "./vmgexit.ts";

const ASID = 3;
const GHCB_GPA = 0x10000;
const GHCB_HPA = 0x80000;
/** Guest pages: GPA 0x200000 + i·4 KiB on HPA 0x400000 + i·4 KiB, for i < 1024 (two 2 MiB pages). */
const GPA = 0x200000;
const HPA = 0x400000;
const gfn = (i: number) => GPA / 4096 + i;
const hpa = (i: number) => HPA + i * 4096;

function bench(opts: { pscBatchLimit?: number; snp?: boolean } = {}) {
  const memory = new Dram(16 * 1024 * 1024);
  const npt = new NestedPageTable();
  const rmp = new Rmp({ end: memory.size });
  npt.map(GHCB_GPA, GHCB_HPA);
  for (let i = 0; i < 1024; i++) npt.map(GPA + i * 4096, hpa(i));
  let msr = 0n;
  const call = (ghcbMsr: bigint, afterSnapshot?: () => void) =>
    handleVmgexit({
      memory,
      npt,
      devices: new HostDevices(cpuModel("milan"), "sev-snp"),
      cBit: 51,
      ghcbMsr,
      respond: (v) => {
        msr = v;
      },
      registeredGhcb: { gpa: BigInt(GHCB_GPA) },
      ...(opts.snp === false
        ? {}
        : {
            snpGuest: {
              rmp,
              asid: ASID,
              hvFeatures: KVM_HV_FEATURES,
              ...(opts.pscBatchLimit ? { pscBatchLimit: opts.pscBatchLimit } : {}),
            },
          }),
      afterSnapshot,
    });
  const ghcb = () => new GhcbView(memory.read(GHCB_HPA, GHCB_SIZE));
  const desc = () => new PscDescriptor(ghcb().bytes.subarray(GHCB_SHARED_BUFFER, 0xff0));
  /** Writes an SNP_PSC request with these entries; `scratch` and `valid` bend it. */
  const request = (
    entries: Omit<PscEntry, "curPage">[],
    o: { scratch?: number; withScratch?: boolean; edit?: (d: PscDescriptor) => void } = {},
  ) => {
    const g = new GhcbView(new Uint8Array(GHCB_SIZE));
    g.set("swExitCode", SNP_PSC_EXIT);
    g.set("swExitInfo1", 0n);
    g.set("swExitInfo2", 0n);
    if (o.withScratch ?? true) g.set("swScratch", BigInt(o.scratch ?? GHCB_GPA + GHCB_SHARED_BUFFER));
    const d = PscDescriptor.build(g.bytes.subarray(GHCB_SHARED_BUFFER, 0xff0), entries);
    o.edit?.(d);
    memory.write(GHCB_HPA, g.bytes);
    return call(BigInt(GHCB_GPA));
  };
  const assigned = (i: number) => {
    const e = rmp.entry(hpa(i));
    return e.assigned && e.asid === ASID && e.gpa === GPA + i * 4096;
  };
  return { memory, npt, rmp, call, ghcb, desc, request, assigned, response: () => msr };
}

const page = (i: number, op: number, pageSize: 0 | 1 = 0) => ({ gfn: gfn(i), op, pageSize });

describe("SNP page state change: the MSR protocol (0x014 / 0x015)", () => {
  it("PRIVATE assigns the frame at its GPA, unvalidated; SHARED gives it back; the response carries error 0", () => {
    const b = bench();
    assert.equal(b.call(pscMsrRequest(gfn(5), PscOp.PRIVATE)).kind, "resume");
    assert.equal(b.response(), pscMsrResponse(0));
    assert.equal(b.response(), BigInt(GhcbMsr.PSC_RESP));
    assert.ok(b.assigned(5));
    assert.equal(b.rmp.entry(hpa(5)).validated, false, "RMPUPDATE never validates");
    b.call(pscMsrRequest(gfn(5), PscOp.SHARED));
    assert.equal(b.response(), pscMsrResponse(0));
    assert.equal(b.rmp.entry(hpa(5)).assigned, false);
  });

  it("the operation field is bits 55:52 and the GFN bits 51:12, as Linux's GHCB_MSR_PSC_REQ_GFN", () => {
    assert.equal(pscMsrRequest(0x12345, PscOp.SHARED), (2n << 52n) | (0x12345n << 12n) | 0x014n);
    assert.equal(PSC_MSR_RESP_ERROR, (1n << 63n) | 0x015n);
  });

  it("an operation other than PRIVATE or SHARED, an unmapped GFN, or an Immutable frame: bit 63 error response", () => {
    const b = bench();
    b.call(pscMsrRequest(gfn(1), PscOp.PSMASH));
    assert.equal(b.response(), PSC_MSR_RESP_ERROR);
    b.call(pscMsrRequest(0x9_0000, PscOp.PRIVATE));
    assert.equal(b.response(), PSC_MSR_RESP_ERROR);
    const immutable = { assigned: true, asid: ASID, gpa: GPA + 0x2000, immutable: true };
    assert.equal(b.rmp.rmpupdate(hpa(2), immutable), RmpReturn.SUCCESS);
    b.call(pscMsrRequest(gfn(2), PscOp.SHARED));
    assert.equal(b.response(), PSC_MSR_RESP_ERROR);
    assert.equal(b.rmp.entry(hpa(2)).assigned, true, "the Immutable page stays the guest's");
  });

  it("a page already private keeps its Validated bit: a repeated PRIVATE request does not wipe it", () => {
    const b = bench();
    b.call(pscMsrRequest(gfn(7), PscOp.PRIVATE));
    b.rmp.pvalidate(hpa(7), { asid: ASID, gpa: GPA + 0x7000, validate: true });
    b.call(pscMsrRequest(gfn(7), PscOp.PRIVATE));
    assert.equal(b.response(), pscMsrResponse(0));
    assert.equal(b.rmp.entry(hpa(7)).validated, true);
  });
});

describe("SNP page state change: the NAE event SNP_PSC (0x8000_0010)", () => {
  it("processes every entry: RMP states, cur_page = pages done, cur_entry past end_entry, SW_EXITINFO2 = 0", () => {
    const b = bench();
    for (const i of [0, 1]) b.rmp.rmpupdate(hpa(i), { assigned: true, asid: ASID, gpa: GPA + i * 4096 });
    const r = b.request([page(0, PscOp.SHARED), page(1, PscOp.SHARED), page(2, PscOp.PRIVATE)]);
    assert.deepEqual(r.ghcb?.response, { info1: 0n, info2: 0n });
    assert.deepEqual([b.assigned(0), b.assigned(1), b.assigned(2)], [false, false, true]);
    const d = b.desc();
    assert.deepEqual(d.header(), { curEntry: 3, endEntry: 2, reserved: 0 });
    assert.deepEqual(
      [0, 1, 2].map((i) => d.entry(i).curPage),
      [1, 1, 1],
    );
  });

  it("a 2 MiB entry converts its 512 pages; a partly done one (cur_page 100) only the rest, each as 4 KiB", () => {
    const b = bench();
    b.request([page(0, PscOp.PRIVATE, 1)]);
    assert.ok(Array.from({ length: 512 }, (_, i) => b.assigned(i)).every(Boolean));
    assert.equal(b.desc().entry(0).curPage, 512);
    const c = bench();
    c.request([page(512, PscOp.PRIVATE, 1)], {
      edit: (d) => d.setEntry(0, { ...d.entry(0), curPage: 100 }),
    });
    assert.equal(c.assigned(512 + 99), false, "pages before cur_page are done already: untouched");
    assert.equal(c.assigned(512 + 100), true);
    assert.equal(c.assigned(1023), true);
    assert.equal(c.rmp.entry(hpa(600)).pageSize, 0);
  });

  it("a host that stops early (2 entries per request): SW_EXITINFO2 = 0 with cur_entry ≤ end_entry; re-issued, it finishes", () => {
    const b = bench({ pscBatchLimit: 2 });
    const entries = [0, 1, 2, 3, 4].map((i) => page(i, PscOp.PRIVATE));
    let r = b.request(entries);
    assert.deepEqual(r.ghcb?.response, { info1: 0n, info2: 0n });
    assert.equal(b.desc().header().curEntry, 2);
    assert.deepEqual([0, 1, 2].map(b.assigned), [true, true, false]);
    let rounds = 1;
    while (b.desc().header().curEntry <= 4) {
      // The guest re-issues the request on the same buffer, as Linux's vmgexit_psc loops.
      const g = b.ghcb();
      g.set("swExitCode", SNP_PSC_EXIT);
      g.set("swExitInfo1", 0n);
      g.set("swExitInfo2", 0n);
      g.set("swScratch", BigInt(GHCB_GPA + GHCB_SHARED_BUFFER));
      b.memory.write(GHCB_HPA, g.bytes);
      r = b.call(BigInt(GHCB_GPA));
      assert.equal(r.ghcb?.response.info2, 0n);
      rounds++;
    }
    assert.equal(rounds, 3);
    assert.deepEqual([0, 1, 2, 3, 4].map(b.assigned), [true, true, true, true, true]);
  });

  it("the spec's errors: end_entry beyond 252 INVALID_HDR; a bad entry INVALID_ENTRY with cur_entry left on it", () => {
    const hdr = bench();
    const r = hdr.request([page(0, PscOp.PRIVATE)], {
      edit: (d) => d.setHeader({ curEntry: 0, endEntry: 253 }),
    });
    assert.deepEqual(r.ghcb?.response, { info1: 0n, info2: PscError.INVALID_HDR });
    assert.equal(hdr.assigned(0), false);
    const cases: [string, (d: PscDescriptor) => void][] = [
      ["cur_page beyond a 4 KiB entry", (d) => d.setEntry(1, { ...d.entry(1), curPage: 2 })],
      [
        "a 2 MiB entry at a GFN that is not 2 MiB aligned",
        (d) => d.setEntry(1, { ...d.entry(1), pageSize: 1 }),
      ],
      ["operation 0", (d) => d.setEntry(1, { ...d.entry(1), op: 0 })],
      ["operation 5", (d) => d.setEntry(1, { ...d.entry(1), op: 5 })],
    ];
    for (const [what, edit] of cases) {
      const b = bench();
      const res = b.request([page(0, PscOp.PRIVATE), page(1, PscOp.PRIVATE), page(2, PscOp.PRIVATE)], {
        edit,
      });
      assert.deepEqual(res.ghcb?.response, { info1: 0n, info2: PscError.INVALID_ENTRY }, what);
      assert.equal(b.desc().header().curEntry, 1, `${what}: entry 0 done, cur_entry on the bad one`);
      assert.deepEqual([0, 1, 2].map(b.assigned), [true, false, false], what);
    }
  });

  it("a GFN the host cannot convert (not guest memory): GENERIC, the entry not advanced", () => {
    const b = bench();
    const r = b.request([page(0, PscOp.PRIVATE), { gfn: 0x9_0000, op: PscOp.PRIVATE, pageSize: 0 }]);
    assert.deepEqual(r.ghcb?.response, { info1: 0n, info2: PscError.GENERIC });
    assert.deepEqual([b.desc().header().curEntry, b.desc().entry(1).curPage], [1, 0]);
  });

  it("PSMASH and UNSMASH complete without changing the RMP, as KVM completes them", () => {
    const b = bench();
    const r = b.request([page(0, PscOp.PSMASH, 1), page(512, PscOp.UNSMASH, 1)]);
    assert.deepEqual(r.ghcb?.response, { info1: 0n, info2: 0n });
    assert.deepEqual([b.assigned(0), b.assigned(512)], [false, false]);
    assert.equal(b.desc().header().curEntry, 2);
  });

  it("SW_SCRATCH missing: MISSING_INPUT; outside the GHCB's shared buffer: INVALID_SCRATCH_AREA (GHCB v2)", () => {
    const b = bench();
    const missing = b.request([page(0, PscOp.PRIVATE)], { withScratch: false });
    assert.deepEqual(missing.ghcb?.response, {
      info1: BigInt(GhcbResponse.MALFORMED_INPUT),
      info2: BigInt(GhcbError.MISSING_INPUT),
    });
    for (const scratch of [GHCB_GPA + 0x100, GHCB_GPA + 0xff0 - 4, 0x300000]) {
      const r = b.request([page(0, PscOp.PRIVATE)], { scratch });
      assert.deepEqual(r.ghcb?.response, {
        info1: BigInt(GhcbResponse.MALFORMED_INPUT),
        info2: BigInt(GhcbError.INVALID_SCRATCH_AREA),
      });
    }
    assert.equal(b.assigned(0), false);
  });

  it("the guest rewriting the descriptor after the host's snapshot changes nothing the host does", () => {
    const b = bench();
    const g = new GhcbView(new Uint8Array(GHCB_SIZE));
    g.set("swExitCode", SNP_PSC_EXIT);
    g.set("swExitInfo1", 0n);
    g.set("swExitInfo2", 0n);
    g.set("swScratch", BigInt(GHCB_GPA + GHCB_SHARED_BUFFER));
    PscDescriptor.build(g.bytes.subarray(GHCB_SHARED_BUFFER, 0xff0), [page(0, PscOp.PRIVATE)]);
    b.memory.write(GHCB_HPA, g.bytes);
    const r = b.call(BigInt(GHCB_GPA), () => {
      const live = b.ghcb();
      const d = new PscDescriptor(live.bytes.subarray(GHCB_SHARED_BUFFER, 0xff0));
      d.setEntry(0, { curPage: 0, gfn: gfn(9), op: PscOp.PRIVATE, pageSize: 1 });
      d.setHeader({ curEntry: 0, endEntry: 200 });
      b.memory.write(GHCB_HPA, live.bytes);
    });
    assert.deepEqual(r.ghcb?.response, { info1: 0n, info2: 0n });
    assert.deepEqual([b.assigned(0), b.assigned(9)], [true, false]);
  });

  it("a guest that is not SEV-SNP gets INVALID_EVENT, as for any exit the host does not know", () => {
    const b = bench({ snp: false });
    const r = b.request([page(0, PscOp.PRIVATE)]);
    assert.deepEqual(r.ghcb?.response, {
      info1: BigInt(GhcbResponse.MALFORMED_INPUT),
      info2: BigInt(GhcbError.INVALID_EVENT),
    });
    assert.equal(b.rmp.entry(hpa(0)).assigned, false);
  });
});
