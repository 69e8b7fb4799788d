/**
 * The store checks behind `Inventory.check()`, one per dialect.
 *
 * SQLite, cheapest first: the file against its own header (a file shorter than the page count its header records
 * was truncated — SQLite itself would only meet the missing pages when a query reads them), then `PRAGMA
 * quick_check` (b-tree structure, record formats, NOT NULL; not index contents, which `integrity_check` adds at ten
 * times the cost), then whether the file and its directory can be written — asked of the kernel (`access`), which
 * can say which of them, and then of the connection itself: SQLite opens an unwritable file read-only without a
 * word, `BEGIN IMMEDIATE` still succeeds on it, and only the first real write would fail.
 *
 * PostgreSQL: `select` the session's `transaction_read_only` — no answer is unreachable, `on` is a read-only server
 * (a standby, or `default_transaction_read_only`).
 */
import { accessSync, closeSync, constants, openSync, readFileSync, readSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { type Kysely, sql } from "kysely";
import { type StoreCheckOptions, type StoreDamage, storeDamage } from "../health.ts";
import { isSqliteCorruption } from "./errors.ts";
import type { Db } from "./schema.ts";

/** The 100-byte database header (SQLite "Database File Format", section 1.3, sqlite.org/fileformat.html). */
const HEADER = {
  magic: { offset: 0, text: "SQLite format 3\u0000" },
  pageSize: 16, // u16 BE; 1 means 65536
  changeCounter: 24, // u32 BE
  pageCount: 28, // u32 BE, valid when versionValidFor equals changeCounter
  versionValidFor: 92, // u32 BE
  size: 100,
} as const;

/** How many quick_check findings are read (and reported): enough to show the extent, not a page per row. */
const MAX_FINDINGS = 10;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function readHeader(path: string): Buffer | undefined {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(HEADER.size);
    const n = readSync(fd, buf, 0, HEADER.size, 0);
    return n === HEADER.size ? buf : undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the write-ahead log beside the file holds a commit of a database at least `pages` long (frames of its
 * current salts, WAL format: sqlite.org/fileformat.html section 4): the pages the file lacks are then in the log.
 */
function walCovers(path: string, pageSize: number, pages: number): boolean {
  let wal: Buffer;
  try {
    wal = readFileSync(`${path}-wal`);
  } catch {
    return false;
  }
  if (wal.length < 32 || (wal.readUInt32BE(0) & 0xfffffffe) !== 0x377f0682) return false;
  if (wal.readUInt32BE(8) !== pageSize) return false;
  const [salt1, salt2] = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salt1 || wal.readUInt32BE(at + 12) !== salt2) break;
    if (wal.readUInt32BE(at + 4) >= pages) return true;
  }
  return false;
}

/** The file against its header: truncated, not SQLite at all, or fine (also for a new, empty file). */
function fileDamage(path: string): StoreDamage | undefined {
  const size = statSync(path).size;
  if (size === 0) return undefined;
  const header = readHeader(path);
  if (header === undefined) {
    return storeDamage(
      "truncated",
      `the inventory database file is truncated: ${size} bytes, shorter than its own header; restore it from a backup`,
      [`file size ${size} bytes`],
    );
  }
  if (header.toString("latin1", 0, HEADER.magic.text.length) !== HEADER.magic.text) {
    return storeDamage(
      "corrupt",
      "the inventory database is corrupt: the file is not an SQLite database (its header is overwritten); restore it from a backup",
      ["bad SQLite header magic"],
    );
  }
  const raw = header.readUInt16BE(HEADER.pageSize);
  const pageSize = raw === 1 ? 65536 : raw;
  const valid = header.readUInt32BE(HEADER.versionValidFor) === header.readUInt32BE(HEADER.changeCounter);
  const expected = valid ? header.readUInt32BE(HEADER.pageCount) * pageSize : 0;
  // A checkpoint copies the write-ahead log into the file in page order, page 1 (the header, with the new page
  // count) first: a node killed in the middle leaves a file shorter than its header says, with the pages it lacks
  // still in the log, where SQLite reads them and finishes the checkpoint. That is not truncation.
  const short = size < expected && !walCovers(path, pageSize, expected / pageSize);
  if (size % pageSize !== 0 || short) {
    return storeDamage(
      "truncated",
      `the inventory database file is truncated: ${mib(size)} of the ${mib(Math.max(expected, size))} its header records; writes are refused; restore it from a backup`,
      [`file size ${size} bytes`, `header: ${expected / pageSize} pages of ${pageSize} bytes`],
    );
  }
  return undefined;
}

function errorCode(e: unknown): string {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : "";
}

async function integrityDamage(db: Kysely<Db>, full: boolean): Promise<StoreDamage | undefined> {
  const pragma = full ? "integrity_check" : "quick_check";
  let lines: string[];
  try {
    const { rows } = await sql<
      Record<string, string>
    >`${sql.raw(`pragma ${pragma}(${MAX_FINDINGS})`)}`.execute(db);
    lines = rows.map((r) => String(Object.values(r)[0]));
  } catch (e) {
    // A page so damaged the check cannot even walk it is corruption too, not a failed check.
    if (!isSqliteCorruption(e)) throw e;
    lines = [e instanceof Error ? e.message : "SQLITE_CORRUPT"];
  }
  if (lines.length === 1 && lines[0] === "ok") return undefined;
  return storeDamage(
    "corrupt",
    `the inventory database is corrupt: PRAGMA ${pragma} found ${lines.length === MAX_FINDINGS ? `${MAX_FINDINGS} or more problems` : `${lines.length} problem${lines.length === 1 ? "" : "s"}`}; writes are refused; restore it from a backup`,
    lines,
  );
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch (e) {
    const code = errorCode(e);
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") return false;
    throw e;
  }
}

function accessDamage(path: string): StoreDamage | undefined {
  const file = writable(path);
  // SQLite creates the -wal and -shm files next to the database, and deletes them on close.
  const dir = writable(dirname(path));
  if (file && dir) return undefined;
  return storeDamage(
    "read-only",
    `the inventory database is read-only: ${file ? "its directory" : "the file"} cannot be written; writes are refused until it can`,
    [file ? "directory not writable" : "file not writable"],
  );
}

const ROLLBACK = Symbol("rollback");

/**
 * Whether this connection can write: SQLite opens a file it cannot write read-only, silently, and stays so after
 * the file is made writable again. Rewriting `user_version` with its own value needs a write transaction (what
 * fails on such a connection) and is rolled back.
 */
async function connectionDamage(db: Kysely<Db>): Promise<StoreDamage | undefined> {
  try {
    await db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ user_version: number }>`pragma user_version`.execute(trx);
      await sql.raw(`pragma user_version = ${Number(rows[0]?.user_version ?? 0)}`).execute(trx);
      throw ROLLBACK;
    });
  } catch (e) {
    if (e === ROLLBACK || !errorCode(e).startsWith("SQLITE_READONLY")) return undefined;
    return storeDamage(
      "read-only",
      "the inventory database is read-only: it was opened while the file could not be written; restart the node to reopen it",
      ["connection opened read-only"],
    );
  }
  return undefined;
}

/** When the last quick_check of each SQLite store ran and what it found (it costs ≈ 1 ms per 1,000 VMs). */
export interface IntegrityMemo {
  at: number;
  damage: StoreDamage | undefined;
}

/**
 * Checks an SQLite store. `memo` keeps the last quick_check so frequent callers (`/readyz`) can reuse one younger
 * than `maxAgeMs`; the file and access checks always run (microseconds).
 */
export async function checkSqlite(
  db: Kysely<Db>,
  path: string,
  options: StoreCheckOptions & { readonly maxAgeMs?: number },
  memo: IntegrityMemo | undefined,
  now: number,
): Promise<{ damage: StoreDamage | undefined; memo: IntegrityMemo | undefined }> {
  const file = path === ":memory:" ? undefined : fileDamage(path);
  if (file) return { damage: file, memo };
  let integrity = memo;
  if (options.full || integrity === undefined || now - integrity.at > (options.maxAgeMs ?? 0)) {
    integrity = { at: now, damage: await integrityDamage(db, options.full === true) };
  }
  if (integrity.damage) return { damage: integrity.damage, memo: integrity };
  const access = path === ":memory:" ? undefined : accessDamage(path);
  return { damage: access ?? (await connectionDamage(db)), memo: integrity };
}

/** Checks a PostgreSQL store: does it answer, and does it take writes. */
export async function checkPostgres(db: Kysely<Db>): Promise<StoreDamage | undefined> {
  let readOnly: string | undefined;
  try {
    const { rows } = await sql<{
      ro: string;
    }>`select current_setting('transaction_read_only') as ro`.execute(db);
    readOnly = rows[0]?.ro;
  } catch (e) {
    return storeDamage(
      "unreachable",
      "the PostgreSQL inventory does not answer; writes fail until it returns",
      [errorCode(e) || (e instanceof Error ? e.name : "error")],
    );
  }
  if (readOnly !== "on") return undefined;
  return storeDamage(
    "read-only",
    "the PostgreSQL inventory is read-only (a standby, or transactions default to read-only); writes are refused",
    ["transaction_read_only = on"],
  );
}
