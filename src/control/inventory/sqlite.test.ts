/**
 * The inventory contract on SQLite (a temporary file per test), plus what only SQLite needs proving: two
 * processes writing one file serialize their transactions, so the audit chain does not fork and no operation is
 * claimed twice.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { verifyAuditChain } from "../audit/verify.ts";
import { type ContractBackend, runInventoryContract } from "./contract.ts";
import type { Inventory } from "./inventory.ts";
import { openInventory } from "./open.ts";

function dumpSqlite(file: string): string {
  const raw = new Database(file, { readonly: true });
  try {
    const tables = raw.prepare("select name from sqlite_master where type = 'table'").all() as {
      name: string;
    }[];
    return tables.map((t) => JSON.stringify(raw.prepare(`select * from "${t.name}"`).all())).join("\n");
  } finally {
    raw.close();
  }
}

const sqliteBackend: ContractBackend = {
  async create(options) {
    const dir = mkdtempSync(join(tmpdir(), "ciphervisor-inventory-"));
    const file = join(dir, "inventory.db");
    const inventory = await openInventory(file, options?.now ? { now: options.now } : {});
    const peers: Inventory[] = [];
    return {
      inventory,
      async openPeer(o) {
        const peer = await openInventory(`sqlite:${file}`, {
          migrate: false,
          ...(o?.now ? { now: o.now } : {}),
        });
        peers.push(peer);
        return peer;
      },
      async sql(statements, o) {
        const raw = new Database(file);
        try {
          raw.pragma("busy_timeout = 5000");
          if (o?.bypassTriggers) {
            raw.exec(
              "drop trigger audit_no_update; drop trigger audit_no_delete; drop trigger audit_head_forward;",
            );
          }
          for (const s of statements) raw.exec(s);
        } finally {
          raw.close();
        }
      },
      async dumpText() {
        return dumpSqlite(file);
      },
      async dispose() {
        for (const p of peers) await p.close();
        await inventory.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

runInventoryContract("SQLite", sqliteBackend);

const worker = fileURLToPath(new URL("./testing/sqlite-worker.ts", import.meta.url));

function runWorker(file: string, name: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), worker, file, name], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve(out.split("\n").filter((l) => l !== ""));
      else reject(new Error(`worker ${name} exited with ${code}: ${err}`));
    });
  });
}

describe("inventory on SQLite across processes", () => {
  it("serializes two processes: one audit chain, each operation claimed once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ciphervisor-inventory-"));
    const file = join(dir, "inventory.db");
    const inv = await openInventory(file);
    try {
      const actor = { id: null, name: "test" };
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push((await inv.operations.create({ kind: "k", actor })).operation.id);
      const [a, b] = await Promise.all([runWorker(file, "p1"), runWorker(file, "p2")]);
      const claimed = [...(a ?? []), ...(b ?? [])];
      assert.deepEqual([...claimed].sort(), [...ids].sort(), "every operation claimed exactly once");
      const v = await verifyAuditChain(inv);
      assert.ok(v.ok, v.firstBad?.message);
      // Each worker appends 2 records per claim and 20 records of its own.
      assert.equal(v.verified, 2 * 30 + 2 * 20);
    } finally {
      await inv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
