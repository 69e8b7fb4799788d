/**
 * The one place the inventory's database is chosen. A file path or `sqlite:` URL opens the embedded SQLite store
 * (the default: one file under the data directory, WAL); a `postgres://` URL opens PostgreSQL for a control plane
 * of several nodes.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { type Dialect, Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { CiphervisorError } from "../../errors.ts";
import { refusesWrites } from "./health.ts";
import type { Inventory } from "./inventory.ts";
import { isSqliteCorruption } from "./kysely/errors.ts";
import { KyselyInventory } from "./kysely/kysely-inventory.ts";
import type { Db } from "./kysely/schema.ts";
import { ImmediateSqliteDialect, openSqliteDatabase } from "./kysely/sqlite-dialect.ts";

export interface OpenInventoryOptions {
  /** The clock for stored times (tests inject one). */
  readonly now?: () => Date;
  /** Apply pending migrations on open (default true; safe with several nodes, Kysely takes a lock). */
  readonly migrate?: boolean;
  /**
   * PostgreSQL schema for the tables, created if missing (default: `schema` URL parameter, else `public`).
   * Lets several control planes, or parallel test runs, share one database.
   */
  readonly schema?: string;
  /** PostgreSQL pool size (default 10). */
  readonly poolSize?: number;
  /** Wraps the dialect before use: the seam through which tests inject storage faults (`testing/faults.ts`). */
  readonly wrapDialect?: (dialect: Dialect) => Dialect;
}

/** Where an inventory URL points. */
export type InventoryLocation =
  | { readonly dialect: "sqlite"; readonly path: string }
  | { readonly dialect: "postgres"; readonly connectionString: string; readonly schema: string | undefined };

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Parses `--db`: `postgres://…` / `postgresql://…` (optional `?schema=name`), `sqlite:PATH`, `sqlite://PATH`,
 * `sqlite::memory:`, or a plain file path.
 *
 * @example
 * ```ts
 * parseInventoryUrl("/var/lib/ciphervisor/inventory.db"); // { dialect: "sqlite", path: "/var/lib/…" }
 * ```
 */
export function parseInventoryUrl(url: string): InventoryLocation {
  if (/^postgres(ql)?:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      // Never echo the URL: it may carry a password.
      throw new CiphervisorError("INVALID_INPUT", "the PostgreSQL URL is malformed", {
        details: { field: "db" },
      });
    }
    const schema = parsed.searchParams.get("schema") ?? undefined;
    parsed.searchParams.delete("schema");
    return { dialect: "postgres", connectionString: parsed.toString(), schema };
  }
  if (url.startsWith("sqlite:")) {
    const rest = url.slice("sqlite:".length);
    const path = rest.startsWith("//") ? rest.slice(2) : rest;
    if (path === "") throw new CiphervisorError("INVALID_INPUT", "sqlite: URL without a path");
    return { dialect: "sqlite", path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      "unsupported database URL; use a file path, sqlite: or postgres://",
      {
        details: { field: "db" },
      },
    );
  }
  if (url === "") throw new CiphervisorError("INVALID_INPUT", "empty database path");
  return { dialect: "sqlite", path: url };
}

const INT8_OID = 20;

/** int8 (count(*), bigint columns) as a JS number instead of pg's default string; our values stay below 2^53. */
const pgTypes = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

async function openPostgres(
  location: Extract<InventoryLocation, { dialect: "postgres" }>,
  options: OpenInventoryOptions,
): Promise<KyselyInventory> {
  const schema = options.schema ?? location.schema ?? "public";
  if (!SCHEMA_NAME.test(schema)) {
    throw new CiphervisorError("INVALID_INPUT", "schema must be a lower-case SQL identifier", {
      details: { field: "schema" },
    });
  }
  const pool = new pg.Pool({
    connectionString: location.connectionString,
    max: options.poolSize ?? 10,
    // Every connection resolves unqualified names in our schema only (tables, trigger functions, migrations).
    options: `-c search_path=${schema}`,
    // A stopped server refuses at once, but an unreachable address would otherwise hang /readyz for minutes.
    connectionTimeoutMillis: 5000,
    types: pgTypes,
  });
  // An idle client losing its server emits 'error' on the pool; unhandled, it would kill the process. The next
  // query gets a fresh connection or a reported error.
  pool.on("error", () => {});
  // A client in use (a query or transaction under way) whose connection drops emits 'error' on itself, where the
  // pool does not listen: unhandled, that too kills the process. Its queries already fail with the error (mapped
  // to STORE_UNREACHABLE), and the pool discards it when it is released.
  pool.on("connect", (client) => client.on("error", () => {}));
  const dialect = new PostgresDialect({ pool });
  const db = new Kysely<Db>({ dialect: options.wrapDialect?.(dialect) ?? dialect });
  try {
    // Look first: CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database, which a least-privilege role
    // running against an existing schema (e.g. public) should not need.
    const found = await sql<{
      one: number;
    }>`select 1 as one from pg_namespace where nspname = ${schema}`.execute(db);
    if (found.rows.length === 0) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
  } catch (cause) {
    await db.destroy();
    throw new CiphervisorError("STORE_UNREACHABLE", "cannot connect to the PostgreSQL inventory", { cause });
  }
  return new KyselyInventory(db, {
    dialect: "postgres",
    schema,
    ...(options.now ? { now: options.now } : {}),
  });
}

/** Why SQLite refused to open a file. */
function sqliteOpenFailure(path: string, cause: unknown): CiphervisorError {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : "";
  if (code.startsWith("SQLITE_READONLY")) {
    return new CiphervisorError(
      "STORE_READ_ONLY",
      `cannot open the SQLite inventory at ${path}: it is read-only, and SQLite needs to write the -wal and -shm files next to it`,
      { cause, details: { damage: "read-only" } },
    );
  }
  return new CiphervisorError("IO", `cannot open the SQLite inventory at ${path}`, { cause });
}

/**
 * SQLite's own change counters, read without a query plan or the connection's queue: `data_version` moves when
 * another connection commits; `total_changes()` counts every row this connection changed (rolled back or not, so
 * it can only move too far — a needless miss, never a stale hit). A store SQLite cannot read has no token.
 */
function sqliteChangeToken(database: Database.Database): () => string | undefined {
  let changes: Database.Statement | undefined;
  return () => {
    try {
      changes ??= database.prepare("SELECT total_changes()").pluck();
      return `${String(database.pragma("data_version", { simple: true }))}.${String(changes.get())}`;
    } catch {
      return undefined;
    }
  };
}

function openSqlite(path: string, options: OpenInventoryOptions): KyselyInventory {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  let database: ReturnType<typeof openSqliteDatabase>;
  try {
    database = openSqliteDatabase(path);
  } catch (cause) {
    if (!isSqliteCorruption(cause)) throw sqliteOpenFailure(path, cause);
    // A file SQLite will not read at all (cut short, header overwritten) still opens, as a connection on which every
    // query fails with STORE_CORRUPT: `serve` can then answer /readyz with what is wrong instead of not starting.
    database = new Database(path);
  }
  const dialect = new ImmediateSqliteDialect(database);
  const db = new Kysely<Db>({ dialect: options.wrapDialect?.(dialect) ?? dialect });
  return new KyselyInventory(db, {
    dialect: "sqlite",
    path,
    changeToken: sqliteChangeToken(database),
    ...(options.now ? { now: options.now } : {}),
  });
}

/**
 * Opens (and by default migrates) the inventory at `url`, after checking the store (`Inventory.check`): a damaged
 * store still opens, so its reads and `/readyz` work, but is not migrated — and `inventory.damage` says why.
 *
 * @example
 * ```ts
 * const inventory = await openInventory(`${dataDir}/inventory.db`);
 * await inventory.transaction(async (tx) => {
 *   const vm = await tx.vms.update(id, { securityMode: "sev-es", policy: 0x5 });
 *   await tx.audit.append({ actor, action: "vm.security.enable", target: vm.id, outcome: "ok" });
 * });
 * ```
 */
export async function openInventory(url: string, options: OpenInventoryOptions = {}): Promise<Inventory> {
  const location = parseInventoryUrl(url);
  const inventory =
    location.dialect === "postgres"
      ? await openPostgres(location, options)
      : openSqlite(location.path, options);
  try {
    await inventory.check();
  } catch (e) {
    await inventory.close();
    throw e;
  }
  if ((options.migrate ?? true) && !refusesWrites(inventory.damage)) {
    try {
      await inventory.migrate();
    } catch (e) {
      await inventory.close();
      throw e;
    }
  }
  return inventory;
}
