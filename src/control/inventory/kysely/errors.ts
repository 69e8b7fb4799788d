/**
 * Translation of driver errors (better-sqlite3's `SQLITE_*` codes, PostgreSQL SQLSTATEs) into CiphervisorError
 * codes, so callers above the inventory never branch on a database's vocabulary. The original error is kept as
 * `cause` for logs; it names constraints and columns, never token secrets (only hashes are stored).
 */
import { CiphervisorError, type ErrorCode } from "../../../errors.ts";
import { APPEND_ONLY_MESSAGE, HEAD_FORWARD_MESSAGE } from "./migrations.ts";

export interface DbErrorContext {
  /** Message for a unique-key violation (e.g. "a VM named 'x' already exists"). */
  readonly unique?: string;
  /** Code and message for a foreign-key violation (a missing referenced row, or a row still referenced). */
  readonly foreignKey?: readonly [ErrorCode, string];
}

function driverCode(e: unknown): string {
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string") return e.code;
  return "";
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** True for SQLite's "this file is damaged" errors (a malformed page, a file shorter than its header, not SQLite). */
export function isSqliteCorruption(e: unknown): boolean {
  const code = driverCode(e);
  return code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB";
}

/** The socket errors (Node's errno codes) of a database connection refused, reset or cut off on the way. */
const CONNECTION_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** pg's own errors for a connection that dropped or never came: they carry no code, only these messages. */
const PG_CONNECTION_LOST =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable)/;

/**
 * True when `e` says the PostgreSQL server cannot be reached now — refused, reset, timed out, or the connection
 * dropped mid-query — rather than that the statement was wrong: the store is fine, the way to it is not.
 */
export function isConnectionLoss(e: unknown): boolean {
  if (e instanceof CiphervisorError) return false;
  const code = driverCode(e);
  if (CONNECTION_ERRNOS.has(code) || code.startsWith("08") || code === "57P01" || code === "57P03")
    return true;
  return code === "" && e instanceof Error && PG_CONNECTION_LOST.test(e.message);
}

/** True for errors raised by better-sqlite3 or pg (they carry a string `code`, or say the connection was lost). */
export function isDriverError(e: unknown): boolean {
  return !(e instanceof CiphervisorError) && (driverCode(e) !== "" || isConnectionLoss(e));
}

/** Maps `e` to a CiphervisorError (a CiphervisorError passes through unchanged). */
export function mapDbError(e: unknown, context: DbErrorContext = {}): CiphervisorError {
  if (e instanceof CiphervisorError) return e;
  const code = driverCode(e);
  const msg = messageOf(e);
  if (msg.includes(APPEND_ONLY_MESSAGE) || msg.includes(HEAD_FORWARD_MESSAGE)) {
    return new CiphervisorError("FORBIDDEN", "audit records cannot be changed or deleted", { cause: e });
  }
  if (code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return new CiphervisorError("CONFLICT", context.unique ?? "the object already exists", { cause: e });
  }
  // SQLite reports an ON DELETE RESTRICT violation as a trigger constraint with the foreign-key message.
  const sqliteForeignKey =
    code === "SQLITE_CONSTRAINT_FOREIGNKEY" ||
    (code === "SQLITE_CONSTRAINT_TRIGGER" && msg.includes("FOREIGN KEY"));
  if (code === "23503" || sqliteForeignKey) {
    const [c, m] = context.foreignKey ?? ["CONFLICT", "the change would break a reference between objects"];
    return new CiphervisorError(c, m, { cause: e });
  }
  // Lock contention that outlasted busy_timeout, or a PostgreSQL deadlock/serialization failure: safe to retry.
  if (code.startsWith("SQLITE_BUSY") || code === "40P01" || code === "40001") {
    return new CiphervisorError("CONFLICT", "the inventory is busy with a concurrent change; retry", {
      cause: e,
      details: { retryable: true },
    });
  }
  // The store itself is damaged or gone: the same codes the store check (`health.ts`) answers with.
  if (code.startsWith("SQLITE_READONLY") || code === "25006") {
    return new CiphervisorError(
      "STORE_READ_ONLY",
      "the inventory database is read-only; the change was not made",
      {
        cause: e,
      },
    );
  }
  if (isSqliteCorruption(e)) {
    return new CiphervisorError(
      "STORE_CORRUPT",
      "the inventory database is corrupt or truncated and cannot be read; restore it from a backup",
      { cause: e },
    );
  }
  if (isConnectionLoss(e)) {
    return new CiphervisorError("STORE_UNREACHABLE", "the PostgreSQL inventory does not answer", {
      cause: e,
    });
  }
  // The disk failed or filled up under a write (SQLite's I/O and full-disk codes; PostgreSQL's classes 53,
  // insufficient resources, and 58, system error): the store is fine, the machine is not. Nothing of the failed
  // transaction was kept, so a retry once the disk is back is safe.
  if (
    code.startsWith("SQLITE_IOERR") ||
    code === "SQLITE_FULL" ||
    code.startsWith("53") ||
    code.startsWith("58")
  ) {
    return new CiphervisorError(
      "IO",
      "the inventory database could not write (disk error or disk full); nothing of the change was kept",
      {
        cause: e,
        details: { retryable: true },
      },
    );
  }
  return new CiphervisorError("INTERNAL", "inventory database error", { cause: e });
}

/** Runs `fn`, translating any database error. */
export async function guardDb<T>(fn: () => Promise<T>, context?: DbErrorContext): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw mapDbError(e, context);
  }
}
