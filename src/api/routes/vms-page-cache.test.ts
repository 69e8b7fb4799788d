/**
 * `GET /v1/vms` pages are served from the page cache only while the store is unchanged: a write through the API,
 * the inventory, or another connection to the same file is visible in the next answer. Each page has an ETag;
 * `If-None-Match` with it answers 304 until something changes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openInventory } from "../../control/inventory/open.ts";
import { json, withApi } from "../testing/api-fixture.ts";

describe("GET /v1/vms: cached pages and ETags", () => {
  it("answers the same bytes until a write from anywhere, and 304 for a matching If-None-Match", () =>
    withApi(async (a) => {
      for (let i = 0; i < 5; i++) await a.vm(`vm-${i}`);
      // A token's first use records its last-use time (a write, at most once a minute per token): do it first.
      for (const role of ["viewer", "operator"] as const) await a.call(role, "GET", "/v1/hosts");
      const first = await a.call("viewer", "GET", "/v1/vms?limit=3");
      assert.equal(first.statusCode, 200);
      const etag = String(first.headers["etag"]);
      assert.match(etag, /^"[^"]+"$/);
      const again = await a.call("operator", "GET", "/v1/vms?limit=3");
      assert.equal(again.body, first.body, "another reader, same page");
      assert.equal(again.headers["etag"], etag);
      assert.notEqual((await a.call("viewer", "GET", "/v1/vms?limit=4")).headers["etag"], etag);

      const unchanged = await a.call("viewer", "GET", "/v1/vms?limit=3", undefined, {
        "if-none-match": etag,
      });
      assert.equal(unchanged.statusCode, 304);
      assert.equal(unchanged.body, "");

      // A write through this node's inventory.
      const [vm0] = (json(first)["items"] as { id: string }[]) ?? [];
      await a.inventory.vms.update(vm0!.id, { labels: { tier: "web" } });
      const changed = await a.call("viewer", "GET", "/v1/vms?limit=3", undefined, { "if-none-match": etag });
      assert.equal(changed.statusCode, 200, "the page changed: a full answer");
      assert.notEqual(changed.headers["etag"], etag);
      assert.deepEqual((json(changed)["items"] as { labels: object }[])[0]?.labels, { tier: "web" });

      // A write through another connection to the same SQLite file (another process, a repair script).
      const other = await openInventory(a.dbUrl!);
      try {
        await other.vms.update(vm0!.id, { labels: { tier: "db" } });
      } finally {
        await other.close();
      }
      const seen = json(await a.call("viewer", "GET", "/v1/vms?limit=3"));
      assert.deepEqual((seen["items"] as { labels: object }[])[0]?.labels, { tier: "db" });

      // A refused reader never sees a cached page.
      assert.equal((await a.call(null, "GET", "/v1/vms?limit=3")).statusCode, 401);
    }));
});
