/**
 * The inventory contract on PostgreSQL. Connects to CIPHERVISOR_TEST_PG (default: the database that
 * `scripts/ci-postgres.sh` creates); every test gets its own schema, dropped afterwards, so runs can share one
 * server in parallel. An unreachable server fails the suite under CI=true and is skipped loudly otherwise.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import pg from "pg";
import { type ContractBackend, runInventoryContract } from "./contract.ts";
import type { Inventory } from "./inventory.ts";
import { openInventory } from "./open.ts";
import { postgresUnreachable, unreachableReason } from "./testing/postgres-server.ts";

const url =
  process.env.CIPHERVISOR_TEST_PG ?? "postgres://ciphervisor:ciphervisor@127.0.0.1:5432/ciphervisor_test";

const admin = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
admin.on("error", () => {});
after(() => admin.end());

function schemaClient(schema: string): pg.Client {
  return new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
}

const postgresBackend: ContractBackend = {
  async create(options) {
    const schema = `cv_test_${process.pid}_${randomBytes(6).toString("hex")}`;
    const now = options?.now ? { now: options.now } : {};
    const inventory = await openInventory(url, { schema, poolSize: 4, ...now });
    const peers: Inventory[] = [];
    return {
      inventory,
      async openPeer(o) {
        const peer = await openInventory(url, {
          schema,
          poolSize: 4,
          migrate: false,
          ...(o?.now ? { now: o.now } : {}),
        });
        peers.push(peer);
        return peer;
      },
      async sql(statements, o) {
        const client = schemaClient(schema);
        await client.connect();
        try {
          // The schema's owner may disable its triggers, as an attacker holding that role could.
          if (o?.bypassTriggers) {
            await client.query("alter table audit disable trigger user");
            await client.query("alter table audit_head disable trigger user");
          }
          for (const s of statements) await client.query(s);
        } finally {
          if (o?.bypassTriggers) {
            await client.query("alter table audit enable trigger user");
            await client.query("alter table audit_head enable trigger user");
          }
          await client.end();
        }
      },
      async dumpText() {
        const tables = await admin.query<{ table_name: string }>(
          "select table_name from information_schema.tables where table_schema = $1",
          [schema],
        );
        const parts: string[] = [];
        for (const t of tables.rows) {
          const rows = await admin.query(`select * from "${schema}"."${t.table_name}"`);
          parts.push(JSON.stringify(rows.rows));
        }
        return parts.join("\n");
      },
      async dispose() {
        for (const p of peers) await p.close();
        await inventory.close();
        await admin.query(`drop schema if exists "${schema}" cascade`);
      },
    };
  },
};

const unreachable = await unreachableReason(admin);
if (unreachable === undefined) {
  runInventoryContract("PostgreSQL", postgresBackend);

  describe("inventory on PostgreSQL: isolation", () => {
    it("keeps the tables in the requested schema and tolerates a second migration", async () => {
      const schema = `cv_test_${process.pid}_${randomBytes(6).toString("hex")}`;
      try {
        const a = await openInventory(`${url}${url.includes("?") ? "&" : "?"}schema=${schema}`);
        await a.vms.create({
          name: "one",
          spec: { vcpus: 1, memoryMiB: 512, guestOs: "linux", firmware: "efi", hardwareVersion: 19 },
        });
        // A second node starting up runs the migrator again: nothing to do, nothing lost.
        const b = await openInventory(url, { schema });
        assert.equal(await b.vms.count(), 1);
        await Promise.all([a.close(), b.close()]);
        const t = await admin.query(
          "select count(*)::int as n from information_schema.tables where table_schema = $1",
          [schema],
        );
        assert.ok((t.rows[0] as { n: number }).n >= 9);
      } finally {
        await admin.query(`drop schema if exists "${schema}" cascade`);
      }
    });
  });

  describe("inventory on PostgreSQL: a connection dropped under a transaction", () => {
    it("fails that transaction with STORE_UNREACHABLE, does not crash the process, and serves the next call", async () => {
      const schema = `cv_test_${process.pid}_${randomBytes(6).toString("hex")}`;
      const app = `cv_drop_${randomBytes(6).toString("hex")}`;
      const sep = url.includes("?") ? "&" : "?";
      const inventory = await openInventory(`${url}${sep}application_name=${app}`, { schema, poolSize: 2 });
      try {
        await assert.rejects(
          inventory.transaction(async (tx) => {
            await tx.vms.count();
            // The server ends this connection while the transaction holds it (a restart or failover would too):
            // pg emits 'error' on the checked-out client, which nobody but open.ts listens to.
            await admin.query(
              "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
              [app],
            );
            await new Promise((r) => setTimeout(r, 100));
            await tx.vms.count();
          }),
          (e: unknown) => (e as { code?: string }).code === "STORE_UNREACHABLE",
        );
        assert.equal(await inventory.vms.count(), 0);
      } finally {
        await inventory.close();
        await admin.query(`drop schema if exists "${schema}" cascade`);
      }
    });
  });
} else {
  postgresUnreachable("PostgreSQL inventory contract", url, unreachable);
}
