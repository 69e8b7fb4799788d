/**
 * The store check on real damaged SQLite files: a corrupt page, a truncated file and a read-only file each open
 * (reads still work where SQLite can read), are named apart with their own code and message, are not migrated, and
 * a write into them fails with the same code. A healthy store checks clean, also with the full integrity_check.
 */
import assert from "node:assert/strict";
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { isCiphervisorError } from "../../errors.ts";
import { linuxSpec } from "../testing/control-fixture.ts";
import { openInventory } from "./open.ts";
import {
  corruptPages,
  makeReadOnly,
  populatedStore,
  restoreWritable,
  truncateStore,
} from "./testing/damage.ts";

const dirs: string[] = [];
const readOnly: string[] = [];
after(() => {
  for (const f of readOnly) restoreWritable(f);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function store(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "cv-health-"));
  dirs.push(dir);
  const path = join(dir, "inventory.db");
  await populatedStore(path);
  return path;
}

describe("the inventory's store check", () => {
  it("a healthy store checks clean, quick and full", async () => {
    const inv = await openInventory(await store());
    try {
      assert.equal(inv.damage, undefined);
      assert.equal(await inv.check({ full: true }), undefined);
      assert.equal(await inv.vms.count(), 3000);
    } finally {
      await inv.close();
    }
  });

  it("a corrupt page: STORE_CORRUPT naming quick_check's findings; a write fails with the same code", async () => {
    const path = await store();
    corruptPages(path);
    const inv = await openInventory(path);
    try {
      const d = inv.damage;
      assert.equal(d?.kind, "corrupt");
      assert.equal(d?.code, "STORE_CORRUPT");
      assert.match(d?.message ?? "", /corrupt: PRAGMA quick_check found \d+.* problems?; writes are refused/);
      assert.ok((d?.findings.length ?? 0) > 0);
      assert.doesNotMatch(
        d?.message ?? "",
        /inventory\.db/,
        "the message names no path (it is public on /readyz)",
      );
      // SQLite may still append rows past the damage; refusing writes is the API's part (api/store-damage.test.ts).
    } finally {
      await inv.close();
    }
  });

  it("a truncated file: STORE_CORRUPT with a truncation message and both sizes; queries fail with the code", async () => {
    const path = await store();
    truncateStore(path);
    const inv = await openInventory(path);
    try {
      assert.equal(inv.damage?.kind, "truncated");
      assert.equal(inv.damage?.code, "STORE_CORRUPT");
      assert.match(
        inv.damage?.message ?? "",
        /file is truncated: [\d.]+ MiB of the [\d.]+ MiB its header records/,
      );
      // SQLite reads nothing of a file shorter than its header says; the query fails with a code, not a crash.
      await assert.rejects(inv.vms.count(), (e) => isCiphervisorError(e, "STORE_CORRUPT"));
    } finally {
      await inv.close();
    }
  });

  it("a checkpoint cut short (page 1 copied, the rest still in the WAL) is healthy; without the WAL it is truncated", async () => {
    const path = await store();
    // Grow the database in the write-ahead log only, then snapshot the file and the log as a SIGKILL would.
    const live = new Database(path);
    live.pragma("wal_autocheckpoint = 0");
    live.exec("CREATE TABLE pad (x BLOB)");
    const insert = live.prepare("INSERT INTO pad VALUES (randomblob(3000))");
    live.transaction(() => {
      for (let i = 0; i < 500; i++) insert.run();
    })();
    const crashed = join(mkdtempSync(join(tmpdir(), "cv-health-")), "inventory.db");
    dirs.push(dirname(crashed));
    copyFileSync(path, crashed);
    copyFileSync(`${path}-wal`, `${crashed}-wal`);
    live.close();
    // The checkpoint's first write: the log's newest copy of page 1 (its header now counts the grown file).
    const wal = readFileSync(`${crashed}-wal`);
    const pageSize = wal.readUInt32BE(8);
    let page1: Buffer | undefined;
    for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
      if (wal.readUInt32BE(at) === 1) page1 = wal.subarray(at + 24, at + 24 + pageSize);
    }
    assert.ok(page1, "the log holds page 1");
    const fd = openSync(crashed, "r+");
    writeSync(fd, page1, 0, pageSize, 0);
    closeSync(fd);
    assert.ok(
      statSync(crashed).size < page1.readUInt32BE(28) * pageSize,
      "the file is shorter than its header says",
    );

    const noWal = join(dirname(crashed), "no-wal.db");
    copyFileSync(crashed, noWal);
    const inv = await openInventory(crashed);
    try {
      assert.equal(inv.damage, undefined, inv.damage?.message);
      assert.equal(await inv.check({ full: true }), undefined);
      assert.equal(await inv.vms.count(), 3000);
    } finally {
      await inv.close();
    }
    const cut = await openInventory(noWal);
    try {
      assert.equal(cut.damage?.kind, "truncated", "the same file without its log is truncated");
    } finally {
      await cut.close();
    }
  });

  it("an overwritten header: STORE_CORRUPT, not an SQLite database", async () => {
    const path = await store();
    writeFileSync(path, Buffer.alloc(4096, 0x41), { flag: "r+" });
    const inv = await openInventory(path);
    try {
      assert.equal(inv.damage?.kind, "corrupt");
      assert.match(inv.damage?.message ?? "", /not an SQLite database/);
    } finally {
      await inv.close();
    }
  });

  it("a read-only file: STORE_READ_ONLY, reads work, a write fails with the same code", async () => {
    const path = await store();
    makeReadOnly(path);
    readOnly.push(path);
    const inv = await openInventory(path);
    try {
      assert.equal(inv.damage?.kind, "read-only");
      assert.equal(inv.damage?.code, "STORE_READ_ONLY");
      assert.match(inv.damage?.message ?? "", /read-only: the file cannot be written/);
      assert.equal(await inv.vms.count(), 3000, "reads still work");
      await assert.rejects(inv.vms.create({ name: "new", spec: linuxSpec }), (e) =>
        isCiphervisorError(e, "STORE_READ_ONLY"),
      );
      // Made writable again: this connection stays read-only (SQLite decided at open), and the check says so.
      restoreWritable(path);
      assert.match((await inv.check())?.message ?? "", /opened while the file could not be written/);
      const reopened = await openInventory(path);
      assert.equal(reopened.damage, undefined);
      await reopened.close();
    } finally {
      await inv.close();
    }
  });

  it("a quick_check younger than maxAgeMs is reused; the file check runs every time", async () => {
    const path = await store();
    const inv = await openInventory(path);
    try {
      assert.equal(await inv.check({ maxAgeMs: 60_000 }), undefined);
      truncateStore(path);
      assert.equal((await inv.check({ maxAgeMs: 60_000 }))?.kind, "truncated");
    } finally {
      await inv.close();
    }
  });
});
