/**
 * The audit log store: append-only and hash-chained. Appends read and advance the one-row `audit_head` in the
 * same transaction as the records (and as the change they describe); on PostgreSQL the head row is locked FOR
 * UPDATE, so concurrent appenders from any node queue behind each other and the chain never forks. On SQLite the
 * IMMEDIATE write transaction gives the same guarantee.
 */
import type { Selectable } from "kysely";
import {
  AUDIT_OUTCOMES,
  type AuditEntry,
  type AuditHead,
  type AuditRecord,
  chainAuditEntries,
} from "../../audit/record.ts";
import type { JsonObject } from "../../json.ts";
import type { AuditStore } from "../inventory.ts";
import { oneOf, validName } from "../validate.ts";
import { insertRows } from "./batch.ts";
import { atomic, isoNow, type StoreContext } from "./context.ts";
import { guardDb } from "./errors.ts";
import { numberCursor, pageLimit, toPage } from "./paging.ts";
import type { AuditTable } from "./schema.ts";

const AUDIT_COLUMNS = [
  "seq",
  "time",
  "actor_id",
  "actor_name",
  "action",
  "target",
  "outcome",
  "details",
  "prev_hash",
  "hash",
] as const satisfies readonly (keyof AuditTable)[];

/** Details as stored; text that no longer parses becomes a marker, so the verifier reports a hash mismatch. */
function storedDetails(text: string): JsonObject {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as JsonObject;
  } catch {
    // fall through
  }
  return { $unparseable: text };
}

export function toAuditRecord(r: Selectable<AuditTable>): AuditRecord {
  return {
    seq: Number(r.seq),
    time: r.time,
    actor: { id: r.actor_id, name: r.actor_name },
    action: r.action,
    target: r.target,
    // Not validated against AUDIT_OUTCOMES: the verifier must see a tampered value, not an exception.
    outcome: r.outcome as AuditRecord["outcome"],
    details: storedDetails(r.details),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

function validEntry(e: AuditEntry): AuditEntry {
  validName(e.action, "action");
  validName(e.target, "target");
  validName(e.actor.name, "actor.name");
  oneOf(e.outcome, AUDIT_OUTCOMES, "outcome");
  return e;
}

export function auditStore(ctx: StoreContext): AuditStore {
  return {
    async append(input) {
      const entries = (Array.isArray(input) ? input : [input]) as readonly AuditEntry[];
      if (entries.length === 0) return [];
      for (const e of entries) validEntry(e);
      const time = isoNow(ctx);
      return atomic(ctx, (db) =>
        guardDb(async () => {
          const q = db.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1);
          const head = await (ctx.dialect === "postgres" ? q.forUpdate() : q).executeTakeFirstOrThrow();
          const chained = chainAuditEntries({ seq: Number(head.seq), hash: head.hash }, entries, time);
          const rows: AuditTable[] = chained.map(({ record: r, detailsJson }) => ({
            seq: r.seq,
            time: r.time,
            actor_id: r.actor.id,
            actor_name: r.actor.name,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            details: detailsJson,
            prev_hash: r.prevHash,
            hash: r.hash,
          }));
          await insertRows(db, ctx.dialect, "audit", AUDIT_COLUMNS, rows);
          const records = chained.map((c) => c.record);
          const last = records[records.length - 1];
          if (last) {
            await db
              .updateTable("audit_head")
              .set({ seq: last.seq, hash: last.hash })
              .where("id", "=", 1)
              .execute();
          }
          return records;
        }),
      );
    },
    async list(filter = {}, page) {
      const limit = pageLimit(page);
      const after = numberCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("audit")
          .selectAll()
          .orderBy("seq")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("seq", ">", after);
        if (filter.action !== undefined) q = q.where("action", "=", filter.action);
        if (filter.target !== undefined) q = q.where("target", "=", filter.target);
        if (filter.actorId !== undefined) q = q.where("actor_id", "=", filter.actorId);
        if (filter.outcome !== undefined) q = q.where("outcome", "=", filter.outcome);
        return q.execute();
      });
      return toPage(rows.map(toAuditRecord), limit, (r) => r.seq);
    },
    async head(): Promise<AuditHead> {
      const r = await guardDb(() =>
        ctx.db.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1).executeTakeFirstOrThrow(),
      );
      return { seq: Number(r.seq), hash: r.hash };
    },
  };
}
