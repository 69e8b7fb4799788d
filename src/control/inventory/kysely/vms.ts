/**
 * VMs, with the bulk paths the 10,000-VM flows need: multi-row inserts, grouped multi-row updates (VMs that get
 * the same patch share one `UPDATE … WHERE id IN (…)`), and row locks for check-then-write on PostgreSQL.
 */
import type { Expression, ExpressionBuilder, Kysely, Selectable, SqlBool } from "kysely";
import { sql } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { newId } from "../../ids.ts";
import type { VmStore } from "../inventory.ts";
import {
  type NewVm,
  type Page,
  type PageRequest,
  POWER_STATES,
  SECURITY_MODES,
  type Vm,
  type VmFilter,
  type VmOrder,
  type VmSortKey,
  type VmUpdate,
} from "../types.ts";
import { oneOf } from "../validate.ts";
import { chunks, insertRows } from "./batch.ts";
import { atomic, isoNow, type StoreContext } from "./context.ts";
import { type DbErrorContext, guardDb } from "./errors.ts";
import { type OrderedKey, orderedCursor, pageLimit, stringCursor, toPage } from "./paging.ts";
import type { Db, VmLabelTable, VmTable } from "./schema.ts";
import { updateVersioned } from "./versioned.ts";
import { newVmRow, toStoredVm, toVm, vmColumns } from "./vm-rows.ts";

/** Ids per `WHERE id IN (…)`: well inside both databases' parameter limits. */
const IDS_PER_STATEMENT = 1000;
const MAX_FILTER_IDS = 10_000;

const references: DbErrorContext = { foreignKey: ["NOT_FOUND", "the VM's host or cluster does not exist"] };

function conditions(
  eb: ExpressionBuilder<Db, "vms">,
  f: VmFilter,
  dialect: StoreContext["dialect"],
): Expression<SqlBool>[] {
  const c: Expression<SqlBool>[] = [];
  if (f.ids !== undefined) {
    if (f.ids.length > MAX_FILTER_IDS) {
      throw new CiphervisorError("INVALID_INPUT", `at most ${MAX_FILTER_IDS} ids per filter`, {
        details: { field: "ids" },
      });
    }
    c.push(f.ids.length === 0 ? sql<SqlBool>`1 = 0` : eb("vms.id", "in", [...f.ids]));
  }
  if (f.clusterId !== undefined) c.push(eb("vms.cluster_id", "=", f.clusterId));
  if (f.hostId === null) c.push(eb("vms.host_id", "is", null));
  else if (f.hostId !== undefined) c.push(eb("vms.host_id", "=", f.hostId));
  if (f.powerState !== undefined) c.push(eb("vms.power_state", "=", f.powerState));
  if (f.securityMode !== undefined) c.push(eb("vms.security_mode", "=", f.securityMode));
  if (f.namePrefix !== undefined && f.namePrefix !== "") {
    // substr rather than LIKE: LIKE is case-insensitive on SQLite and case-sensitive on PostgreSQL. substr alone
    // reads every row, so SQLite's name index is given a range too: in its byte order every name that starts with
    // the prefix sorts from the prefix to the prefix followed by U+10FFFF. (Not on PostgreSQL: a linguistic
    // collation may order punctuation otherwise.) The substr test stays, so the range only narrows what is read.
    if (dialect === "sqlite") {
      c.push(eb("vms.name", ">=", f.namePrefix));
      c.push(eb("vms.name", "<", `${f.namePrefix}\u{10FFFF}`));
    }
    c.push(eb(eb.fn("substr", ["vms.name", eb.val(1), eb.val(f.namePrefix.length)]), "=", f.namePrefix));
  }
  for (const [key, value] of Object.entries(f.labels ?? {})) {
    c.push(
      eb.exists(
        eb
          .selectFrom("vm_labels")
          .select("vm_labels.vm_id")
          .whereRef("vm_labels.vm_id", "=", "vms.id")
          .where("vm_labels.key", "=", key)
          .where("vm_labels.value", "=", value),
      ),
    );
  }
  return c;
}

function labelRows(id: string, labelsJson: string): VmLabelTable[] {
  const labels = JSON.parse(labelsJson) as Record<string, string>;
  return Object.entries(labels).map(([key, value]) => ({ vm_id: id, key, value }));
}

const VM_COLUMNS = [
  "id",
  "name",
  "cluster_id",
  "host_id",
  "spec",
  "guest_os",
  "power_state",
  "security_mode",
  "policy",
  "attestation_state",
  "labels",
  "created_at",
  "updated_at",
  "version",
] as const satisfies readonly (keyof VmTable)[];
const LABEL_COLUMNS = ["vm_id", "key", "value"] as const satisfies readonly (keyof VmLabelTable)[];

async function replaceLabels(
  ctx: StoreContext,
  db: Kysely<Db>,
  ids: readonly string[],
  labelsJson: string,
): Promise<void> {
  for (const part of chunks(ids, IDS_PER_STATEMENT)) {
    await db.deleteFrom("vm_labels").where("vm_id", "in", part).execute();
  }
  const rows = ids.flatMap((id) => labelRows(id, labelsJson));
  await insertRows(db, ctx.dialect, "vm_labels", LABEL_COLUMNS, rows);
}

/**
 * Each sort key's column (`VM_SORT_KEYS`): whether it can be null (only the host: unplaced VMs), and whether it is
 * unique (name), which makes the id tie-break redundant, so the unique index alone pages it.
 */
const SORT_COLUMNS = {
  name: { column: "name", nullable: false, unique: true },
  host: { column: "host_id", nullable: true, unique: false },
  power: { column: "power_state", nullable: false, unique: false },
  mode: { column: "security_mode", nullable: false, unique: false },
  guestOs: { column: "guest_os", nullable: false, unique: false },
  policy: { column: "policy", nullable: false, unique: false },
} as const satisfies Record<VmSortKey, { column: keyof VmTable; nullable: boolean; unique: boolean }>;
type SortColumn = (typeof SORT_COLUMNS)[VmSortKey];

function otherOrder(cursorOrder: string, order: VmOrder): CiphervisorError {
  return new CiphervisorError("INVALID_INPUT", "this page cursor belongs to another sort order", {
    details: { field: "cursor", cursorOrder, order },
  });
}

/** The sort key and direction of a sorted order (`-host` → host, descending). */
function sortOf(order: Exclude<VmOrder, "id">): { sort: SortColumn; desc: boolean } {
  const desc = order.startsWith("-");
  return { sort: SORT_COLUMNS[(desc ? order.slice(1) : order) as VmSortKey], desc };
}

/** A sorted order's cursor key, checked against the order (its own) and the column (a value of its type). */
function sortedKey(
  key: string | OrderedKey | undefined,
  order: Exclude<VmOrder, "id">,
): OrderedKey | undefined {
  if (key === undefined) return undefined;
  if (typeof key === "string") throw otherOrder("id", order);
  if (key.order !== order) throw otherOrder(key.order, order);
  const { sort } = sortOf(order);
  const ok =
    sort.column === "policy"
      ? typeof key.value === "number"
      : typeof key.value === "string" || (sort.nullable && key.value === null);
  if (!ok)
    throw new CiphervisorError("INVALID_INPUT", "invalid page cursor", { details: { field: "cursor" } });
  return key;
}

export function vmStore(ctx: StoreContext): VmStore {
  const get = async (id: string): Promise<Vm | undefined> => {
    const r = await guardDb(() =>
      ctx.db.selectFrom("vms").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    return r && toVm(r);
  };

  /**
   * Up to `n` rows of one stretch of a sorted order, after `from`: the rows whose column is set, by (column, id),
   * or (`nulls`) those whose column is null, by id. Either is one range of the (column, id) index.
   */
  const stretch = (
    filter: VmFilter,
    { sort, desc }: { sort: SortColumn; desc: boolean },
    nulls: boolean,
    from: OrderedKey | undefined,
    n: number,
  ) => {
    const dir = desc ? "desc" : "asc";
    const after = desc ? "<" : ">";
    const column = `vms.${sort.column}` as const;
    let q = ctx.db
      .selectFrom("vms")
      .selectAll()
      .where((eb) => eb.and(conditions(eb, filter, ctx.dialect)))
      .limit(n);
    if (nulls) {
      q = q.where(column, "is", null).orderBy("vms.id", dir);
      if (from !== undefined) q = q.where("vms.id", after, from.id);
      return q.execute();
    }
    if (sort.nullable) q = q.where(column, "is not", null);
    q = q.orderBy(column, dir);
    if (!sort.unique) q = q.orderBy("vms.id", dir);
    if (from !== undefined) {
      // A row value compares (column, id) in one range condition both databases serve from the (column, id) index.
      const past = sort.unique
        ? sql<SqlBool>`${sql.ref(column)} ${sql.raw(after)} ${from.value}`
        : sql<SqlBool>`(${sql.ref(column)}, vms.id) ${sql.raw(after)} (${from.value}, ${from.id})`;
      q = q.where(past);
    }
    return q.execute();
  };

  /**
   * The rows of one page of a sorted order (limit + 1 of them). VMs without a host come after every host ascending
   * and before them descending: a stretch of their own, because SQLite and PostgreSQL put nulls at opposite ends
   * and a row value cannot compare them. A page that ends one stretch continues into the next.
   */
  const sortedRows = async (
    filter: VmFilter,
    key: OrderedKey | undefined,
    limit: number,
    order: Exclude<VmOrder, "id">,
  ) => {
    const by = sortOf(order);
    const stretches = !by.sort.nullable ? [false] : by.desc ? [true, false] : [false, true];
    const first = key !== undefined && by.sort.nullable && (key.value === null) !== stretches[0] ? 1 : 0;
    const rows: Selectable<VmTable>[] = [];
    for (let i = first; i < stretches.length && rows.length <= limit; i++) {
      const from = i === first ? key : undefined;
      rows.push(...(await stretch(filter, by, stretches[i] === true, from, limit + 1 - rows.length)));
    }
    return rows;
  };

  /**
   * One page of `list` in `order`, as rows. Every cursor names its order (an id-order cursor is a bare id), so a
   * cursor cannot silently continue another order.
   */
  const pageOf = async (
    filter: VmFilter,
    page: PageRequest | undefined,
    order: VmOrder,
  ): Promise<Page<Selectable<VmTable>>> => {
    const limit = pageLimit(page);
    const key = orderedCursor(page);
    if (order === "id") {
      if (typeof key === "object") throw otherOrder(key.order, order);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("vms")
          .selectAll()
          .where((eb) => eb.and(conditions(eb, filter, ctx.dialect)))
          .orderBy("id")
          .limit(limit + 1);
        if (key !== undefined) q = q.where("id", ">", key);
        return q.execute();
      });
      return toPage(rows, limit, (r) => r.id);
    }
    const from = sortedKey(key, order);
    const rows = await guardDb(() => sortedRows(filter, from, limit, order));
    const { column } = sortOf(order).sort;
    return toPage(rows, limit, (r) => ({
      order,
      value: column === "policy" ? Number(r.policy) : r[column],
      id: r.id,
    }));
  };

  const listIds = async (filter: VmFilter, page: PageRequest | undefined): Promise<Page<string>> => {
    const limit = pageLimit(page);
    const after = stringCursor(page);
    const rows = await guardDb(() => {
      let q = ctx.db
        .selectFrom("vms")
        .select("vms.id")
        .where((eb) => eb.and(conditions(eb, filter, ctx.dialect)))
        .orderBy("vms.id")
        .limit(limit + 1);
      if (after !== undefined) q = q.where("vms.id", ">", after);
      return q.execute();
    });
    return toPage(
      rows.map((r) => r.id),
      limit,
      (id) => id,
    );
  };

  const lockMany = async (ids: readonly string[]): Promise<Vm[]> => {
    const out: Vm[] = [];
    for (const part of chunks(ids, IDS_PER_STATEMENT)) {
      const rows = await guardDb(() => {
        const q = ctx.db.selectFrom("vms").selectAll().where("id", "in", part).orderBy("id");
        // SQLite has no row locks (and rejects FOR UPDATE); its IMMEDIATE transaction already excludes writers.
        return ctx.dialect === "postgres" ? q.forUpdate().execute() : q.execute();
      });
      for (const r of rows) out.push(toVm(r));
    }
    return out;
  };

  const createMany = async (vms: readonly NewVm[]): Promise<string[]> => {
    const now = isoNow(ctx);
    const t = ctx.now().getTime();
    const rows: VmTable[] = vms.map((vm) => newVmRow(vm, vm.id ?? newId("vm", t), now));
    if (rows.length === 0) return [];
    await atomic(ctx, (db) =>
      guardDb(
        async () => {
          await insertRows(db, ctx.dialect, "vms", VM_COLUMNS, rows);
          const labels = rows.flatMap((r) => labelRows(r.id, r.labels));
          await insertRows(db, ctx.dialect, "vm_labels", LABEL_COLUMNS, labels);
        },
        { ...references, unique: "a VM with that name or id already exists" },
      ),
    );
    return rows.map((r) => r.id);
  };

  return {
    get,
    async getByName(name) {
      const r = await guardDb(() =>
        ctx.db.selectFrom("vms").selectAll().where("name", "=", name).executeTakeFirst(),
      );
      return r && toVm(r);
    },
    async list(filter = {}, page, order = "id") {
      const p = await pageOf(filter, page, order);
      return { items: p.items.map(toVm), nextCursor: p.nextCursor };
    },
    async listStored(filter = {}, page, order = "id") {
      const p = await pageOf(filter, page, order);
      return { items: p.items.map(toStoredVm), nextCursor: p.nextCursor };
    },
    async lockPage(filter = {}, page) {
      if (ctx.dialect !== "postgres") {
        // With a name prefix SQLite reads the prefix's range of the name index, so in id order it would read and
        // sort every matching VM for every page (a bulk change over 100,000 of them read 5 million rows); in name
        // order (names are unique) each page reads only its own rows.
        const p = await pageOf(filter, page, filter.namePrefix ? "name" : "id");
        return { items: p.items.map(toVm), nextCursor: p.nextCursor };
      }
      // FOR UPDATE re-checks each row once its lock is granted and drops the ones that no longer match, so a
      // locked read of `limit + 1` rows could come back short and end the paging early: read the ids, then lock.
      const ids = await listIds(filter, page);
      return { items: await lockMany(ids.items), nextCursor: ids.nextCursor };
    },
    async count(filter = {}) {
      const r = await guardDb(() =>
        ctx.db
          .selectFrom("vms")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where((eb) => eb.and(conditions(eb, filter, ctx.dialect)))
          .executeTakeFirstOrThrow(),
      );
      return Number(r.n);
    },
    async usage(filter = {}) {
      if (filter.hostIds !== undefined && filter.hostIds.length === 0) return [];
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("vms")
          .select((eb) => ["host_id", "security_mode", "power_state", eb.fn.countAll<number>().as("n")])
          .where("host_id", "is not", null)
          .groupBy(["host_id", "security_mode", "power_state"]);
        if (filter.hostIds !== undefined) {
          if (filter.hostIds.length > MAX_FILTER_IDS) {
            throw new CiphervisorError("INVALID_INPUT", `at most ${MAX_FILTER_IDS} host ids per filter`, {
              details: { field: "hostIds" },
            });
          }
          q = q.where("host_id", "in", [...filter.hostIds]);
        }
        if (filter.powerStates !== undefined) {
          if (filter.powerStates.length === 0) return Promise.resolve([]);
          q = q.where("power_state", "in", [...filter.powerStates]);
        }
        return q.execute();
      });
      return rows.map((r) => ({
        hostId: r.host_id ?? "",
        securityMode: oneOf(r.security_mode, SECURITY_MODES, "securityMode"),
        powerState: oneOf(r.power_state, POWER_STATES, "powerState"),
        count: Number(r.n),
      }));
    },
    async create(vm) {
      const [id] = await createMany([vm]);
      const created = id === undefined ? undefined : await get(id);
      if (!created) throw new CiphervisorError("INTERNAL", "created VM not found");
      return created;
    },
    createMany,
    async update(id, patch, expectedVersion) {
      const cols = vmColumns(patch);
      await atomic(ctx, async (db) => {
        await updateVersioned({ ...ctx, db }, "vms", id, cols, expectedVersion, "VM", {
          ...references,
          unique: `a VM named '${patch.name ?? ""}' already exists`,
        });
        if (cols.labels !== undefined) await guardDb(() => replaceLabels(ctx, db, [id], cols.labels ?? "{}"));
      });
      const after = await get(id);
      if (!after) throw new CiphervisorError("NOT_FOUND", `VM ${id} not found`);
      return after;
    },
    lockMany,
    async updateMany(updates: readonly VmUpdate[]) {
      // Group VMs by identical patch so that 10,000 VMs turned to SEV-ES cost ten statements, not 10,000. The key
      // is JSON.stringify, not the canonical form: equal patches written in another key order only make another
      // group (still correct), and callers build theirs in one order, at a quarter of the cost per VM.
      const groups = new Map<string, { cols: Partial<VmTable>; ids: string[] }>();
      for (const u of updates) {
        const key = JSON.stringify(u.patch);
        let g = groups.get(key);
        if (!g) {
          g = { cols: vmColumns(u.patch), ids: [] };
          groups.set(key, g);
        }
        g.ids.push(u.id);
      }
      const now = isoNow(ctx);
      return atomic(ctx, (db) =>
        guardDb(async () => {
          const changed: string[] = [];
          for (const { cols, ids } of groups.values()) {
            for (const part of chunks(ids, IDS_PER_STATEMENT)) {
              const r = await db
                .updateTable("vms")
                .set(cols)
                .set({ updated_at: now, version: sql<number>`version + 1` })
                .where("id", "in", part)
                .executeTakeFirst();
              // No RETURNING (a fifth of the statement's cost at 1,000 rows): when every id was updated the count
              // says so; only when some were missing (deleted, or an id given twice) are the survivors looked up.
              const done =
                Number(r.numUpdatedRows) === part.length
                  ? part
                  : (await db.selectFrom("vms").select("id").where("id", "in", part).execute()).map(
                      (v) => v.id,
                    );
              if (cols.labels !== undefined) await replaceLabels(ctx, db, done, cols.labels);
              changed.push(...done);
            }
          }
          return changed;
        }, references),
      );
    },
    async delete(id) {
      const r = await guardDb(() => ctx.db.deleteFrom("vms").where("id", "=", id).executeTakeFirst());
      if (Number(r.numDeletedRows) === 0) throw new CiphervisorError("NOT_FOUND", `VM ${id} not found`);
    },
  };
}
