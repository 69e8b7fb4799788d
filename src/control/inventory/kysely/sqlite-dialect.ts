/**
 * Kysely's SQLite dialect over better-sqlite3, with these changes that matter for a control plane:
 *  - pragmas are set before anything else: `busy_timeout` first (so even switching the journal mode waits for a
 *    concurrent opener instead of failing), then WAL, `synchronous=NORMAL` (consistent after a process crash; may
 *    lose the last commits on power loss, docs/threat-model.md §7) and foreign keys;
 *  - transactions begin IMMEDIATE, taking the write lock up front. A deferred BEGIN that reads and then writes can
 *    fail with SQLITE_BUSY when another process committed in between, which busy_timeout cannot retry; IMMEDIATE
 *    waits instead, which is what serializes audit appends and read-check-write sequences across processes;
 *  - waiting for another connection's write lock is asynchronous. SQLite's busy handler sleeps inside the call,
 *    which blocks Node's event loop; if the lock holder is another connection in this same process, it can then
 *    never finish, and both stall until the timeout. So after opening, busy_timeout is 0 and a statement that
 *    gets SQLITE_BUSY outside a transaction (BEGIN IMMEDIATE included) is retried after a timer, with backoff, for
 *    up to SQLITE_BUSY_TIMEOUT_MS; other processes and connections keep running meanwhile;
 *  - migrations run in one transaction: SQLite's DDL is transactional, but Kysely's SQLite adapter says it is not,
 *    which would leave a half-created schema after a crash during the first start and let two processes that
 *    start together both try to create it;
 *  - WAL checkpoints run when the connection is idle after a write, not inside the commit that crosses SQLite's
 *    1,000-page mark (sqlite-checkpoint.ts);
 *  - prepared statements are cached by SQL text. Kysely's own driver prepares every query anew, and preparing a
 *    multi-row INSERT costs more than running it; bulk paths reuse a few fixed statement shapes.
 */
import Database from "better-sqlite3";
import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from "kysely";
import { IdleCheckpointer } from "./sqlite-checkpoint.ts";

/** How long a writer waits for another process's write lock before giving up with SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;
const STATEMENT_CACHE_SIZE = 200;

/** Opens `path` (or `:memory:`) with the control plane's pragmas. */
export function openSqliteDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  // From here on lock waits are asynchronous retries in CachingSqliteConnection (see above).
  db.pragma("busy_timeout = 0");
  return db;
}

function isBusy(e: unknown): boolean {
  return (
    typeof e === "object" &&
    e !== null &&
    "code" in e &&
    typeof e.code === "string" &&
    e.code.startsWith("SQLITE_BUSY")
  );
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class CachingSqliteConnection implements DatabaseConnection {
  readonly #db: Database.Database;
  readonly #cache = new Map<string, Database.Statement>();
  readonly #checkpointer: IdleCheckpointer;

  constructor(db: Database.Database, checkpointer: IdleCheckpointer) {
    this.#db = db;
    this.#checkpointer = checkpointer;
  }

  #prepare(text: string): Database.Statement {
    let stmt = this.#cache.get(text);
    if (stmt) {
      // Move to the end: the Map's insertion order is the LRU order.
      this.#cache.delete(text);
    } else {
      stmt = this.#db.prepare(text);
      if (this.#cache.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.#cache.keys().next().value;
        if (oldest !== undefined) this.#cache.delete(oldest);
      }
    }
    this.#cache.set(text, stmt);
    return stmt;
  }

  #run<R>(stmt: Database.Statement, params: unknown[]): QueryResult<R> {
    if (stmt.reader) return { rows: stmt.all(params) as R[] };
    const { changes, lastInsertRowid } = stmt.run(params);
    // A COMMIT, or a write outside a transaction: committed now, to be checkpointed once the connection is idle.
    if (!this.#db.inTransaction) this.#checkpointer.wrote();
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const stmt = this.#prepare(query.sql);
    const params = query.parameters as unknown[];
    const deadline = Date.now() + SQLITE_BUSY_TIMEOUT_MS;
    let delay = 1;
    for (;;) {
      try {
        return this.#run<R>(stmt, params);
      } catch (e) {
        // Inside a transaction we already hold the write lock; BUSY there is not a wait-and-retry situation.
        if (!isBusy(e) || this.#db.inTransaction || Date.now() >= deadline) throw e;
        await sleep(delay);
        delay = Math.min(delay * 2, 25);
      }
    }
  }

  async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const stmt = this.#prepare(query.sql);
    for (const row of stmt.iterate(query.parameters as unknown[])) yield { rows: [row as R] };
  }
}

class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/** One connection, handed out under a mutex as Kysely's SQLite driver does. */
class ImmediateSqliteDriver implements Driver {
  readonly #connection: CachingSqliteConnection;
  readonly #db: Database.Database;
  readonly #checkpointer: IdleCheckpointer;
  #lock: Promise<void> = Promise.resolve();
  #unlock: (() => void) | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#checkpointer = new IdleCheckpointer(db);
    this.#connection = new CachingSqliteConnection(db, this.#checkpointer);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.#lock;
    let release!: () => void;
    this.#lock = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    this.#unlock = release;
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("commit"));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("rollback"));
  }

  async releaseConnection(): Promise<void> {
    const release = this.#unlock;
    this.#unlock = undefined;
    release?.();
  }

  async destroy(): Promise<void> {
    this.#checkpointer.stop();
    this.#db.close();
  }
}

/** A Kysely dialect for better-sqlite3 with IMMEDIATE transactions and a statement cache. */
export class ImmediateSqliteDialect implements Dialect {
  readonly #database: Database.Database;

  constructor(database: Database.Database) {
    this.#database = database;
  }

  createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#database);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}
