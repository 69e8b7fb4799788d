import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Host } from "./host.ts";
import { vmSpec } from "./test-support.ts";

describe("drain plan (maintenance support)", () => {
  it("ordinary VMs live-migrate, encrypted ones restart elsewhere in their pool, powered-off ones stay", () => {
    const host = new Host({ name: "rome-02", generation: "rome", seed: 30 });
    host.define(vmSpec("web"));
    host.define(vmSpec("db", { security: "sev-es" }));
    host.define(vmSpec("cache", { security: "sev" }));
    host.define(vmSpec("attested", { security: "sev-es", attestation: true }));
    host.define(vmSpec("cold", { security: "sev-es" }));
    for (const n of ["web", "db", "cache", "attested"]) host.start(n);
    const plan = Object.fromEntries(host.drainPlan().map((s) => [s.vm, s]));
    assert.equal(plan["web"]?.path, "live-migrate");
    assert.equal(plan["db"]?.path, "restart-elsewhere");
    assert.equal(plan["db"]?.pool, "sev-es");
    assert.equal(plan["cache"]?.pool, "sev");
    assert.equal(plan["attested"]?.path, "restart-elsewhere");
    assert.equal(
      plan["attested"]?.needsOwner,
      true,
      "a paused, attested VM needs its owner again after a restart",
    );
    assert.equal(plan["db"]?.needsOwner, false);
    assert.equal(plan["cold"]?.path, "nothing-to-do");
  });
});
