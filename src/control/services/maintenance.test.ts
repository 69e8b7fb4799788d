/**
 * Maintenance of a Rome host running ordinary, SEV and SEV-ES VMs: every running VM ends up running elsewhere by
 * the path the operation table dictates (live migration, or shutdown and restart on a host with a free slot in its
 * pool), checked in the inventory and on the emulated hosts themselves; with no free SEV-ES slot anywhere, exactly
 * the SEV-ES VMs are reported as unable to move and stay running where they were.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { verifyAuditChain } from "../audit/verify.ts";
import { reserveSlot } from "../capacity.ts";
import { runners } from "../control-plane.ts";
import type { SecurityMode, Vm } from "../inventory/types.ts";
import { OperationEngine } from "../operations/engine.ts";
import { type Fixture, linuxSpec, TEST_ACTOR, withFixture } from "../testing/control-fixture.ts";
import { drainPlan } from "./maintenance.ts";

async function running(
  f: Fixture,
  name: string,
  mode: SecurityMode,
  hostId: string,
  attestation = false,
): Promise<Vm> {
  const vm = await f.vm(name, mode, {
    hostId,
    spec: { ...linuxSpec, ...(attestation ? { attestation } : {}) },
  });
  const r = await f.run("vm.power-on", { vmId: vm.id }, vm.id);
  assert.equal(r.op.status, "succeeded", JSON.stringify(r.items));
  const after = await f.inventory.vms.get(vm.id);
  assert.equal(after?.hostId, hostId, `${name} started on its registration host`);
  return after as Vm;
}

async function hostName(f: Fixture, id: string | null): Promise<string | undefined> {
  return id === null ? undefined : (await f.inventory.hosts.get(id))?.name;
}

describe("maintenance mode", () => {
  it("drains a Rome host: ordinary VMs live-migrate, SEV and SEV-ES VMs restart on a host with a free slot", () =>
    withFixture(async (f) => {
      const rome1 = await f.host("rome-1", "rome");
      await f.host("rome-2", "rome", 5);
      await f.host("milan-1", "milan");
      await f.host("naples-1", "naples");
      const vms = [
        await running(f, "web-1", "none", rome1),
        await running(f, "web-2", "none", rome1),
        await running(f, "db-1", "sev-es", rome1),
        await running(f, "db-2", "sev-es", rome1),
        await running(f, "vault-1", "sev-es", rome1, true),
        await running(f, "legacy-1", "sev", rome1),
      ];
      const off = await f.vm("batch-1", "none", { hostId: rome1 });
      const paused = await f.inventory.vms.get(vms[4]?.id ?? "");
      assert.equal(paused?.powerState, "paused", "the attested VM waits for its owner");

      const plan = await drainPlan(f.cp.context, rome1);
      assert.deepEqual(plan.map((s) => [s.vm, s.path, s.target === undefined ? "-" : "target"]).sort(), [
        ["batch-1", "nothing-to-do", "-"],
        ["db-1", "restart-elsewhere", "target"],
        ["db-2", "restart-elsewhere", "target"],
        ["legacy-1", "restart-elsewhere", "target"],
        ["vault-1", "restart-elsewhere", "target"],
        ["web-1", "live-migrate", "target"],
        ["web-2", "live-migrate", "target"],
      ]);
      assert.equal(plan.find((s) => s.vm === "vault-1")?.needsOwner, true);

      const { op, items } = await f.run("host.enter-maintenance", { hostId: rome1 }, rome1);
      assert.equal(op.status, "succeeded", JSON.stringify(items));
      assert.equal((await f.inventory.hosts.get(rome1))?.maintenance, "in-maintenance");
      const byId = new Map(items.map((i) => [i.target, i]));
      for (const vm of vms) {
        const now = await f.inventory.vms.get(vm.id);
        const item = byId.get(vm.id);
        assert.equal(item?.outcome, "ok", `${vm.name}: ${item?.reason}`);
        assert.notEqual(now?.hostId, rome1, `${vm.name} left rome-1`);
        const where = await hostName(f, now?.hostId ?? null);
        assert.ok(where, `${vm.name} is placed`);
        assert.equal(now?.powerState, vm.powerState, `${vm.name} is ${vm.powerState} again`);
        const expectedPath = vm.securityMode === "none" ? "live-migrate" : "restart-elsewhere";
        assert.equal(item?.details?.path, expectedPath, vm.name);
        if (vm.securityMode === "sev-es")
          assert.notEqual(where, "naples-1", `${vm.name} cannot run on Naples`);
        // The emulated host itself agrees: the VM is launched there, and gone from rome-1.
        const st = await (await f.driver.connect(where ?? "")).status(vm.id);
        assert.equal(st?.power, vm.powerState === "paused" ? "paused" : "running", `${vm.name} on ${where}`);
        assert.equal(await (await f.driver.connect("rome-1")).status(vm.id), undefined);
      }
      assert.equal(byId.get(vms[4]?.id ?? "")?.details?.needsOwner, true);
      assert.equal(byId.get(off.id)?.details?.path, "nothing-to-do");
      assert.equal((await f.inventory.vms.get(off.id))?.hostId, rome1, "powered-off VMs stay registered");
      const caps = await (await f.driver.connect("rome-1")).capabilities();
      assert.equal(caps.pools.sevEs.used + caps.pools.sev.used, 0, "rome-1 holds no ASID");

      // A VM cannot be placed on a host in maintenance; exiting returns it to service.
      const extra = await f.vm("late-1", "none", { hostId: rome1 });
      const late = await f.run("vm.power-on", { vmId: extra.id }, extra.id);
      assert.notEqual((await f.inventory.vms.get(extra.id))?.hostId, rome1);
      assert.equal(late.op.status, "succeeded");
      const exit = await f.run("host.exit-maintenance", { hostId: rome1 }, rome1);
      assert.equal(exit.op.status, "succeeded");
      assert.equal((await f.inventory.hosts.get(rome1))?.maintenance, "none");
      assert.ok((await verifyAuditChain(f.inventory)).ok);
    }));

  it("with no free SEV-ES slot anywhere, reports exactly the VMs that could not move, and keeps them running", () =>
    withFixture(async (f) => {
      const rome1 = await f.host("rome-1", "rome");
      const rome2 = await f.host("rome-2", "rome", 5); // 4 SEV-ES ASIDs, all taken below
      await f.host("naples-1", "naples");
      for (let i = 0; i < 4; i++) await running(f, `busy-${i}`, "sev-es", rome2);
      const web = await running(f, "web-1", "none", rome1);
      const es = [
        await running(f, "db-1", "sev-es", rome1),
        await running(f, "db-2", "sev-es", rome1),
        await running(f, "db-3", "sev-es", rome1),
      ];
      const sev = await running(f, "legacy-1", "sev", rome1);

      const plan = await drainPlan(f.cp.context, rome1);
      for (const s of plan.filter((p) => p.securityMode === "sev-es"))
        assert.match(s.blocked ?? "", /NO_VALID_HOST|no host/);

      const first = await f.run("host.enter-maintenance", { hostId: rome1 }, rome1);
      assert.equal(first.op.status, "partially-failed");
      assert.equal(first.op.error?.code, "MAINTENANCE_INCOMPLETE");
      const failed = first.items.filter((i) => i.outcome === "failed");
      assert.deepEqual(
        failed.map((i) => i.target).sort(),
        es.map((v) => v.id).sort(),
        "exactly the SEV-ES VMs",
      );
      for (const i of failed) {
        assert.equal(i.code, "NO_VALID_HOST");
        assert.match(i.reason ?? "", /rome-2: .*all 4 SEV-ES ASIDs/);
        assert.match(i.reason ?? "", /naples-1: .*SEV-ES needs rome/);
        assert.match(i.reason ?? "", /rome-1: .*(current host|maintenance)/);
      }
      for (const vm of es) {
        const now = await f.inventory.vms.get(vm.id);
        assert.deepEqual(
          [now?.hostId, now?.powerState],
          [rome1, "running"],
          `${vm.name} still runs on rome-1`,
        );
        assert.equal((await (await f.driver.connect("rome-1")).status(vm.id))?.power, "running");
      }
      assert.notEqual((await f.inventory.vms.get(web.id))?.hostId, rome1, "the ordinary VM moved");
      assert.notEqual(
        (await f.inventory.vms.get(sev.id))?.hostId,
        rome1,
        "the SEV VM moved (its pool had room)",
      );
      assert.equal((await f.inventory.hosts.get(rome1))?.maintenance, "entering", "not in maintenance yet");

      // Free one SEV-ES slot on rome-2: a new attempt moves exactly one more VM.
      const busy = await f.inventory.vms.getByName("busy-0");
      await f.run("vm.power-off", { vmId: busy?.id ?? "" }, busy?.id);
      const second = await f.run("host.enter-maintenance", { hostId: rome1 }, rome1);
      assert.equal(second.items.filter((i) => i.outcome === "failed").length, 2);
      assert.equal(second.items.filter((i) => i.outcome === "ok").length, 1);
      assert.equal((await (await f.driver.connect("rome-2")).capabilities()).pools.sevEs.used, 4);
      assert.ok((await verifyAuditChain(f.inventory)).ok);
    }));

  it("keeps a host 'entering' while a suspended VM is on it, and says what to do", () =>
    withFixture(async (f) => {
      const rome1 = await f.host("rome-1", "rome");
      await f.host("milan-1", "milan");
      const vm = await running(f, "web-1", "none", rome1);
      assert.equal((await f.run("vm.suspend", { vmId: vm.id }, vm.id)).op.status, "succeeded");
      const { op, items } = await f.run("host.enter-maintenance", { hostId: rome1 }, rome1);
      assert.equal(op.status, "failed");
      assert.equal(items[0]?.code, "CONFLICT");
      assert.match(items[0]?.reason ?? "", /suspended: resume or power it off/);
      assert.equal((await f.inventory.hosts.get(rome1))?.maintenance, "entering");
    }));

  it("after a takeover, finishes a move the dead worker had reserved but not carried out", () =>
    withFixture(async (f) => {
      const rome1 = await f.host("rome-1", "rome");
      const milan = await f.host("milan-1", "milan");
      const vm = await running(f, "db-1", "sev-es", rome1);
      await f.cp.stop(); // from here on this test plays the workers by hand
      const { operation } = await f.cp.submit({
        kind: "host.enter-maintenance",
        actor: TEST_ACTOR,
        params: { hostId: rome1 },
        target: rome1,
      });
      const claimed = await f.inventory.operations.claimNext({ worker: "doomed", leaseMs: 30 });
      assert.equal(claimed?.id, operation.id);
      await f.inventory.hosts.update(rome1, { maintenance: "entering" });
      // The dead attempt got as far as the reservation: db-1 is `starting` on milan-1 but still runs on rome-1.
      const r = await reserveSlot(f.inventory, vm.id, { from: ["running"], exclude: [rome1] });
      assert.equal(r.host.id, milan);
      assert.equal((await (await f.driver.connect("rome-1")).status(vm.id))?.power, "running");
      await new Promise((done) => setTimeout(done, 40));
      const survivor = new OperationEngine({
        inventory: f.inventory,
        runners: runners(f.cp.context),
        worker: "survivor",
        pollMs: 10,
      });
      survivor.start();
      const done = await survivor.waitFor(operation.id, 30_000);
      await survivor.stop();
      assert.deepEqual([done.status, done.attempts], ["succeeded", 2]);
      const items = (await f.inventory.operations.items(operation.id)).items;
      assert.equal(items.find((i) => i.target === vm.id)?.details?.resumed, true);
      const now = await f.inventory.vms.get(vm.id);
      assert.deepEqual([now?.hostId, now?.powerState], [milan, "running"]);
      assert.equal((await (await f.driver.connect("milan-1")).status(vm.id))?.power, "running");
      assert.equal(await (await f.driver.connect("rome-1")).status(vm.id), undefined);
      assert.equal((await f.inventory.hosts.get(rome1))?.maintenance, "in-maintenance");
    }));

  it("a taken-over power-on keeps the slot its dead attempt reserved, even the pool's last one", () =>
    withFixture(async (f) => {
      await f.host("rome-tiny", "rome", 2); // one SEV-ES ASID
      const vm = await f.vm("only", "sev-es");
      await f.cp.stop();
      const { operation } = await f.cp.submit({
        kind: "vm.power-on",
        actor: TEST_ACTOR,
        params: { vmId: vm.id },
        target: vm.id,
      });
      await f.inventory.operations.claimNext({ worker: "doomed", leaseMs: 30 });
      await reserveSlot(f.inventory, vm.id, { from: ["off"] }); // the dead attempt's reservation
      await new Promise((done) => setTimeout(done, 40));
      const survivor = new OperationEngine({
        inventory: f.inventory,
        runners: runners(f.cp.context),
        worker: "s",
        pollMs: 10,
      });
      survivor.start();
      const done = await survivor.waitFor(operation.id, 30_000);
      await survivor.stop();
      assert.equal(
        done.status,
        "succeeded",
        JSON.stringify((await f.inventory.operations.items(operation.id)).items),
      );
      assert.equal((await f.inventory.vms.get(vm.id))?.powerState, "running");
      assert.equal((await (await f.driver.connect("rome-tiny")).capabilities()).pools.sevEs.used, 1);
    }));
});
