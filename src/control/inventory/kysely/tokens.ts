/** API token rows. Only the SHA-256 of a secret is stored; no method returns it (TokenRecord has no hash). */
import type { Selectable } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { newId } from "../../ids.ts";
import { parseStoredJson } from "../../json.ts";
import type { TokenStore } from "../inventory.ts";
import type { TokenRecord } from "../types.ts";
import { validName } from "../validate.ts";
import { isoNow, type StoreContext } from "./context.ts";
import { guardDb } from "./errors.ts";
import { pageLimit, stringCursor, toPage } from "./paging.ts";
import type { TokenTable } from "./schema.ts";

/** The columns a TokenRecord is built from: everything but the hash. */
const PUBLIC_COLUMNS = [
  "id",
  "name",
  "roles",
  "created_at",
  "created_by",
  "expires_at",
  "revoked_at",
  "last_used_at",
] as const;

function toToken(r: Pick<Selectable<TokenTable>, (typeof PUBLIC_COLUMNS)[number]>): TokenRecord {
  return {
    id: r.id,
    name: r.name,
    roles: parseStoredJson<string[]>(r.roles, "token roles"),
    createdAt: r.created_at,
    createdBy: r.created_by,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

export function tokenStore(ctx: StoreContext): TokenStore {
  const get = async (id: string): Promise<TokenRecord | undefined> => {
    const r = await guardDb(() =>
      ctx.db.selectFrom("tokens").select(PUBLIC_COLUMNS).where("id", "=", id).executeTakeFirst(),
    );
    return r && toToken(r);
  };
  return {
    get,
    async create(row) {
      if (!/^[0-9a-f]{64}$/.test(row.hash)) {
        throw new CiphervisorError("INVALID_INPUT", "token hash must be 64 lower-case hex digits");
      }
      for (const role of row.roles) validName(role, "roles");
      const r: TokenTable = {
        id: row.id ?? newId("tok", ctx.now().getTime()),
        name: validName(row.name, "name"),
        hash: row.hash,
        roles: JSON.stringify([...row.roles]),
        created_at: isoNow(ctx),
        created_by: row.createdBy ?? null,
        expires_at: row.expiresAt ?? null,
        revoked_at: null,
        last_used_at: null,
      };
      // Deliberately no `unique` message naming the hash: a collision means a broken random source.
      await guardDb(() => ctx.db.insertInto("tokens").values(r).execute());
      return toToken(r);
    },
    async findByHash(hash) {
      const r = await guardDb(() =>
        ctx.db.selectFrom("tokens").select(PUBLIC_COLUMNS).where("hash", "=", hash).executeTakeFirst(),
      );
      return r && toToken(r);
    },
    async list(page) {
      const limit = pageLimit(page);
      const after = stringCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("tokens")
          .select(PUBLIC_COLUMNS)
          .orderBy("id")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("id", ">", after);
        return q.execute();
      });
      return toPage(rows.map(toToken), limit, (t) => t.id);
    },
    async revoke(id) {
      const now = isoNow(ctx);
      await guardDb(() =>
        ctx.db
          .updateTable("tokens")
          .set({ revoked_at: now })
          .where("id", "=", id)
          .where("revoked_at", "is", null)
          .execute(),
      );
      const t = await get(id);
      if (!t) throw new CiphervisorError("NOT_FOUND", `token ${id} not found`);
      return t;
    },
    async touch(id) {
      await guardDb(() =>
        ctx.db
          .updateTable("tokens")
          .set({ last_used_at: isoNow(ctx) })
          .where("id", "=", id)
          .execute(),
      );
    },
  };
}
