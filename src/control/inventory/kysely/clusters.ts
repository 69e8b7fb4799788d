/** Clusters: named groups of hosts and VMs. */
import type { Selectable } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { newId } from "../../ids.ts";
import type { ClusterStore } from "../inventory.ts";
import type { Cluster, ClusterPatch, NewCluster } from "../types.ts";
import { validName } from "../validate.ts";
import { isoNow, type StoreContext } from "./context.ts";
import { guardDb } from "./errors.ts";
import { pageLimit, stringCursor, toPage } from "./paging.ts";
import type { ClusterTable } from "./schema.ts";
import { updateVersioned } from "./versioned.ts";

function toCluster(r: Selectable<ClusterTable>): Cluster {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}

export function clusterStore(ctx: StoreContext): ClusterStore {
  const get = async (id: string): Promise<Cluster | undefined> => {
    const r = await guardDb(() =>
      ctx.db.selectFrom("clusters").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    return r && toCluster(r);
  };
  return {
    get,
    async list(page) {
      const limit = pageLimit(page);
      const after = stringCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("clusters")
          .selectAll()
          .orderBy("id")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("id", ">", after);
        return q.execute();
      });
      return toPage(rows.map(toCluster), limit, (c) => c.id);
    },
    async create(c: NewCluster) {
      const now = isoNow(ctx);
      const row = {
        id: c.id ?? newId("cl", ctx.now().getTime()),
        name: validName(c.name, "name"),
        description: c.description ?? "",
        created_at: now,
        updated_at: now,
        version: 1,
      };
      await guardDb(() => ctx.db.insertInto("clusters").values(row).execute(), {
        unique: `a cluster named '${c.name}' already exists`,
      });
      return toCluster(row);
    },
    async update(id: string, patch: ClusterPatch, expectedVersion?: number) {
      const set: Partial<ClusterTable> = {};
      if (patch.name !== undefined) set.name = validName(patch.name, "name");
      if (patch.description !== undefined) set.description = patch.description;
      await updateVersioned(ctx, "clusters", id, set, expectedVersion, "cluster", {
        unique: `a cluster named '${patch.name ?? ""}' already exists`,
      });
      const after = await get(id);
      if (!after) throw new CiphervisorError("NOT_FOUND", `cluster ${id} not found`);
      return after;
    },
    async delete(id: string) {
      const r = await guardDb(() => ctx.db.deleteFrom("clusters").where("id", "=", id).executeTakeFirst(), {
        foreignKey: ["CONFLICT", `cluster ${id} still has hosts or VMs`],
      });
      if (Number(r.numDeletedRows) === 0) throw new CiphervisorError("NOT_FOUND", `cluster ${id} not found`);
    },
  };
}
