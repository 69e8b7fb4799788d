/**
 * Optimistic concurrency for clusters, hosts and VMs: every update bumps `version`; a caller that read version N
 * may pass it as `expectedVersion`, and the update applies only if nobody changed the row since.
 */
import { type Kysely, sql, type Updateable } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { isoNow, type StoreContext } from "./context.ts";
import { type DbErrorContext, guardDb } from "./errors.ts";

interface VersionedRow {
  id: string;
  version: number;
  updated_at: string;
}

/** The three tables share these columns; Kysely sees them through one generic row type. */
interface VersionedDb {
  versioned: VersionedRow;
}

export type VersionedTable = "clusters" | "hosts" | "vms";

/**
 * Applies `set` to row `id` of `table`, bumping its version. NOT_FOUND when the row is absent, CONFLICT when
 * `expectedVersion` is given and stale.
 */
export async function updateVersioned(
  ctx: StoreContext,
  table: VersionedTable,
  id: string,
  set: Record<string, unknown>,
  expectedVersion: number | undefined,
  what: string,
  errors?: DbErrorContext,
): Promise<void> {
  const db = ctx.db as unknown as Kysely<VersionedDb>;
  const name = table as unknown as "versioned";
  const r = await guardDb(() => {
    let q = db
      .updateTable(name)
      .set(set as Updateable<VersionedRow>)
      .set({ updated_at: isoNow(ctx), version: sql<number>`version + 1` })
      .where("id", "=", id);
    if (expectedVersion !== undefined) q = q.where("version", "=", expectedVersion);
    return q.executeTakeFirst();
  }, errors);
  if (Number(r.numUpdatedRows) > 0) return;
  const exists = await guardDb(() =>
    db.selectFrom(name).select("version").where("id", "=", id).executeTakeFirst(),
  );
  if (!exists) throw new CiphervisorError("NOT_FOUND", `${what} ${id} not found`);
  throw new CiphervisorError(
    "CONFLICT",
    `${what} ${id} was changed concurrently (version ${exists.version})`,
    {
      details: { expectedVersion, currentVersion: Number(exists.version) },
    },
  );
}
