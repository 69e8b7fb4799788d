/**
 * `GET /v1/vms?sort=`: the whole list in name order either way, page by page (what the dashboard's Name column
 * asks for), and the refusals: an unknown order, a cursor of another order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { json, withApi } from "../testing/api-fixture.ts";

describe("GET /v1/vms?sort=", () => {
  it("pages the whole list by name, ascending and descending", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      // Created against name order, so name order is not creation (id) order.
      for (const n of ["m-3", "m-1", "m-4", "m-0", "m-2"]) await a.vm(n);
      const names = async (sort: string) => {
        const out: string[] = [];
        let cursor: string | null = null;
        do {
          const r = await a.call(
            "viewer",
            "GET",
            `/v1/vms?limit=2&sort=${sort}${cursor ? `&cursor=${cursor}` : ""}`,
          );
          assert.equal(r.statusCode, 200, r.body);
          const page = json(r) as { items: { name: string }[]; nextCursor: string | null };
          out.push(...page.items.map((v) => v.name));
          cursor = page.nextCursor;
        } while (cursor !== null);
        return out;
      };
      assert.deepEqual(await names("name"), ["m-0", "m-1", "m-2", "m-3", "m-4"]);
      assert.deepEqual(await names("-name"), ["m-4", "m-3", "m-2", "m-1", "m-0"]);
      // The default order is by id (ids made in the same millisecond need not follow creation order).
      const byId = await names("id");
      assert.deepEqual([...byId].sort(), ["m-0", "m-1", "m-2", "m-3", "m-4"]);

      const bad = await a.call("viewer", "GET", "/v1/vms?sort=power");
      assert.equal(bad.statusCode, 400);
      assert.equal(json(bad).code, "INVALID_INPUT");
      const idCursor = (json(await a.call("viewer", "GET", "/v1/vms?limit=2")) as { nextCursor: string })
        .nextCursor;
      const mixed = await a.call("viewer", "GET", `/v1/vms?limit=2&sort=name&cursor=${idCursor}`);
      assert.equal(mixed.statusCode, 400);
      assert.match(String(json(mixed).detail), /another sort order/);
    }));
});
