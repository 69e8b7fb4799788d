/**
 * `atomic`: a store call's own transaction. Before the fix a connection PostgreSQL had dropped failed at its BEGIN
 * with pg's raw `write ECONNRESET` — not a coded error — so `operations.finish`, `recordItems` and `audit.append`
 * outside a transaction reported an internal error (500) where every statement reports STORE_UNREACHABLE (503).
 * Found by the crash-consistency suite's "PostgreSQL restarted" case (connections dropped under a running node).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Kysely } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { atomic, type StoreContext } from "./context.ts";
import type { Db } from "./schema.ts";

/** A context whose new transactions fail as `fail` says (or run the callback on a marker executor). */
function context(fail?: unknown): { ctx: StoreContext; trx: Kysely<Db> } {
  const trx = { isTransaction: true } as unknown as Kysely<Db>;
  const db = {
    isTransaction: false,
    transaction: () => ({
      execute: async <T>(fn: (db: Kysely<Db>) => Promise<T>): Promise<T> => {
        if (fail !== undefined) throw fail;
        return fn(trx);
      },
    }),
  } as unknown as Kysely<Db>;
  return { ctx: { db, dialect: "postgres", now: () => new Date() }, trx };
}

describe("atomic: a store call's own transaction", () => {
  it("reports a connection lost at BEGIN or COMMIT as STORE_UNREACHABLE, not an internal error", async () => {
    const reset = Object.assign(new Error("write ECONNRESET"), { code: "ECONNRESET" });
    await assert.rejects(
      atomic(context(reset).ctx, async () => 1),
      (e: unknown) => e instanceof CiphervisorError && e.code === "STORE_UNREACHABLE" && e.cause === reset,
    );
    const ended = new Error("Connection terminated unexpectedly");
    await assert.rejects(
      atomic(context(ended).ctx, async () => 1),
      (e: unknown) => e instanceof CiphervisorError && e.code === "STORE_UNREACHABLE",
    );
  });

  it("passes the callback's own errors unchanged, and runs it in the caller's transaction when there is one", async () => {
    const own = new CiphervisorError("CONFLICT", "already finished");
    await assert.rejects(
      atomic(context(own).ctx, async () => 1),
      (e: unknown) => e === own,
    );
    const { ctx, trx } = context();
    assert.equal(
      await atomic(ctx, async (db) => (db === trx ? "new transaction" : "other")),
      "new transaction",
    );
    const inside = { ...ctx, db: trx };
    assert.equal(await atomic(inside, async (db) => (db === trx ? "same" : "other")), "same");
  });
});
