/**
 * Two control-plane nodes — two API instances, each with its own connection pool and operations engine — on one
 * PostgreSQL database, sharing the emulated hosts as real nodes share real hardware. A batch of operations is
 * submitted through both; every operation must run exactly once (one claim, one result per item, one audit record
 * per changed VM), and racing placements on the two nodes must never over-fill an ASID pool.
 *
 * Skipped loudly when PostgreSQL is unreachable, and a failure under CI=true (scripts/ci-postgres.sh starts it).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { verifyAuditChain } from "../control/audit/verify.ts";
import { emulatedDriver } from "../control/drivers/emulated-hosts.ts";
import type { Inventory } from "../control/inventory/inventory.ts";
import type { NewVm } from "../control/inventory/types.ts";
import { createToken } from "../control/services/tokens.ts";
import {
  type Fixture,
  fixtureOn,
  linuxSpec,
  postgresDatabase,
  type TestDatabase,
} from "../control/testing/control-fixture.ts";
import { type ApiApp, buildApi } from "./app.ts";

let db: TestDatabase | undefined;
let unreachable: string | undefined;

before(async () => {
  db = await postgresDatabase();
  if (!db)
    unreachable = "PostgreSQL is not reachable (run scripts/ci-postgres.sh or set CIPHERVISOR_TEST_PG)";
});
after(async () => {
  await db?.dispose();
});

interface Node {
  readonly inventory: Inventory;
  readonly f: Fixture;
  readonly app: ApiApp;
}

describe("two serve nodes on one PostgreSQL database", () => {
  it("process a shared batch of operations exactly once", async (t) => {
    if (!db) {
      if (process.env.CI === "true") assert.fail(unreachable);
      t.skip(unreachable);
      return;
    }
    const hardware = emulatedDriver();
    const nodes: Node[] = [];
    for (const name of ["node-a", "node-b"]) {
      const inventory = await db.open({ migrate: name === "node-a" });
      const f = fixtureOn(inventory, hardware, { worker: name, concurrency: 2, pollMs: 20 });
      nodes.push({ inventory, f, app: await buildApi({ cp: f.cp }) });
    }
    const [a, b] = nodes as [Node, Node];
    try {
      const admin = await createToken(
        a.inventory,
        { id: null, name: "setup" },
        {
          name: "batch",
          roles: ["operator", "security-admin"],
        },
      );
      const auth = { authorization: `Bearer ${admin.secret.reveal()}` };
      const rome = await a.f.host("rome-shared", "rome", 9); // 8 SEV-ES slots
      await b.f.host("milan-shared", "milan", 1); // no SEV-ES slots: every ES VM competes for rome-shared
      const rows: NewVm[] = Array.from({ length: 1000 }, (_, i) => ({
        name: `fleet-${String(i).padStart(4, "0")}`,
        spec: linuxSpec,
        hostId: rome,
        labels: { shard: String(i % 10) },
      }));
      await a.inventory.vms.createMany(rows);
      const es = await Promise.all(Array.from({ length: 12 }, (_, i) => a.f.vm(`es-${i}`, "sev-es")));

      // The batch: 10 bulk updates (one per shard) and 12 racing ES power-ons, alternating between the nodes.
      const submitted: string[] = [];
      const requests = [
        ...Array.from({ length: 10 }, (_, shard) => ({
          url: "/v1/vms:bulk-update",
          body: { selector: { labels: { shard: String(shard) } }, set: { securityMode: "sev-es" } },
        })),
        ...es.map((vm) => ({ url: `/v1/vms/${vm.id}/power-on`, body: undefined })),
      ];
      await Promise.all(
        requests.map(async (r, i) => {
          const node = i % 2 === 0 ? a : b;
          const res = await node.app.inject({
            method: "POST",
            url: r.url,
            headers: { ...auth, prefer: "respond-async" },
            ...(r.body === undefined ? {} : { payload: r.body }),
          });
          assert.equal(res.statusCode, 202, res.body);
          submitted.push((JSON.parse(res.body) as { operation: { id: string } }).operation.id);
        }),
      );
      const finals = await Promise.all(submitted.map((id) => a.f.cp.engine.waitFor(id, 120_000)));

      const byWorker = new Map<string, number>();
      for (const op of finals) {
        assert.ok(["succeeded", "failed"].includes(op.status), `${op.kind} ${op.status}`);
        assert.equal(op.attempts, 1, `${op.id} was claimed once`);
        byWorker.set(op.claimedBy ?? "?", (byWorker.get(op.claimedBy ?? "?") ?? 0) + 1);
        if (op.kind === "vm.bulk-update") {
          assert.deepEqual([op.total, op.done, op.okCount], [100, 100, 100], op.id);
        }
      }
      console.log(`# operations per node: ${JSON.stringify(Object.fromEntries(byWorker))}`);
      for (const w of byWorker.keys()) assert.ok(["node-a", "node-b"].includes(w));

      // Exactly once: each fleet VM changed once (version 2), one enable record each.
      assert.equal(await a.inventory.vms.count({ namePrefix: "fleet-", securityMode: "sev-es" }), 1000);
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<Inventory["vms"]["list"]>> = await b.inventory.vms.list(
          { namePrefix: "fleet-" },
          { limit: 1000, cursor },
        );
        for (const vm of page.items) assert.equal(vm.version, 2, `${vm.name} was updated once`);
        cursor = page.nextCursor;
      } while (cursor !== null);
      const enables = await a.inventory.audit.list({ action: "vm.security.enable" }, { limit: 5000 });
      assert.equal(enables.items.length, 1000);
      assert.equal(new Set(enables.items.map((r) => r.target)).size, 1000);

      // Racing placements from two nodes: exactly the pool's 8 slots were taken, the others refused with reasons.
      const powerOns = finals.filter((o) => o.kind === "vm.power-on");
      assert.equal(powerOns.filter((o) => o.status === "succeeded").length, 8);
      const caps = await (await hardware.connect("rome-shared")).capabilities();
      assert.equal(caps.pools.sevEs.used, 8);
      assert.equal(await a.inventory.vms.count({ securityMode: "sev-es", powerState: "running" }), 8);
      for (const op of powerOns.filter((o) => o.status === "failed")) {
        const item = (await b.inventory.operations.items(op.id)).items[0];
        assert.equal(item?.code, "NO_VALID_HOST");
      }
      assert.ok((await verifyAuditChain(b.inventory)).ok);
    } finally {
      for (const n of nodes) {
        await n.app.close();
        await n.f.cp.stop();
        await n.inventory.close();
      }
    }
  });
});
