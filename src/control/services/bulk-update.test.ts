/**
 * `vm.bulk-update`: each VM checked on its own before anything is written (power state, host CPU generation and
 * ES pool, guest OS, EFI, hardware version, devices, Secure Boot), each changed VM written with exactly one audit
 * record, each refused VM untouched with a result naming the check; a run taken over from a dead worker finishes
 * the rest without doing anything twice; 10,000 VMs in batched transactions.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { verifyAuditChain } from "../audit/verify.ts";
import type { NewVm, Vm } from "../inventory/types.ts";
import { OperationEngine } from "../operations/engine.ts";
import { linuxSpec, TEST_ACTOR, withFixture } from "../testing/control-fixture.ts";
import { bulkParams, bulkUpdateRunner } from "./bulk-update.ts";

describe("bulk update", () => {
  it("checks every VM before touching it and reports the failed check per VM", () =>
    withFixture(async (f) => {
      const rome = await f.host("rome-1", "rome");
      const naples = await f.host("naples-1", "naples");
      const noEs = await f.host("rome-bios-split", "rome", 1); // min_sev_asid = 1: no SEV-ES pool
      const mk = (name: string, extra: Partial<Omit<Vm, "id" | "name">> = {}) =>
        f.vm(name, "none", { hostId: rome, labels: { batch: "x" }, ...extra });
      const expect: Record<string, string> = {};
      const good = await mk("good");
      expect[good.id] = "ok";
      const unplaced = await f.vm("unplaced", "none", { labels: { batch: "x" } });
      expect[unplaced.id] = "ok";
      const on = await mk("on");
      assert.equal((await f.run("vm.power-on", { vmId: on.id }, on.id)).op.status, "succeeded");
      expect[on.id] = "POWER_STATE";
      expect[(await mk("on-naples", { hostId: naples })).id] = "CPU_GENERATION";
      expect[(await mk("bios-split", { hostId: noEs })).id] = "SEV_ES_POOL_EMPTY";
      expect[(await mk("win", { spec: { ...linuxSpec, guestOs: "windows-server-2019" } })).id] =
        "GUEST_OS_UNSUPPORTED";
      expect[(await mk("old-linux", { spec: { ...linuxSpec, guestOs: "linux-4.16" } })).id] =
        "GUEST_OS_UNSUPPORTED";
      expect[(await mk("legacy-bios", { spec: { ...linuxSpec, firmware: "bios" } })).id] = "EFI_REQUIRED";
      expect[(await mk("hw14", { spec: { ...linuxSpec, hardwareVersion: 14 } })).id] = "HARDWARE_VERSION";
      expect[
        (
          await mk("gpu", {
            spec: { ...linuxSpec, devices: [{ kind: "pci-passthrough", detail: "0000:41:00.0" }] },
          })
        ).id
      ] = "DEVICE_UNSUPPORTED";
      expect[(await mk("sb", { spec: { ...linuxSpec, secureBoot: true } })).id] = "SECURE_BOOT";
      const already = await f.vm("already", "sev-es", { hostId: rome, labels: { batch: "x" } });
      expect[already.id] = "ok";
      const before = new Map(
        (await f.inventory.vms.list({ labels: { batch: "x" } })).items.map((v) => [v.id, v]),
      );

      const { op, items } = await f.run(
        "vm.bulk-update",
        bulkParams({ labels: { batch: "x" } }, { securityMode: "sev-es" }, ["security-admin"]),
      );
      assert.equal(op.status, "partially-failed");
      assert.equal(op.total, Object.keys(expect).length);
      assert.equal(items.length, op.total);
      for (const item of items) {
        const want = expect[item.target];
        assert.equal(
          item.outcome === "ok" ? "ok" : item.code,
          want,
          `${before.get(item.target)?.name}: ${item.reason}`,
        );
        const after = await f.inventory.vms.get(item.target);
        const was = before.get(item.target);
        if (item.outcome === "failed") {
          assert.deepEqual(after, was, "a refused VM is untouched");
          assert.ok((item.reason ?? "").length > 20);
        }
      }
      assert.deepEqual(items.find((i) => i.target === already.id)?.details, { unchanged: true });
      for (const id of [good.id, unplaced.id]) {
        const vm = await f.inventory.vms.get(id);
        assert.deepEqual([vm?.securityMode, vm?.policy, vm?.version], ["sev-es", 0x7, 2]);
        const records = (await f.inventory.audit.list({ target: id, action: "vm.security.enable" })).items;
        assert.equal(records.length, 1);
        assert.deepEqual(records[0]?.details.before, { securityMode: "none", policy: 0 });
        assert.deepEqual(records[0]?.details.after, { securityMode: "sev-es", policy: 7 });
      }
      assert.ok((await verifyAuditChain(f.inventory)).ok);
    }));

  it("resumes an operation whose worker died mid-way without changing or auditing any VM twice", () =>
    withFixture(
      async (f) => {
        // Stop the fixture's engine: this test plays the dead worker by hand, then lets a new engine take over.
        await f.cp.stop();
        await f.host("milan-1", "milan");
        await f.inventory.vms.createMany(
          Array.from(
            { length: 300 },
            (_, i): NewVm => ({ name: `r-${String(i).padStart(3, "0")}`, spec: linuxSpec }),
          ),
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
        let batches = 0;
        const runner = bulkUpdateRunner({ ...f.cp.context, batchSize: 100 });
        await assert.rejects(
          runner({
            op: claimed ?? operation,
            worker: "doomed",
            signal: abort.signal,
            recordedTargets: async () => new Set(),
            progress: () => {
              batches++;
              if (batches === 2) abort.abort(); // dies after the first batch of 100 committed
            },
          }),
          /interrupted/,
        );
        assert.equal(await f.inventory.vms.count({ securityMode: "sev" }), 100);
        await new Promise((r) => setTimeout(r, 60)); // the dead worker's lease lapses
        const survivor = new OperationEngine({
          inventory: f.inventory,
          runners: { "vm.bulk-update": bulkUpdateRunner({ ...f.cp.context, batchSize: 100 }) },
          worker: "survivor",
          pollMs: 10,
        });
        survivor.start();
        const done = await survivor.waitFor(operation.id, 30_000);
        await survivor.stop();
        assert.deepEqual(
          [done.status, done.attempts, done.claimedBy, done.total, done.okCount],
          ["succeeded", 2, "survivor", 300, 300],
        );
        assert.equal(await f.inventory.vms.count({ securityMode: "sev" }), 300);
        const records = (await f.inventory.audit.list({ action: "vm.security.enable" }, { limit: 5000 }))
          .items;
        assert.equal(records.length, 300);
        assert.equal(new Set(records.map((r) => r.target)).size, 300);
        for (const vm of (await f.inventory.vms.list({}, { limit: 5000 })).items) assert.equal(vm.version, 2);
      },
      { pollMs: 10 },
    ));

  it("turns SEV-ES on for 10,000 VMs in batched transactions", () =>
    withFixture(async (f) => {
      const hosts = [await f.host("rome-1", "rome"), await f.host("milan-1", "milan")];
      await f.inventory.vms.createMany(
        Array.from(
          { length: 10_000 },
          (_, i): NewVm => ({
            name: `vm-${String(i).padStart(5, "0")}`,
            spec: linuxSpec,
            hostId: hosts[i % 2] ?? null,
          }),
        ),
      );
      const t0 = performance.now();
      const { op } = await f.run(
        "vm.bulk-update",
        bulkParams({ namePrefix: "vm-" }, { securityMode: "sev-es" }, ["security-admin"]),
      );
      const ms = performance.now() - t0;
      console.log(`# bulk update of 10,000 VMs through the operations engine: ${ms.toFixed(0)} ms`);
      assert.deepEqual([op.status, op.total, op.okCount], ["succeeded", 10_000, 10_000]);
      assert.equal(await f.inventory.vms.count({ securityMode: "sev-es" }), 10_000);
      assert.equal(
        (await f.inventory.audit.list({ action: "vm.security.enable" }, { limit: 5000 })).nextCursor !== null,
        true,
      );
      assert.ok((await verifyAuditChain(f.inventory)).ok);
    }));
});
