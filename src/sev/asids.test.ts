/** ASID lifecycle (docs/sev-interface.md §7.2–7.4): classes, ownership, WBINVD + DF_FLUSH, pools and capacity. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { createEmulatedPlatform } from "./emulated-platform.ts";
import { PolicyBit } from "./policy.ts";
import { formatStatus, SevStatus } from "./status.ts";
import { statusOf } from "./test-support.ts";

const ES = PolicyBit.ES;

function eq(actual: number, expected: number, what: string): void {
  assert.equal(formatStatus(actual), formatStatus(expected), what);
}

describe("ASID classes and range", () => {
  it("INVALID_ASID for 0, beyond max, and the wrong pool — in both directions", () => {
    const { client, sp } = createEmulatedPlatform({ minSevAsid: 10 });
    const sev = client.launchStart({ policy: 0 }).handle;
    const es = client.launchStart({ policy: ES }).handle;
    for (const asid of [0, 1, 9, 510, 0xffffffff]) {
      eq(
        statusOf(() => client.activate(sev, asid)),
        SevStatus.INVALID_ASID,
        `SEV guest on ASID ${asid}`,
      );
    }
    for (const asid of [0, 10, 11, 509, 510]) {
      eq(
        statusOf(() => client.activate(es, asid)),
        SevStatus.INVALID_ASID,
        `ES guest on ASID ${asid}`,
      );
    }
    assert.deepEqual(sp.snapshot().asids.inUse, []);
    client.activate(sev, 10);
    client.activate(es, 9);
    assert.deepEqual(sp.snapshot().asids.inUse, [9, 10]);
  });

  it("ASID_OWNED when another guest's key holds the ASID; a key-sharing guest may join it", () => {
    const { client } = createEmulatedPlatform();
    const a = client.launchStart({ policy: 0 }).handle;
    const b = client.launchStart({ policy: 0 }).handle;
    client.activate(a, 200);
    eq(
      statusOf(() => client.activate(b, 200)),
      SevStatus.ASID_OWNED,
      "second key on the same ASID",
    );
    const shared = client.launchStart({ policy: 0, shareWith: a }).handle;
    client.activate(shared, 200);
    eq(
      statusOf(() => client.activate(a, 200)),
      SevStatus.ACTIVE,
      "already active",
    );
  });
});

describe("recycling: DEACTIVATE → WBINVD on every core → DF_FLUSH → ACTIVATE", () => {
  it("DFFLUSH_REQUIRED before the flush, WBINVD_REQUIRED until every core ran WBINVD", () => {
    const { client, sp } = createEmulatedPlatform();
    const a = client.launchStart({ policy: 0 }).handle;
    client.activate(a, 300);
    client.deactivate(a);
    assert.deepEqual(sp.snapshot().asids.dirty, [300]);
    client.decommission(a);
    const b = client.launchStart({ policy: 0 }).handle;
    eq(
      statusOf(() => client.activate(b, 300)),
      SevStatus.DFFLUSH_REQUIRED,
      "reuse before DF_FLUSH",
    );
    eq(
      statusOf(() => client.dfFlush()),
      SevStatus.WBINVD_REQUIRED,
      "DF_FLUSH without WBINVD",
    );
    for (let core = 0; core < 7; core++) sp.wbinvd(core);
    eq(
      statusOf(() => client.dfFlush()),
      SevStatus.WBINVD_REQUIRED,
      "one core missing",
    );
    sp.wbinvd(7);
    client.dfFlush();
    assert.deepEqual(sp.snapshot().asids.dirty, []);
    client.activate(b, 300);
  });

  it("a DEACTIVATE after the WBINVD makes DF_FLUSH fail again (docs/sev-interface.md §15 pitfall 14)", () => {
    const { client, sp } = createEmulatedPlatform();
    const a = client.launchStart({ policy: 0 }).handle;
    const b = client.launchStart({ policy: 0 }).handle;
    client.activate(a, 300);
    client.activate(b, 301);
    client.deactivate(a);
    sp.wbinvdAllCores();
    client.deactivate(b);
    eq(
      statusOf(() => client.dfFlush()),
      SevStatus.WBINVD_REQUIRED,
      "DEACTIVATE between WBINVD and DF_FLUSH",
    );
  });

  it("DECOMMISSION of an active guest is ACTIVE and keeps the guest", () => {
    const { client } = createEmulatedPlatform();
    const a = client.launchStart({ policy: 0 }).handle;
    client.activate(a, 150);
    eq(
      statusOf(() => client.decommission(a)),
      SevStatus.ACTIVE,
      "DECOMMISSION while active",
    );
    assert.equal(client.guestStatus(a).asid, 150);
  });
});

describe("pools and capacity", () => {
  it("the (N+1)th guest of each pool is refused with a typed error; pools never borrow", () => {
    const { client, asids } = createEmulatedPlatform({ minSevAsid: 5 });
    const esAsids = [1, 2, 3, 4].map(() => asids.allocate("es"));
    assert.deepEqual(esAsids, [1, 2, 3, 4]);
    assert.throws(
      () => asids.allocate("es"),
      (e: unknown) =>
        isCiphervisorError(e, "ASID_POOL_EXHAUSTED") &&
        /SEV-ES/.test(e.message) &&
        e.details?.["size"] === 4 &&
        e.details?.["inUse"] === 4,
    );
    // The SEV pool is untouched by the exhausted ES pool.
    assert.equal(asids.allocate("sev"), 5);
    assert.equal(asids.usage("sev").inUse, 1);
    // Guests bound to those ASIDs; releasing one returns it through DF_FLUSH.
    const handles = esAsids.map((asid) => {
      const h = client.launchStart({ policy: PolicyBit.ES }).handle;
      client.activate(h, asid);
      return h;
    });
    client.deactivate(handles[1]!);
    client.decommission(handles[1]!);
    asids.release(2);
    assert.equal(asids.allocate("es"), 2, "recycled after WBINVD + DF_FLUSH");
  });

  it("min_sev_asid = 1 means no SEV-ES pool at all", () => {
    const { asids, sp } = createEmulatedPlatform({ minSevAsid: 1 });
    assert.equal(sp.pools.es.size, 0);
    assert.throws(() => asids.allocate("es"), /no SEV-ES ASIDs \(BIOS min_sev_asid = 1\)/);
    assert.equal(asids.allocate("sev"), 1);
  });

  it("the SEV pool fills up to its size on every generation", () => {
    for (const generation of ["naples", "rome", "genoa"] as const) {
      const { asids, sp } = createEmulatedPlatform({ generation, init: false });
      for (let i = 0; i < sp.pools.sev.size; i++) asids.allocate("sev");
      assert.throws(() => asids.allocate("sev"), { code: "ASID_POOL_EXHAUSTED" });
      assert.equal(sp.pools.sev.last, sp.model.maxAsid);
    }
  });
});
