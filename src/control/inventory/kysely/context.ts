/**
 * What every store needs: the executor (the root Kysely instance or one transaction), the dialect, the clock, and
 * a way to make a multi-statement call atomic when the caller did not open a transaction.
 */
import type { Kysely } from "kysely";
import type { InventoryDialect } from "../inventory.ts";
import { isDriverError, mapDbError } from "./errors.ts";
import type { Db } from "./schema.ts";

export interface StoreContext {
  readonly db: Kysely<Db>;
  readonly dialect: InventoryDialect;
  /** The inventory's clock (injectable for tests). */
  now(): Date;
}

/**
 * Runs `fn` inside the current transaction, or in a new one when `ctx` is not transactional. The new one's own
 * failures (BEGIN or COMMIT on a connection PostgreSQL dropped: `write ECONNRESET`) get their code as every
 * statement's do, so a lost connection is STORE_UNREACHABLE here too, not an internal error; `fn`'s errors pass.
 */
export async function atomic<T>(ctx: StoreContext, fn: (db: Kysely<Db>) => Promise<T>): Promise<T> {
  if (ctx.db.isTransaction) return fn(ctx.db);
  try {
    return await ctx.db.transaction().execute(fn);
  } catch (e) {
    throw isDriverError(e) ? mapDbError(e) : e;
  }
}

/** The current time as stored: ISO 8601 text, which sorts chronologically as plain text in both databases. */
export function isoNow(ctx: StoreContext, offsetMs = 0): string {
  return new Date(ctx.now().getTime() + offsetMs).toISOString();
}
