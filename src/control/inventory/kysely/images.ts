/**
 * Image catalog rows. Only the record is here (name, kind, SHA-256, size, what a firmware's footer declares); the
 * bytes are in the content-addressed blob store (`control/images/blobs.ts`), so the database stays small and two
 * names with the same content share one blob.
 */
import type { Selectable } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { newId } from "../../ids.ts";
import { canonicalJson, type JsonObject, parseStoredJson } from "../../json.ts";
import type { ImageStore } from "../inventory.ts";
import { type FirmwareFacts, IMAGE_KINDS, type Image, type ImageKind, type VmSpec } from "../types.ts";
import { intInRange, oneOf, validName } from "../validate.ts";
import { isoNow, type StoreContext } from "./context.ts";
import { guardDb } from "./errors.ts";
import { pageLimit, stringCursor, toPage } from "./paging.ts";
import type { ImageTable } from "./schema.ts";

/** The VM spec fields that name catalog images. */
const BOOT_IMAGE_FIELDS = ["firmwareImage", "kernel", "initrd"] as const;

function toImage(r: Selectable<ImageTable>): Image {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind as ImageKind,
    sha256: r.sha256,
    size: Number(r.size),
    firmware: r.firmware === null ? null : parseStoredJson<FirmwareFacts>(r.firmware, "image firmware facts"),
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}

export function imageStore(ctx: StoreContext): ImageStore {
  return {
    async get(id) {
      const r = await guardDb(() =>
        ctx.db.selectFrom("images").selectAll().where("id", "=", id).executeTakeFirst(),
      );
      return r && toImage(r);
    },
    async getByName(name) {
      const r = await guardDb(() =>
        ctx.db.selectFrom("images").selectAll().where("name", "=", name).executeTakeFirst(),
      );
      return r && toImage(r);
    },
    async list(page) {
      const limit = pageLimit(page);
      const after = stringCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("images")
          .selectAll()
          .orderBy("name")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("name", ">", after);
        return q.execute();
      });
      return toPage(rows.map(toImage), limit, (i) => i.name);
    },
    async create(image) {
      if (!/^[0-9a-f]{64}$/.test(image.sha256)) {
        throw new CiphervisorError("INVALID_INPUT", "image sha256 must be 64 lower-case hex digits", {
          details: { field: "sha256" },
        });
      }
      const kind = oneOf(image.kind, IMAGE_KINDS, "kind");
      if ((kind === "firmware") !== (image.firmware !== undefined && image.firmware !== null)) {
        throw new CiphervisorError("INVALID_INPUT", "firmware facts are recorded for firmware images only", {
          details: { field: "firmware" },
        });
      }
      const r: ImageTable = {
        id: image.id ?? newId("img", ctx.now().getTime()),
        name: validName(image.name, "name"),
        kind,
        sha256: image.sha256,
        size: intInRange(image.size, 1, Number.MAX_SAFE_INTEGER, "size"),
        firmware: image.firmware ? canonicalJson(image.firmware as unknown as JsonObject) : null,
        created_at: isoNow(ctx),
        created_by: image.createdBy ?? null,
      };
      await guardDb(() => ctx.db.insertInto("images").values(r).execute(), {
        unique: `an image named '${image.name}' already exists`,
      });
      return toImage(r);
    },
    async countBySha256(sha256) {
      const r = await guardDb(() =>
        ctx.db
          .selectFrom("images")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("sha256", "=", sha256)
          .executeTakeFirstOrThrow(),
      );
      return Number(r.n);
    },
    async usedBy(name) {
      // The spec is canonical JSON, so a VM naming the image holds the quoted name; the LIKE only narrows the rows
      // (its '_' wildcard may match more), the parsed spec decides.
      const rows = await guardDb(() =>
        ctx.db
          .selectFrom("vms")
          .select(["id", "spec"])
          .where("spec", "like", `%${JSON.stringify(name)}%`)
          .orderBy("id")
          .execute(),
      );
      return rows
        .filter((r) => {
          const boot = parseStoredJson<VmSpec & JsonObject>(r.spec, "VM spec").boot;
          return boot !== undefined && BOOT_IMAGE_FIELDS.some((f) => boot[f] === name);
        })
        .map((r) => r.id);
    },
    async delete(id) {
      const res = await guardDb(() => ctx.db.deleteFrom("images").where("id", "=", id).executeTakeFirst());
      if (Number(res.numDeletedRows) === 0) {
        throw new CiphervisorError("NOT_FOUND", `image ${id} not found`, { details: { image: id } });
      }
    },
  };
}
