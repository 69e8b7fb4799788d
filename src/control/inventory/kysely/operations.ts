/**
 * The operations queue: creation with idempotency keys, an atomic claim that hands each operation to exactly one
 * worker (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several control-plane nodes share one queue without waiting
 * on each other), leases so a dead worker's operation is taken over, and per-item results with counters.
 */
import { type Kysely, sql } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { newId } from "../../ids.ts";
import { canonicalJson } from "../../json.ts";
import type { OperationStore } from "../inventory.ts";
import {
  FINAL_OPERATION_STATUSES,
  ITEM_OUTCOMES,
  type Operation,
  type OperationItemResult,
  type OperationStatus,
} from "../types.ts";
import { intInRange, oneOf, validName } from "../validate.ts";
import { chunks, insertRows } from "./batch.ts";
import { atomic, isoNow, type StoreContext } from "./context.ts";
import { guardDb } from "./errors.ts";
import { requestHash, toOperation, toOperationItem } from "./operation-rows.ts";
import { pageLimit, stringCursor, toPage } from "./paging.ts";
import type { Db, OperationItemTable, OperationTable } from "./schema.ts";

const ITEM_COLUMNS = [
  "operation_id",
  "target",
  "outcome",
  "code",
  "reason",
  "details",
  "recorded_at",
] as const satisfies readonly (keyof OperationItemTable)[];
/** Recording a target again replaces its result (a resumed job re-runs the items it had not committed). */
const UPSERT_ITEM = ` on conflict ("operation_id", "target") do update set "outcome" = excluded."outcome",
  "code" = excluded."code", "reason" = excluded."reason", "details" = excluded."details",
  "recorded_at" = excluded."recorded_at"`;

const MAX_LEASE_MS = 24 * 3600 * 1000;
/** Targets per `IN (…)` when reading prior outcomes. */
const TARGETS_PER_STATEMENT = 1000;

/** The stored outcome of each of `rows`' targets that already has a result. */
async function priorOutcomes(
  db: Kysely<Db>,
  id: string,
  rows: readonly OperationItemTable[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const part of chunks(
    rows.map((r) => r.target),
    TARGETS_PER_STATEMENT,
  )) {
    const found = await db
      .selectFrom("operation_items")
      .select(["target", "outcome"])
      .where("operation_id", "=", id)
      .where("target", "in", part)
      .execute();
    for (const f of found) out.set(f.target, f.outcome);
  }
  return out;
}

function isFinal(status: OperationStatus): boolean {
  return FINAL_OPERATION_STATUSES.includes(status);
}

export function operationStore(ctx: StoreContext): OperationStore {
  const get = async (id: string): Promise<Operation | undefined> => {
    const r = await guardDb(() =>
      ctx.db.selectFrom("operations").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    return r && toOperation(r);
  };
  const mustGet = async (id: string): Promise<Operation> => {
    const op = await get(id);
    if (!op) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
    return op;
  };
  const getByIdempotencyKey = async (key: string): Promise<Operation | undefined> => {
    const r = await guardDb(() =>
      ctx.db.selectFrom("operations").selectAll().where("idempotency_key", "=", key).executeTakeFirst(),
    );
    return r && toOperation(r);
  };

  return {
    get,
    getByIdempotencyKey,
    async create(op) {
      validName(op.kind, "kind");
      const key = op.idempotencyKey ?? null;
      if (key !== null) validName(key, "idempotencyKey");
      const now = isoNow(ctx);
      const row: OperationTable = {
        id: newId("op", ctx.now().getTime()),
        kind: op.kind,
        status: "pending",
        idempotency_key: key,
        request_hash: requestHash(op),
        actor_id: op.actor.id,
        actor_name: op.actor.name,
        params: canonicalJson(op.params ?? {}),
        total: intInRange(op.total ?? 0, 0, Number.MAX_SAFE_INTEGER, "total"),
        done: 0,
        ok_count: 0,
        failed_count: 0,
        error: null,
        claimed_by: null,
        lease_until: null,
        attempts: 0,
        created_at: now,
        started_at: null,
        finished_at: null,
        updated_at: now,
      };
      // ON CONFLICT DO NOTHING instead of catching the unique violation: on PostgreSQL a failed statement would
      // abort the caller's whole transaction, and two nodes racing on one key must both end up with the winner.
      const r = await guardDb(() =>
        ctx.db
          .insertInto("operations")
          .values(row)
          .onConflict((oc) => oc.column("idempotency_key").doNothing())
          .executeTakeFirst(),
      );
      if (Number(r.numInsertedOrUpdatedRows ?? 0n) > 0) return { operation: toOperation(row), created: true };
      const existing = key === null ? undefined : await getByIdempotencyKey(key);
      if (!existing)
        throw new CiphervisorError("INTERNAL", "operation insert was ignored without a conflict");
      const stored = await guardDb(() =>
        ctx.db
          .selectFrom("operations")
          .select("request_hash")
          .where("id", "=", existing.id)
          .executeTakeFirst(),
      );
      if (stored?.request_hash !== row.request_hash) {
        throw new CiphervisorError(
          "CONFLICT",
          "the idempotency key was already used for a different request",
          {
            details: { operationId: existing.id },
          },
        );
      }
      return { operation: existing, created: false };
    },
    async list(filter = {}, page) {
      const limit = pageLimit(page);
      const after = stringCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("operations")
          .selectAll()
          .orderBy("id")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("id", ">", after);
        if (filter.status !== undefined) q = q.where("status", "=", filter.status);
        if (filter.kind !== undefined) q = q.where("kind", "=", filter.kind);
        return q.execute();
      });
      return toPage(rows.map(toOperation), limit, (o) => o.id);
    },
    async claimNext({ worker, leaseMs, kinds, exclude }) {
      validName(worker, "worker");
      intInRange(leaseMs, 1, MAX_LEASE_MS, "leaseMs");
      if (kinds !== undefined && kinds.length === 0) return undefined;
      const now = isoNow(ctx);
      const leaseUntil = isoNow(ctx, leaseMs);
      const r = await guardDb(() =>
        ctx.db
          .updateTable("operations")
          .set({
            status: "running",
            claimed_by: worker,
            lease_until: leaseUntil,
            attempts: sql<number>`attempts + 1`,
            started_at: sql<string>`coalesce(started_at, ${now})`,
            updated_at: now,
          })
          .where("id", "=", (eb) => {
            let q = eb
              .selectFrom("operations")
              .select("id")
              .where((w) =>
                w.or([
                  w("status", "=", "pending"),
                  w.and([w("status", "=", "running"), w("lease_until", "<", now)]),
                ]),
              )
              .orderBy("id")
              .limit(1);
            if (kinds !== undefined) q = q.where("kind", "in", [...kinds]);
            if (exclude !== undefined && exclude.length > 0) q = q.where("id", "not in", [...exclude]);
            // One statement is atomic on SQLite (single writer). On PostgreSQL the sub-select locks the row it
            // picks and skips rows another node has locked, so concurrent claimers take different operations.
            return ctx.dialect === "postgres" ? q.forUpdate().skipLocked() : q;
          })
          .returningAll()
          .executeTakeFirst(),
      );
      return r && toOperation(r);
    },
    async renewLease(id, worker, leaseMs) {
      intInRange(leaseMs, 1, MAX_LEASE_MS, "leaseMs");
      const r = await guardDb(() =>
        ctx.db
          .updateTable("operations")
          .set({ lease_until: isoNow(ctx, leaseMs), updated_at: isoNow(ctx) })
          .where("id", "=", id)
          .where("status", "=", "running")
          .where("claimed_by", "=", worker)
          .executeTakeFirst(),
      );
      return Number(r.numUpdatedRows) > 0;
    },
    async setTotal(id, total) {
      intInRange(total, 0, Number.MAX_SAFE_INTEGER, "total");
      const r = await guardDb(() =>
        ctx.db
          .updateTable("operations")
          .set({ total, updated_at: isoNow(ctx) })
          .where("id", "=", id)
          .executeTakeFirst(),
      );
      if (Number(r.numUpdatedRows) === 0)
        throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
      return mustGet(id);
    },
    async recordItems(id, results: readonly OperationItemResult[]) {
      const now = isoNow(ctx);
      // One result per target (the last wins): a multi-row upsert may not touch the same row twice.
      const latest = [...new Map(results.map((r) => [r.target, r])).values()];
      const rows: OperationItemTable[] = latest.map((r) => ({
        operation_id: id,
        target: validName(r.target, "target"),
        outcome: oneOf(r.outcome, ITEM_OUTCOMES, "outcome"),
        code: r.code ?? null,
        reason: r.reason ?? null,
        details: r.details === undefined || r.details === null ? null : canonicalJson(r.details),
        recorded_at: now,
      }));
      return atomic(ctx, async (db) => {
        // Lock the operation row first (on PostgreSQL; SQLite's write transaction already excludes writers): two
        // transactions recording items of one operation (a lapsed lease whose worker still runs, and the worker
        // that took it over) then run one after the other, so the prior outcomes read below are exactly the rows
        // this upsert replaces, and the counters can be moved by the difference instead of being recounted.
        const lockQuery = db.selectFrom("operations").selectAll().where("id", "=", id);
        const locked = await guardDb(() =>
          ctx.dialect === "postgres"
            ? lockQuery.forUpdate().executeTakeFirst()
            : lockQuery.executeTakeFirst(),
        );
        if (!locked) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
        const op = toOperation(locked);
        if (isFinal(op.status))
          throw new CiphervisorError("CONFLICT", `operation ${id} is already ${op.status}`);
        return guardDb(async () => {
          // `done` counts the stored items exactly, so none stored means none to replace.
          const prior = op.done === 0 ? new Map<string, string>() : await priorOutcomes(db, id, rows);
          const delta = { done: 0, ok: 0, failed: 0 };
          for (const r of rows) {
            const was = prior.get(r.target);
            if (was === undefined) delta.done++;
            else if (was === "ok") delta.ok--;
            else if (was === "failed") delta.failed--;
            if (r.outcome === "ok") delta.ok++;
            else if (r.outcome === "failed") delta.failed++;
          }
          await insertRows(db, ctx.dialect, "operation_items", ITEM_COLUMNS, rows, UPSERT_ITEM);
          const updated = await db
            .updateTable("operations")
            .set({
              done: sql<number>`done + ${delta.done}`,
              ok_count: sql<number>`ok_count + ${delta.ok}`,
              failed_count: sql<number>`failed_count + ${delta.failed}`,
              updated_at: now,
            })
            .where("id", "=", id)
            .returningAll()
            .executeTakeFirstOrThrow();
          return toOperation(updated);
        });
      });
    },
    async items(id, page) {
      const limit = pageLimit(page);
      const after = stringCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("operation_items")
          .selectAll()
          .where("operation_id", "=", id)
          .orderBy("target")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("target", ">", after);
        return q.execute();
      });
      return toPage(rows.map(toOperationItem), limit, (i) => i.target);
    },
    async itemSummary(id) {
      return guardDb(async () => {
        const items = ctx.db.selectFrom("operation_items").where("operation_id", "=", id);
        const [counted] = await items
          .select((eb) => eb.fn.countAll<number | string | bigint>().as("n"))
          .where("outcome", "=", "ok")
          .execute();
        // Details are canonical JSON: only an item whose text names the key can be unchanged. The text is a
        // filter, the parsed value decides (a nested "unchanged", or `false`, does not count).
        const marked = await items
          .select("details")
          .where("outcome", "=", "ok")
          .where("details", "like", '%"unchanged":%')
          .execute();
        let unchanged = 0;
        for (const r of marked) {
          if (r.details !== null && (JSON.parse(r.details) as { unchanged?: unknown }).unchanged) unchanged++;
        }
        const failed = await items.selectAll().where("outcome", "=", "failed").orderBy("target").execute();
        return { ok: Number(counted?.n ?? 0), unchanged, failures: failed.map(toOperationItem) };
      });
    },
    async finish(id, options = {}) {
      return atomic(ctx, async (db) => {
        const scoped = operationStore({ ...ctx, db });
        const op = await scoped.get(id);
        if (!op) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
        if (isFinal(op.status))
          throw new CiphervisorError("CONFLICT", `operation ${id} is already ${op.status}`);
        if (options.worker !== undefined && op.claimedBy !== options.worker) {
          throw new CiphervisorError("CONFLICT", `operation ${id} is claimed by another worker`);
        }
        const status =
          options.status ??
          (op.failedCount === 0 ? "succeeded" : op.okCount === 0 ? "failed" : "partially-failed");
        const now = isoNow(ctx);
        const error = options.error ?? null;
        let q = db
          .updateTable("operations")
          .set({
            status,
            error: error === null ? null : canonicalJson({ code: error.code, message: error.message }),
            finished_at: now,
            lease_until: null,
            updated_at: now,
          })
          .where("id", "=", id)
          .where("status", "=", op.status);
        if (options.worker !== undefined) q = q.where("claimed_by", "=", options.worker);
        const r = await guardDb(() => q.executeTakeFirst());
        if (Number(r.numUpdatedRows) === 0) {
          throw new CiphervisorError("CONFLICT", `operation ${id} changed concurrently`);
        }
        return (await scoped.get(id)) ?? op;
      });
    },
    async cancel(id) {
      const now = isoNow(ctx);
      const r = await guardDb(() =>
        ctx.db
          .updateTable("operations")
          .set({ status: "cancelled", finished_at: now, updated_at: now })
          .where("id", "=", id)
          .where("status", "=", "pending")
          .executeTakeFirst(),
      );
      const op = await mustGet(id);
      if (Number(r.numUpdatedRows) === 0) {
        throw new CiphervisorError(
          "CONFLICT",
          `operation ${id} is ${op.status} and can no longer be cancelled`,
        );
      }
      return op;
    },
  };
}
