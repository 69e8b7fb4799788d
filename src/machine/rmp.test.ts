/**
 * The Reverse Map Table's transitions and errors (APM vol. 2 section 15.36; SNP ABI 56860 section 8.17), as tables
 * of cases: RMPUPDATE, PVALIDATE (CF = 1 when nothing changed), RMPADJUST, the host write check, the guest access
 * checks in their priority order, and the SNP_LAUNCH_UPDATE hook.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { SevStatus } from "../sev/status.ts";
import {
  LARGE_PAGE_SIZE,
  NPF_ENC,
  NPF_SIZEM,
  NPF_VMPL,
  PF_RMP,
  RMP_RETURN_CODES,
  Rmp,
  RmpPageSize,
  RmpReturn,
  type RmpUpdateInput,
  VC_PAGE_NOT_VALIDATED,
  VMPL_ALL,
  VmplPerm,
} from "./rmp.ts";

const SPA = 0x80_0000;
const GPA = 0x1000;
const ASID = 3;
const BIG = 0x100_0000; // 2 MiB aligned

/** A page assigned to ASID 3 at GPA 0x1000, optionally validated. */
function assigned(validated = false): Rmp {
  const rmp = new Rmp();
  assert.equal(rmp.rmpupdate(SPA, { assigned: true, asid: ASID, gpa: GPA }), RmpReturn.SUCCESS);
  if (validated) assert.deepEqual(rmp.pvalidate(SPA, { asid: ASID, gpa: GPA, validate: true }).kind, "done");
  return rmp;
}

describe("RMP return codes", () => {
  it("the table names every code once, with the values of the APM", () => {
    assert.deepEqual(
      RMP_RETURN_CODES.map((r) => [r.name, RmpReturn[r.name]]),
      [
        ["SUCCESS", 0],
        ["FAIL_INPUT", 1],
        ["FAIL_PERMISSION", 2],
        ["FAIL_INUSE", 3],
        ["FAIL_OVERLAP", 4],
        ["FAIL_SIZEMISMATCH", 6],
      ],
    );
  });
});

describe("RMPUPDATE", () => {
  it("assigns a page (VMPL0 all rights, not validated) and returns it to the hypervisor", () => {
    const rmp = assigned(true);
    assert.equal(rmp.entry(SPA).validated, true);
    assert.equal(rmp.rmpupdate(SPA, { assigned: true, asid: ASID, gpa: GPA }), RmpReturn.SUCCESS);
    assert.deepEqual(rmp.entry(SPA), {
      assigned: true,
      pageSize: 0,
      immutable: false,
      gpa: GPA,
      asid: ASID,
      vmsa: false,
      validated: false,
      vmplPerms: [VMPL_ALL, 0, 0, 0],
    });
    assert.deepEqual(rmp.assignedPages(), [SPA]);
    assert.equal(rmp.rmpupdate(SPA, { assigned: false }), RmpReturn.SUCCESS);
    assert.equal(rmp.entry(SPA).assigned, false);
    assert.deepEqual(rmp.assignedPages(), []);
  });

  it("a 2 MiB assignment covers 512 entries with consecutive GPAs", () => {
    const rmp = new Rmp();
    const r = rmp.rmpupdate(BIG, {
      assigned: true,
      asid: ASID,
      gpa: 0x20_0000,
      pageSize: RmpPageSize.PAGE_2M,
    });
    assert.equal(r, RmpReturn.SUCCESS);
    assert.equal(rmp.assignedPages().length, 512);
    assert.equal(rmp.entry(BIG + 0x5000).gpa, 0x20_5000);
    assert.equal(rmp.entry(BIG + 0x5000).pageSize, RmpPageSize.PAGE_2M);
  });

  const cases: {
    name: string;
    setup?: (rmp: Rmp) => void;
    spa: number;
    input: RmpUpdateInput;
    want: number;
  }[] = [
    { name: "misaligned address", spa: SPA + 8, input: { assigned: true, asid: 1, gpa: 0 }, want: 1 },
    { name: "misaligned GPA", spa: SPA, input: { assigned: true, asid: 1, gpa: 0x10 }, want: 1 },
    { name: "assigned with ASID 0", spa: SPA, input: { assigned: true, asid: 0, gpa: 0 }, want: 1 },
    {
      name: "2 MiB page not 2 MiB aligned",
      spa: SPA + 0x1000,
      input: { assigned: true, asid: 1, gpa: 0, pageSize: RmpPageSize.PAGE_2M },
      want: RmpReturn.FAIL_INPUT,
    },
    {
      name: "beyond the RMP's end",
      spa: 0x4000_0000,
      input: { assigned: true, asid: 1, gpa: 0 },
      want: RmpReturn.FAIL_INPUT,
    },
    {
      name: "an Immutable page",
      setup: (rmp) => rmp.rmpupdate(SPA, { assigned: true, asid: 1, gpa: 0, immutable: true }),
      spa: SPA,
      input: { assigned: false },
      want: RmpReturn.FAIL_PERMISSION,
    },
    {
      name: "4 KiB inside an assigned 2 MiB page",
      setup: (rmp) => rmp.rmpupdate(BIG, { assigned: true, asid: 1, gpa: 0, pageSize: RmpPageSize.PAGE_2M }),
      spa: BIG + 0x3000,
      input: { assigned: true, asid: 1, gpa: 0x3000 },
      want: RmpReturn.FAIL_OVERLAP,
    },
    {
      name: "2 MiB over an assigned 4 KiB page",
      setup: (rmp) => rmp.rmpupdate(BIG + 0x3000, { assigned: true, asid: 1, gpa: 0x3000 }),
      spa: BIG,
      input: { assigned: true, asid: 1, gpa: 0, pageSize: RmpPageSize.PAGE_2M },
      want: RmpReturn.FAIL_OVERLAP,
    },
  ];
  for (const c of cases) {
    it(`fails on ${c.name} and changes nothing`, () => {
      const rmp = new Rmp({ end: 0x4000_0000 });
      c.setup?.(rmp);
      const before = rmp.assignedPages().map((pa) => rmp.entry(pa));
      assert.equal(rmp.rmpupdate(c.spa, c.input), c.want);
      assert.deepEqual(
        rmp.assignedPages().map((pa) => rmp.entry(pa)),
        before,
      );
    });
  }
});

describe("PVALIDATE", () => {
  it("validates, then CF = 1 on the second validation; invalidates, then CF = 1 again", () => {
    const rmp = assigned();
    const op = { asid: ASID, gpa: GPA };
    assert.deepEqual(rmp.pvalidate(SPA, { ...op, validate: true }), { kind: "done", code: 0, cf: false });
    assert.deepEqual(rmp.pvalidate(SPA, { ...op, validate: true }), { kind: "done", code: 0, cf: true });
    assert.deepEqual(rmp.pvalidate(SPA, { ...op, validate: false }), { kind: "done", code: 0, cf: false });
    assert.deepEqual(rmp.pvalidate(SPA, { ...op, validate: false }), { kind: "done", code: 0, cf: true });
  });

  it("validates a whole 2 MiB page at once", () => {
    const rmp = new Rmp();
    rmp.rmpupdate(BIG, { assigned: true, asid: ASID, gpa: 0x20_0000, pageSize: RmpPageSize.PAGE_2M });
    const r = rmp.pvalidate(BIG, {
      asid: ASID,
      gpa: 0x20_0000,
      pageSize: RmpPageSize.PAGE_2M,
      validate: true,
    });
    assert.deepEqual(r, { kind: "done", code: 0, cf: false });
    assert.equal(rmp.entry(BIG + LARGE_PAGE_SIZE - 0x1000).validated, true);
  });

  const cases: {
    name: string;
    spa: number;
    op: { asid: number; gpa: number; pageSize?: 0 | 1 };
    want: { kind: "done"; code: number } | { kind: "npf"; bits: bigint };
  }[] = [
    {
      name: "a 2 MiB request at a misaligned GPA",
      spa: SPA,
      op: { asid: ASID, gpa: GPA, pageSize: 1 },
      want: { kind: "done", code: 1 },
    },
    {
      name: "a 2 MiB request on a 4 KiB RMP page",
      spa: SPA,
      op: { asid: ASID, gpa: 0, pageSize: 1 },
      want: { kind: "npf", bits: PF_RMP | NPF_ENC },
    },
    {
      name: "another ASID's page",
      spa: SPA,
      op: { asid: ASID + 1, gpa: GPA },
      want: { kind: "npf", bits: PF_RMP | NPF_ENC },
    },
    {
      name: "the page recorded at another GPA",
      spa: SPA,
      op: { asid: ASID, gpa: GPA + 0x1000 },
      want: { kind: "npf", bits: PF_RMP | NPF_ENC },
    },
    {
      name: "a hypervisor-owned page",
      spa: SPA + 0x1000,
      op: { asid: ASID, gpa: GPA },
      want: { kind: "npf", bits: PF_RMP | NPF_ENC },
    },
  ];
  for (const c of cases) {
    it(`on ${c.name}: ${c.want.kind === "done" ? `code ${c.want.code}` : "#VMEXIT(NPF) with the RMP bit"}`, () => {
      const rmp = assigned();
      const r = rmp.pvalidate(c.spa, { ...c.op, validate: true });
      if (c.want.kind === "done") assert.deepEqual(r, { kind: "done", code: c.want.code, cf: false });
      else assert.equal(r.kind === "npf" && r.errorBits, c.want.bits);
      assert.equal(rmp.entry(SPA).validated, false);
    });
  }

  it("FAIL_SIZEMISMATCH for 2 MiB on 4 KiB pages; #NPF with SIZEM for 4 KiB on a 2 MiB page (Table 15-40)", () => {
    const rmp = new Rmp();
    rmp.rmpupdate(BIG, { assigned: true, asid: ASID, gpa: 0x20_0000 });
    assert.deepEqual(rmp.pvalidate(BIG, { asid: ASID, gpa: 0x20_0000, pageSize: 1, validate: true }), {
      kind: "done",
      code: RmpReturn.FAIL_SIZEMISMATCH,
      cf: false,
    });
    const big = new Rmp();
    big.rmpupdate(BIG, { assigned: true, asid: ASID, gpa: 0x20_0000, pageSize: RmpPageSize.PAGE_2M });
    const r = big.pvalidate(BIG, { asid: ASID, gpa: 0x20_0000, validate: true });
    assert.equal(r.kind === "npf" && r.errorBits, PF_RMP | NPF_ENC | NPF_SIZEM);
  });
});

describe("RMPADJUST", () => {
  const cases: {
    name: string;
    targetVmpl: number;
    perms: number;
    vmsa?: boolean;
    current?: number;
    want: number;
  }[] = [
    { name: "VMPL0 gives VMPL1 read", targetVmpl: 1, perms: VmplPerm.READ, want: RmpReturn.SUCCESS },
    { name: "VMPL0 marks a VMSA for VMPL3", targetVmpl: 3, perms: 0, vmsa: true, want: RmpReturn.SUCCESS },
    { name: "a target VMPL beyond 3", targetVmpl: 4, perms: 0, want: RmpReturn.FAIL_INPUT },
    { name: "reserved permission bits", targetVmpl: 1, perms: 0x20, want: RmpReturn.FAIL_INPUT },
    { name: "its own VMPL", targetVmpl: 0, perms: VmplPerm.READ, want: RmpReturn.FAIL_PERMISSION },
    { name: "VMPL1 adjusting VMPL1", targetVmpl: 1, perms: 0, current: 1, want: RmpReturn.FAIL_PERMISSION },
    { name: "VMPL1 granting write it lacks", targetVmpl: 2, perms: VmplPerm.WRITE, current: 1, want: 2 },
    { name: "VMPL1 setting the VMSA flag", targetVmpl: 2, perms: 0, vmsa: true, current: 1, want: 2 },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want}`, () => {
      const rmp = assigned(true);
      const op = { asid: ASID, gpa: GPA, targetVmpl: c.targetVmpl, perms: c.perms, vmsa: c.vmsa };
      assert.deepEqual(rmp.rmpadjust(SPA, op, c.current ?? 0), { kind: "done", code: c.want, cf: false });
      const e = rmp.entry(SPA);
      if (c.want === RmpReturn.SUCCESS) {
        assert.equal(e.vmplPerms[c.targetVmpl], c.perms);
        assert.equal(e.vmsa, c.vmsa ?? false);
      } else assert.deepEqual(e.vmplPerms, [VMPL_ALL, 0, 0, 0]);
    });
  }

  it("VMPL1 can pass on what it has", () => {
    const rmp = assigned(true);
    rmp.rmpadjust(SPA, { asid: ASID, gpa: GPA, targetVmpl: 1, perms: VmplPerm.READ | VmplPerm.WRITE });
    const r = rmp.rmpadjust(SPA, { asid: ASID, gpa: GPA, targetVmpl: 2, perms: VmplPerm.READ }, 1);
    assert.deepEqual(r, { kind: "done", code: 0, cf: false });
    assert.deepEqual(rmp.entry(SPA).vmplPerms, [VMPL_ALL, 3, 1, 0]);
  });

  it("on another guest's page: #VMEXIT(NPF) with the RMP bit", () => {
    const r = assigned(true).rmpadjust(SPA, { asid: ASID + 1, gpa: GPA, targetVmpl: 1, perms: 1 });
    assert.equal(r.kind === "npf" && r.errorBits, PF_RMP | NPF_ENC);
  });
});

describe("host writes", () => {
  it("fault (#PF P|W|RMP) on any assigned page in the range; reads are never checked", () => {
    const rmp = assigned();
    assert.equal(rmp.hostWriteFault(SPA - 0x1000, 0x1000), undefined);
    assert.equal(rmp.hostWriteFault(SPA - 8, 16), PF_RMP | 3n);
    assert.equal(rmp.hostWriteFault(SPA + 0xff8, 8), (1n << 31n) | 3n);
    assert.equal(rmp.hostWriteFault(SPA + 0x1000, 8), undefined);
    assert.throws(
      () => rmp.checkHostWrite(SPA, 8),
      (e) =>
        isCiphervisorError(e, "RMP_VIOLATION") && /ASID 3/.test(e.message) && /0x80000003/.test(e.message),
    );
    rmp.rmpupdate(SPA, { assigned: false });
    assert.doesNotThrow(() => rmp.checkHostWrite(SPA, 8));
  });
});

describe("guest access checks (Table 15-39)", () => {
  const snp = { asid: ASID, gpa: GPA + 0x10, snpActive: true, private: true, write: false };
  const cases: {
    name: string;
    validated?: boolean;
    spa?: number;
    access?: Partial<typeof snp> & { vmpl?: number };
    want: "ok" | "vc" | bigint;
  }[] = [
    { name: "private read of its validated page", validated: true, want: "ok" },
    { name: "private write of its validated page", validated: true, access: { write: true }, want: "ok" },
    { name: "private read of an unvalidated page", want: "vc" },
    { name: "private read of a hypervisor-owned page", spa: SPA + 0x1000, want: PF_RMP | NPF_ENC | 1n },
    {
      name: "private write of another ASID's page",
      access: { asid: 9, write: true },
      want: PF_RMP | NPF_ENC | 3n,
    },
    {
      name: "private read at another GPA (remap)",
      access: { gpa: 0x5000 },
      validated: true,
      want: PF_RMP | NPF_ENC | 1n,
    },
    {
      name: "reverse-map failure before the validation check",
      access: { gpa: 0x5000 },
      want: PF_RMP | NPF_ENC | 1n,
    },
    {
      name: "VMPL1 read without rights",
      validated: true,
      access: { vmpl: 1 },
      want: PF_RMP | NPF_ENC | NPF_VMPL | 1n,
    },
    { name: "shared write to a guest page", access: { private: false, write: true }, want: PF_RMP | 3n },
    { name: "shared read of a guest page (ciphertext)", access: { private: false }, want: "ok" },
    {
      name: "shared write to a hypervisor page",
      spa: SPA + 0x1000,
      access: { private: false, write: true },
      want: "ok",
    },
    {
      name: "non-SNP guest write to an assigned page",
      access: { snpActive: false, write: true, asid: 7 },
      want: PF_RMP | 3n,
    },
    { name: "non-SNP guest read of an assigned page", access: { snpActive: false, asid: 7 }, want: "ok" },
  ];
  for (const c of cases) {
    it(`${c.name}: ${typeof c.want === "bigint" ? `#NPF 0x${c.want.toString(16)}` : c.want}`, () => {
      const rmp = assigned(c.validated ?? false);
      const r = rmp.guestAccess(c.spa ?? SPA, { ...snp, ...c.access });
      if (c.want === "ok") assert.deepEqual(r, { ok: true });
      else if (c.want === "vc")
        assert.deepEqual(r, { ok: false, fault: "vc", errorCode: VC_PAGE_NOT_VALIDATED });
      else assert.equal(!r.ok && r.fault === "npf" && r.errorBits, c.want);
    });
  }

  it("a 2 MiB RMP page behind a 4 KiB nested mapping fails the page-size check", () => {
    const rmp = new Rmp();
    rmp.rmpupdate(BIG, { assigned: true, asid: ASID, gpa: 0x20_0000, pageSize: RmpPageSize.PAGE_2M });
    const r = rmp.guestAccess(BIG, { ...snp, gpa: 0x20_0000 });
    assert.equal(!r.ok && r.fault, "npf");
  });
});

describe("the SNP_LAUNCH_UPDATE hook", () => {
  const page = { pa: SPA, size: 4096 as const, asid: ASID, pageType: "NORMAL" as const };
  it("marks the page Validated and Immutable and returns its GPA; a VMSA page becomes a VMSA", () => {
    const rmp = assigned();
    assert.deepEqual(rmp.firmwareHook().launchUpdate(page), { gpa: BigInt(GPA) });
    const e = rmp.entry(SPA);
    assert.deepEqual([e.validated, e.immutable, e.vmsa], [true, true, false]);
    assert.equal(rmp.rmpupdate(SPA, { assigned: false }), RmpReturn.FAIL_PERMISSION);
    const v = new Rmp();
    v.rmpupdate(SPA, { assigned: true, asid: ASID, gpa: 0xffff_ffff_f000 });
    assert.deepEqual(v.firmwareHook().launchUpdate({ ...page, pageType: "VMSA" }), {
      gpa: 0xffff_ffff_f000n,
    });
    assert.equal(v.entry(SPA).vmsa, true);
  });

  it("a 2 MiB page assigned as 2 MiB is taken whole", () => {
    const rmp = new Rmp();
    rmp.rmpupdate(BIG, { assigned: true, asid: ASID, gpa: 0x20_0000, pageSize: RmpPageSize.PAGE_2M });
    const r = rmp.firmwareHook().launchUpdate({ ...page, pa: BIG, size: LARGE_PAGE_SIZE });
    assert.deepEqual(r, { gpa: 0x20_0000n });
    assert.equal(rmp.entry(BIG + 0x1ff000).immutable, true);
  });

  const cases: { name: string; setup: (rmp: Rmp) => void; size?: 4096 | 0x200000; want: number }[] = [
    { name: "a hypervisor-owned page", setup: () => {}, want: SevStatus.INVALID_PAGE_STATE },
    {
      name: "another guest's page",
      setup: (rmp) => rmp.rmpupdate(SPA, { assigned: true, asid: ASID + 1, gpa: GPA }),
      want: SevStatus.INVALID_PAGE_OWNER,
    },
    {
      name: "an already validated page",
      setup: (rmp) => {
        rmp.rmpupdate(SPA, { assigned: true, asid: ASID, gpa: GPA });
        rmp.pvalidate(SPA, { asid: ASID, gpa: GPA, validate: true });
      },
      want: SevStatus.INVALID_PAGE_STATE,
    },
    {
      name: "a page taken before",
      setup: (rmp) => {
        rmp.rmpupdate(SPA, { assigned: true, asid: ASID, gpa: GPA });
        rmp.firmwareHook().launchUpdate(page);
      },
      want: SevStatus.INVALID_PAGE_STATE,
    },
    {
      name: "a 2 MiB command on 4 KiB pages",
      setup: (rmp) => {
        for (let i = 0; i < 512; i++)
          rmp.rmpupdate(BIG + i * 4096, { assigned: true, asid: ASID, gpa: i * 4096 });
      },
      size: 0x200000,
      want: SevStatus.INVALID_PAGE_SIZE,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      const rmp = new Rmp();
      c.setup(rmp);
      const pa = c.size === 0x200000 ? BIG : SPA;
      const before = rmp.entry(pa);
      assert.deepEqual(rmp.firmwareHook().launchUpdate({ ...page, pa, size: c.size ?? 4096 }), {
        status: c.want,
      });
      assert.deepEqual(rmp.entry(pa), before);
    });
  }
});
