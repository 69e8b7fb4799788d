/**
 * The store's change token (what the API's page cache keys on): on SQLite it moves with every committed change,
 * made through this inventory or through another connection to the same file, and stays put across reads; on
 * PostgreSQL, where other nodes write unseen, there is none.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { linuxSpec, postgresDatabase, sqliteDatabase } from "../testing/control-fixture.ts";

describe("Inventory.changeToken", () => {
  it("SQLite: moves on every write from any connection, never on reads", async () => {
    const db = sqliteDatabase();
    const a = await db.open();
    const b = await db.open();
    try {
      const t0 = a.changeToken();
      assert.equal(typeof t0, "string");
      await a.vms.list();
      await a.vms.count();
      assert.equal(a.changeToken(), t0, "reads change nothing");
      const vm = await a.vms.create({ name: "one", spec: linuxSpec, securityMode: "none", policy: 0 });
      const t1 = a.changeToken();
      assert.notEqual(t1, t0, "this connection's write");
      await b.vms.update(vm.id, { labels: { tier: "web" } });
      const t2 = a.changeToken();
      assert.notEqual(t2, t1, "another connection's commit");
      await a.transaction(async (tx) => {
        await tx.vms.update(vm.id, { labels: { tier: "db" } });
      });
      assert.notEqual(a.changeToken(), t2, "a transaction's commit");
    } finally {
      await a.close();
      await b.close();
      await db.dispose();
    }
  });

  it("PostgreSQL: no token (other nodes write without telling this one)", async (t) => {
    const db = await postgresDatabase();
    if (!db) {
      if (process.env["CI"] === "true") throw new Error("PostgreSQL is not reachable on 127.0.0.1");
      t.skip("PostgreSQL not reachable");
      return;
    }
    const inv = await db.open();
    try {
      assert.equal(inv.changeToken(), undefined);
    } finally {
      await inv.close();
      await db.dispose();
    }
  });
});
