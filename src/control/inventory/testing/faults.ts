/**
 * Storage faults at the database connection, for the I/O-fault suite: a dialect wrapper whose connections count
 * every data-changing statement (INSERT, UPDATE, DELETE) and fail the Nth one with the error the database's own
 * driver raises for a failed write — better-sqlite3's `SqliteError` with `SQLITE_IOERR_WRITE` ("disk I/O error"),
 * or a pg error with SQLSTATE 58030 (`io_error`). The statement is not run; everything above the connection
 * (the inventory's transactions, rollbacks, error mapping, the engine) runs unchanged.
 *
 * BEGIN, COMMIT and ROLLBACK are not counted: a failed write is what a full disk or a dying device produces
 * first, and a transaction that saw one is rolled back by the code under test.
 *
 * @example
 * ```ts
 * const faults = new WriteFaults();
 * const inventory = await openInventory(path, { wrapDialect: (d) => faults.wrap(d, "sqlite") });
 * faults.arm(3); // the third write from now on fails, once
 * ```
 */
import Database from "better-sqlite3";
import type {
  CompiledQuery,
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  Kysely,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from "kysely";

/** Which driver's error a fault imitates. */
export type FaultFlavour = "sqlite" | "postgres";

const WRITE_NODES = new Set(["InsertQueryNode", "UpdateQueryNode", "DeleteQueryNode"]);
const WRITE_SQL = /^\s*(insert|update|delete|replace)\b/i;

/** Whether `query` changes data (a Kysely-built write, or raw SQL that starts with one). */
export function isWrite(query: CompiledQuery): boolean {
  return WRITE_NODES.has(query.query.kind) || WRITE_SQL.test(query.sql);
}

/** The error the real driver throws when a write cannot reach the disk. */
export function ioError(flavour: FaultFlavour): Error {
  if (flavour === "sqlite") return new Database.SqliteError("disk I/O error", "SQLITE_IOERR_WRITE");
  // pg's DatabaseError carries the SQLSTATE as `code` and the server's severity; this is its shape.
  return Object.assign(new Error("could not write to file: No space left on device"), {
    code: "58030",
    severity: "ERROR",
  });
}

/** A fault plan shared by every connection of one wrapped dialect. */
export class WriteFaults {
  /** Writes counted since the last `arm`. */
  writes = 0;
  /** The SQL of the write that failed, once one has. */
  fired: string | undefined;
  #failAt: number | undefined;

  /** From now on, count writes and fail the `n`th (1-based), once. */
  arm(n: number): void {
    this.writes = 0;
    this.fired = undefined;
    this.#failAt = n;
  }

  /** Count from now on, failing nothing (to learn how many writes an operation makes). */
  count(): void {
    this.writes = 0;
    this.fired = undefined;
    this.#failAt = undefined;
  }

  /** Stops injecting; counting goes on. */
  disarm(): void {
    this.#failAt = undefined;
  }

  /** Called for each statement; throws the injected error on the armed write. */
  before(query: CompiledQuery, flavour: FaultFlavour): void {
    if (!isWrite(query)) return;
    this.writes++;
    if (this.#failAt !== undefined && this.writes === this.#failAt) {
      this.#failAt = undefined;
      this.fired = query.sql;
      throw ioError(flavour);
    }
  }

  /** `dialect` with every connection's statements passing through this plan. */
  wrap(dialect: Dialect, flavour: FaultFlavour): Dialect {
    return new FaultyDialect(dialect, this, flavour);
  }
}

class FaultyConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    readonly faults: WriteFaults,
    readonly flavour: FaultFlavour,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    this.faults.before(query, this.flavour);
    return this.inner.executeQuery<R>(query);
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    this.faults.before(query, this.flavour);
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/** The inner driver, with each connection wrapped once (drivers compare the connections they are handed back). */
class FaultyDriver implements Driver {
  readonly #wrapped = new WeakMap<DatabaseConnection, FaultyConnection>();

  constructor(
    readonly inner: Driver,
    readonly faults: WriteFaults,
    readonly flavour: FaultFlavour,
  ) {}

  #unwrap(c: DatabaseConnection): DatabaseConnection {
    return c instanceof FaultyConnection ? c.inner : c;
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const c = await this.inner.acquireConnection();
    let w = this.#wrapped.get(c);
    if (!w) {
      w = new FaultyConnection(c, this.faults, this.flavour);
      this.#wrapped.set(c, w);
    }
    return w;
  }

  beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(this.#unwrap(c), settings);
  }

  commitTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(this.#unwrap(c));
  }

  rollbackTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(this.#unwrap(c));
  }

  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(this.#unwrap(c));
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

class FaultyDialect implements Dialect {
  constructor(
    readonly inner: Dialect,
    readonly faults: WriteFaults,
    readonly flavour: FaultFlavour,
  ) {}

  createDriver(): Driver {
    return new FaultyDriver(this.inner.createDriver(), this.faults, this.flavour);
  }

  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return this.inner.createAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return this.inner.createIntrospector(db);
  }
}
