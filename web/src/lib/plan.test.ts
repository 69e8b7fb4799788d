import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { capacityRows, itemChange, planGroups, planHeadline, planRunnable } from "./plan.ts";
import type { DryRunPlan } from "./types.ts";

const plan: DryRunPlan = {
  dryRun: true,
  action: "vm.bulk-update",
  total: 3,
  change: 1,
  unchanged: 1,
  refused: 1,
  restart: 1,
  items: [
    { target: "v1", name: "web-1", kind: "vm", outcome: "unchanged" },
    {
      target: "v2",
      name: "web-2",
      kind: "vm",
      outcome: "change",
      host: "rome-1",
      restart: true,
      before: { securityMode: "none", policy: 0 },
      after: { securityMode: "sev-es", policy: 5 },
    },
    {
      target: "v3",
      name: "old-1",
      kind: "vm",
      outcome: "refused",
      code: "GUEST_OS_UNSUPPORTED",
      reason: "no ES",
    },
  ],
  capacity: [
    { hostId: "h", host: "rome-2", pool: "sev-es", size: 4, used: 3, usedAfter: 4, vms: 3, vmsAfter: 4 },
  ],
};

describe("web: plan rendering", () => {
  it("groups refused items first, then changes, then unchanged", () => {
    const g = planGroups(plan);
    assert.deepEqual(
      g.map((x) => [x.outcome, x.items.map((i) => i.name)]),
      [
        ["refused", ["old-1"]],
        ["change", ["web-2"]],
        ["unchanged", ["web-1"]],
      ],
    );
    assert.equal(planGroups({ ...plan, items: [plan.items[0]!] }).length, 1, "empty groups are left out");
  });

  it("words the counts, the change and the pools as the server gave them", () => {
    assert.equal(
      planHeadline(plan),
      "3 items: 1 will change (1 with a restart), 1 already as asked, 1 refused",
    );
    assert.equal(itemChange(plan.items[1]!), "none → SEV-ES 0x0005");
    assert.deepEqual(capacityRows(plan.capacity), [
      { label: "rome-2 SEV-ES key slots", before: "3 / 4", after: "4 / 4", full: true },
    ]);
    assert.equal(planRunnable(plan), true);
    assert.equal(planRunnable({ ...plan, change: 0 }), false);
  });
});
