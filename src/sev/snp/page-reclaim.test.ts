/**
 * SNP_PAGE_RECLAIM (SNP ABI 56860; handlers/page-reclaim.ts) against the emulated Reverse Map Table
 * (src/machine/rmp.ts through src/machine/rmp-firmware-hook.ts): a firmware page and the pages of a decommissioned
 * guest go to the Reclaim state and RMPUPDATE then makes them hypervisor-owned; the pages of a guest that still
 * exists, pages the host can take back itself and misaligned or missized requests are refused with the ABI's
 * status, and a refused command changes no RMP entry.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Dram } from "../../machine/dram.ts";
import { LARGE_PAGE_SIZE, Rmp, RmpPageSize, type RmpPageSizeValue, RmpReturn } from "../../machine/rmp.ts";
import { snpFirmwareRmpHook } from "../../machine/rmp-firmware-hook.ts";
import { SCRATCH } from "../emulated-platform.ts";
import { SecureProcessor } from "../secure-processor.ts";
import { SevStatus } from "../status.ts";
import { SnpClient } from "./client.ts";
import { DEFAULT_SNP_POLICY } from "./policy.ts";

const PAGE = 4096;
const GCTX = 0x400000;
const NORMAL = 0x401000;
const VMSA = 0x402000;
const SPARE = 0x403000;
const ASID = 1;
const GPA = 0x100000;

function platform() {
  const dram = new Dram(64 * 1024 * 1024);
  const rmp = new Rmp({ end: dram.size });
  const sp = new SecureProcessor({
    generation: "milan",
    seed: "page-reclaim",
    memory: dram,
    snp: { rmp: snpFirmwareRmpHook(rmp) },
  });
  const client = new SnpClient(sp, dram, SCRATCH);
  client.init();
  const firmwarePage = (pa: number, pageSize: RmpPageSizeValue = RmpPageSize.PAGE_4K) =>
    assert.equal(
      rmp.rmpupdate(pa, { assigned: true, asid: 0, immutable: true, pageSize }),
      RmpReturn.SUCCESS,
    );
  return { dram, rmp, client, firmwarePage };
}

/** A running guest as KVM launches one: a firmware context page, one NORMAL page, one VMSA page. */
function runningGuest() {
  const p = platform();
  p.firmwarePage(GCTX);
  p.client.gctxCreate(GCTX);
  p.client.launchStart(GCTX, { policy: DEFAULT_SNP_POLICY });
  p.client.activate(GCTX, ASID);
  for (const [pa, gpa, type] of [
    [NORMAL, GPA, "NORMAL"],
    [VMSA, 0xffff_ffff_f000, "VMSA"],
  ] as const) {
    assert.equal(p.rmp.rmpupdate(pa, { assigned: true, asid: ASID, gpa }), RmpReturn.SUCCESS);
    p.client.launchUpdate(GCTX, { pa, type });
  }
  p.client.launchFinish(GCTX);
  return p;
}

const hypervisorOwned = (rmp: Rmp, pa: number) =>
  !rmp.entry(pa).assigned && rmp.hostWriteFault(pa, 8) === undefined;

describe("SNP_PAGE_RECLAIM", () => {
  it("a firmware page: RMPUPDATE alone cannot take it back; RECLAIM then RMPUPDATE make it hypervisor-owned", () => {
    const { rmp, client, firmwarePage } = platform();
    firmwarePage(SPARE);
    assert.equal(rmp.rmpupdate(SPARE, { assigned: false }), RmpReturn.FAIL_PERMISSION, "Immutable");
    assert.equal(client.pageReclaimStatus(SPARE), SevStatus.SUCCESS);
    const reclaimed = rmp.entry(SPARE);
    assert.deepEqual([reclaimed.assigned, reclaimed.asid, reclaimed.immutable], [true, 0, false]);
    assert.notEqual(rmp.hostWriteFault(SPARE, 8), undefined, "the Reclaim state is not yet the hypervisor's");
    assert.equal(client.pageReclaimStatus(SPARE), SevStatus.INVALID_PAGE_STATE, "already reclaimed");
    assert.equal(rmp.rmpupdate(SPARE, { assigned: false }), RmpReturn.SUCCESS);
    assert.ok(hypervisorOwned(rmp, SPARE));
  });

  it("a live guest's context, launched and VMSA pages are refused (INVALID_PAGE_STATE), changing nothing", () => {
    const { rmp, client } = runningGuest();
    for (const pa of [GCTX, NORMAL, VMSA]) {
      const before = rmp.entry(pa);
      assert.equal(client.pageReclaimStatus(pa), SevStatus.INVALID_PAGE_STATE, `0x${pa.toString(16)}`);
      assert.deepEqual(rmp.entry(pa), before);
    }
    assert.equal(client.guestStatus(GCTX).state, "RUNNING");
    assert.equal(rmp.entry(NORMAL).validated, true, "the guest's page is still validated");
  });

  it("after SNP_DECOMMISSION the same pages are reclaimed and RMPUPDATE returns each to the hypervisor", () => {
    const { rmp, client } = runningGuest();
    client.decommission(GCTX);
    for (const pa of [GCTX, NORMAL, VMSA]) {
      assert.equal(client.pageReclaimStatus(pa), SevStatus.SUCCESS, `0x${pa.toString(16)}`);
      assert.equal(rmp.rmpupdate(pa, { assigned: false }), RmpReturn.SUCCESS);
      assert.ok(hypervisorOwned(rmp, pa));
    }
  });

  it("a Pre-Guest page (Immutable, not yet validated) is reclaimed while its guest launches, as KVM does after a failed LAUNCH_UPDATE", () => {
    const { rmp, client, firmwarePage } = platform();
    firmwarePage(GCTX);
    client.gctxCreate(GCTX);
    client.launchStart(GCTX, { policy: DEFAULT_SNP_POLICY });
    client.activate(GCTX, ASID);
    rmp.rmpupdate(NORMAL, { assigned: true, asid: ASID, gpa: GPA, immutable: true });
    assert.equal(client.pageReclaimStatus(NORMAL), SevStatus.SUCCESS);
    assert.equal(rmp.rmpupdate(NORMAL, { assigned: false }), RmpReturn.SUCCESS);
  });

  it("pages the host owns or can take back itself are refused (INVALID_PAGE_STATE)", () => {
    const { rmp, client } = platform();
    assert.equal(client.pageReclaimStatus(SPARE), SevStatus.INVALID_PAGE_STATE, "hypervisor-owned");
    rmp.rmpupdate(SPARE, { assigned: true, asid: ASID, gpa: GPA });
    const before = rmp.entry(SPARE);
    assert.equal(
      client.pageReclaimStatus(SPARE),
      SevStatus.INVALID_PAGE_STATE,
      "a guest page, not Immutable",
    );
    assert.deepEqual(rmp.entry(SPARE), before);
  });

  it("a misaligned or out-of-memory PADDR is INVALID_ADDRESS; a page size other than the RMP's is INVALID_PAGE_SIZE", () => {
    const { rmp, client, firmwarePage } = platform();
    firmwarePage(SPARE);
    const big = 8 * LARGE_PAGE_SIZE;
    const small = 9 * LARGE_PAGE_SIZE;
    firmwarePage(big, RmpPageSize.PAGE_2M);
    firmwarePage(small);
    const before = [rmp.entry(SPARE), rmp.entry(big), rmp.entry(big + PAGE), rmp.entry(small)];
    const cases: [string, number, boolean, number][] = [
      ["bits 11:1 set (not 4 KiB aligned)", SPARE + 0x800, false, SevStatus.INVALID_ADDRESS],
      ["2 MiB at a page that is not 2 MiB aligned", SPARE, true, SevStatus.INVALID_ADDRESS],
      ["beyond system memory", 64 * 1024 * 1024, false, SevStatus.INVALID_ADDRESS],
      ["4 KiB inside a 2 MiB firmware page", big + PAGE, false, SevStatus.INVALID_PAGE_SIZE],
      ["4 KiB of the first page of a 2 MiB firmware page", big, false, SevStatus.INVALID_PAGE_SIZE],
      ["2 MiB over a 4 KiB firmware page", small, true, SevStatus.INVALID_PAGE_SIZE],
    ];
    for (const [what, pa, largePage, status] of cases) {
      assert.equal(client.pageReclaimStatus(pa, { largePage }), status, what);
    }
    assert.deepEqual(
      [rmp.entry(SPARE), rmp.entry(big), rmp.entry(big + PAGE), rmp.entry(small)],
      before,
      "nothing changed",
    );
    assert.equal(
      client.pageReclaimStatus(big, { largePage: true }),
      SevStatus.SUCCESS,
      "the 2 MiB page, whole",
    );
    assert.equal(rmp.rmpupdate(big, { assigned: false, pageSize: RmpPageSize.PAGE_2M }), RmpReturn.SUCCESS);
    assert.ok(hypervisorOwned(rmp, big + LARGE_PAGE_SIZE - PAGE));
  });
});
