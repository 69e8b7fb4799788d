/**
 * The idle checkpointer: after a write and a quiet moment the WAL is checkpointed, so the next writes reuse the
 * WAL from its start instead of growing it; with no write nothing runs; a stopped checkpointer never fires.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { IdleCheckpointer } from "./sqlite-checkpoint.ts";
import { openSqliteDatabase } from "./sqlite-dialect.ts";

function withDb(fn: (db: ReturnType<typeof openSqliteDatabase>, wal: () => number) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), "ciphervisor-checkpoint-"));
  const path = join(dir, "t.db");
  const db = openSqliteDatabase(path);
  db.exec("create table t (x text)");
  return fn(db, () => statSync(`${path}-wal`).size).finally(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

/** ~1,000 pages of rows in one transaction (past SQLite's default automatic checkpoint). */
function writeBatch(db: ReturnType<typeof openSqliteDatabase>, c: IdleCheckpointer): void {
  const insert = db.prepare("insert into t values (?)");
  db.transaction(() => {
    for (let i = 0; i < 1000; i++) insert.run("x".repeat(3000));
  })();
  c.wrote();
}

describe("IdleCheckpointer", () => {
  it("checkpoints once idle after a write, so the next batch reuses the WAL instead of growing it", () =>
    withDb(async (db, wal) => {
      const c = new IdleCheckpointer(db, { idleMs: 20 });
      writeBatch(db, c);
      const first = wal();
      assert.ok(first > 3_000_000, `WAL after one batch: ${first} bytes`);
      await sleep(400);
      writeBatch(db, c);
      assert.ok(wal() < first * 1.2, `the WAL was reused: ${wal()} after ${first}`);
      c.stop();
    }));

  it("leaves SQLite's automatic checkpoint as a bound only, so without idle time the WAL grows", () =>
    withDb(async (db, wal) => {
      const c = new IdleCheckpointer(db, { idleMs: 60_000 });
      writeBatch(db, c);
      const first = wal();
      writeBatch(db, c);
      assert.ok(wal() > first * 1.8, `no checkpoint between the batches: ${wal()} after ${first}`);
      assert.equal(db.pragma("wal_autocheckpoint", { simple: true }), 16_384);
      c.stop();
    }));

  it("never fires after stop()", () =>
    withDb(async (db, wal) => {
      const c = new IdleCheckpointer(db, { idleMs: 20 });
      writeBatch(db, c);
      c.stop();
      const first = wal();
      await sleep(400);
      c.wrote();
      writeBatch(db, c);
      assert.ok(wal() > first * 1.8, `stopped: ${wal()} after ${first}`);
    }));
});
