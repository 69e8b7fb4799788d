/**
 * A bulk update taken over from a dead worker resumes from its recorded items and never processes a recorded VM
 * again (docs/threat-model.md §7, docs/product-behaviour.md §11.2: bulk operations resume and are idempotent; each
 * VM is wholly changed with its audit record, or untouched). bulk-update.test.ts proves the resumed run changes and
 * audits no VM twice; that alone would still pass if the new worker re-read the VMs the first one had finished —
 * they are already as asked, so they come out "unchanged" — and overwrote their results, losing the before/after
 * the first worker recorded. Here the first worker's items must come through the takeover byte for byte (details
 * and recording time), and a VM refused before the crash stays refused even when the reason for the refusal has
 * gone by the time the operation resumes.
 *
 * The crash is played as in bulk-update.test.ts: the fixture's engine is stopped, the operation is claimed by hand
 * with a short lease, the runner is aborted after its first committed batch, and a fresh engine takes over.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NewVm, OperationItem, VmSpec } from "../inventory/types.ts";
import { OperationEngine } from "../operations/engine.ts";
import { type Fixture, linuxSpec, TEST_ACTOR, withFixture } from "../testing/control-fixture.ts";
import { bulkParams, bulkUpdateRunner } from "./bulk-update.ts";

const VMS = 30;
const BATCH = 10;

async function allItems(f: Fixture, opId: string): Promise<OperationItem[]> {
  return (await f.inventory.operations.items(opId, { limit: 5000 })).items;
}

/** Queues a bulk SEV change over `VMS` VMs with `spec`, and lets a worker die after its first committed batch. */
async function crashAfterFirstBatch(
  f: Fixture,
  spec: VmSpec,
): Promise<{ opId: string; first: OperationItem[] }> {
  await f.cp.stop();
  await f.host("milan-1", "milan");
  await f.inventory.vms.createMany(
    Array.from({ length: VMS }, (_, i): NewVm => ({ name: `r-${String(i).padStart(2, "0")}`, spec })),
  );
  const { operation } = await f.cp.submit({
    kind: "vm.bulk-update",
    actor: TEST_ACTOR,
    params: bulkParams({ namePrefix: "r-" }, { securityMode: "sev" }, ["security-admin"]),
    target: "*",
  });
  const claimed = await f.inventory.operations.claimNext({ worker: "doomed", leaseMs: 50 });
  assert.equal(claimed?.id, operation.id);
  const abort = new AbortController();
  let progress = 0;
  await assert.rejects(
    bulkUpdateRunner({ ...f.cp.context, batchSize: BATCH })({
      op: claimed ?? operation,
      worker: "doomed",
      signal: abort.signal,
      recordedTargets: async () => new Set(),
      progress: () => {
        progress++;
        if (progress === 2) abort.abort(); // after the total, then the first batch
      },
    }),
    /interrupted/,
  );
  const first = await allItems(f, operation.id);
  assert.equal(first.length, BATCH, "the first batch was recorded before the crash");
  // The lease lapses; recording times after the takeover are necessarily later than these.
  await new Promise((r) => setTimeout(r, 60));
  return { opId: operation.id, first };
}

async function takeOver(f: Fixture, opId: string) {
  const survivor = new OperationEngine({
    inventory: f.inventory,
    runners: { "vm.bulk-update": bulkUpdateRunner({ ...f.cp.context, batchSize: BATCH }) },
    worker: "survivor",
    pollMs: 10,
  });
  survivor.start();
  try {
    return await survivor.waitFor(opId, 30_000);
  } finally {
    await survivor.stop();
  }
}

describe("a resumed bulk update never re-processes recorded items", () => {
  it("keeps the first worker's results (before/after, recording time) and finishes only the rest", () =>
    withFixture(
      async (f) => {
        const { opId, first } = await crashAfterFirstBatch(f, linuxSpec);
        for (const i of first) {
          assert.equal(i.outcome, "ok");
          assert.deepEqual(i.details, {
            before: { securityMode: "none", policy: 0 },
            after: { securityMode: "sev", policy: 0x3 },
          });
        }
        const done = await takeOver(f, opId);
        assert.deepEqual(
          [done.status, done.attempts, done.claimedBy, done.total, done.okCount],
          ["succeeded", 2, "survivor", VMS, VMS],
        );
        const items = await allItems(f, opId);
        assert.equal(items.length, VMS);
        const byTarget = new Map(items.map((i) => [i.target, i]));
        for (const i of first) assert.deepEqual(byTarget.get(i.target), i, `${i.target} was processed again`);
        // The rest were changed by the survivor, each with its own before/after; none is a mere "unchanged".
        const firstIds = new Set(first.map((i) => i.target));
        const rest = items.filter((i) => !firstIds.has(i.target));
        assert.equal(rest.length, VMS - BATCH);
        for (const i of rest) {
          assert.deepEqual(i.details, {
            before: { securityMode: "none", policy: 0 },
            after: { securityMode: "sev", policy: 0x3 },
          });
          assert.ok(i.recordedAt > (first[0]?.recordedAt ?? ""), "recorded after the takeover");
        }
        const audit = (await f.inventory.audit.list({ action: "vm.security.enable" }, { limit: 5000 })).items;
        assert.deepEqual(audit.map((r) => r.target).sort(), items.map((i) => i.target).sort());
      },
      { pollMs: 10 },
    ));

  it("a VM refused before the crash stays refused, even once the reason is gone", () =>
    withFixture(
      async (f) => {
        // Every VM is refused at first: Windows Server 2019 has no SEV support in the guest-OS table.
        const { opId, first } = await crashAfterFirstBatch(f, {
          ...linuxSpec,
          guestOs: "windows-server-2019",
        });
        for (const i of first) assert.equal(i.code, "GUEST_OS_UNSUPPORTED");
        // While the operation waits to be resumed, every VM is switched to a supported guest OS.
        for (const vm of (await f.inventory.vms.list({ namePrefix: "r-" }, { limit: 100 })).items)
          await f.inventory.vms.update(vm.id, { spec: linuxSpec });
        const done = await takeOver(f, opId);
        assert.deepEqual(
          [done.status, done.total, done.okCount, done.failedCount],
          ["partially-failed", VMS, VMS - BATCH, BATCH],
        );
        const byTarget = new Map((await allItems(f, opId)).map((i) => [i.target, i]));
        for (const i of first) {
          assert.deepEqual(byTarget.get(i.target), i, `${i.target} was processed again`);
          assert.equal((await f.inventory.vms.get(i.target))?.securityMode, "none", "left untouched");
        }
        assert.equal(await f.inventory.vms.count({ securityMode: "sev" }), VMS - BATCH);
      },
      { pollMs: 10 },
    ));
});
