/**
 * `GET /v1/vms?sort=`: the whole list in each column's order, either way, page by page (what the dashboard's column
 * headers ask for), combined with filters, and the refusals: an unknown order, a cursor of another order. The
 * inventory contract (contract.ts) proves the same paging on SQLite and PostgreSQL at the store level.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Vm } from "../../control/inventory/types.ts";
import type { ApiFixture } from "../testing/api-fixture.ts";
import { json, withApi } from "../testing/api-fixture.ts";

interface VmItem {
  id: string;
  name: string;
  hostId: string | null;
  powerState: string;
  securityMode: string;
  policy: number;
  spec: { guestOs: string };
}

/** Every VM of `query` in the server's order, `limit` a page. */
async function listAll(a: ApiFixture, query: string, limit = 2): Promise<VmItem[]> {
  const out: VmItem[] = [];
  let cursor: string | null = null;
  do {
    const r = await a.call(
      "viewer",
      "GET",
      `/v1/vms?limit=${limit}&${query}${cursor ? `&cursor=${cursor}` : ""}`,
    );
    assert.equal(r.statusCode, 200, r.body);
    const page = json(r) as { items: VmItem[]; nextCursor: string | null };
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

/** Each sort key's value in a VM of the API. */
const VALUE: Record<string, (v: VmItem) => string | number | null> = {
  name: (v) => v.name,
  host: (v) => v.hostId,
  power: (v) => v.powerState,
  mode: (v) => v.securityMode,
  guestOs: (v) => v.spec.guestOs,
  policy: (v) => v.policy,
};

/** The documented order: by value, VMs without one (no host) after all others, ties by id; `-` reverses it. */
function expected(vms: readonly VmItem[], order: string): string[] {
  const key = order.replace(/^-/, "");
  const of = VALUE[key] ?? VALUE.name;
  const rank = (v: VmItem): (string | number)[] => {
    const x = of?.(v) ?? null;
    return [x === null ? 1 : 0, x ?? "", v.id];
  };
  const asc = [...vms].sort((p, q) => {
    const [x, y] = [rank(p), rank(q)];
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] ?? 0) < (y[i] ?? 0) ? -1 : 1;
    return 0;
  });
  return (order.startsWith("-") ? asc.reverse() : asc).map((v) => v.id);
}

/** Two hosts and nine VMs, with repeated values in every column and three VMs on no host. */
async function fleet(a: ApiFixture): Promise<Vm[]> {
  const h1 = await a.host("rome-1", "rome");
  const h2 = await a.host("rome-2", "rome");
  const base = await a.vm("m-3", "sev-es", { hostId: h2, powerState: "running" });
  const other = { ...base.spec, guestOs: "ubuntu-22.04" };
  return [
    base,
    await a.vm("m-1", "sev", { hostId: h1, spec: other }),
    await a.vm("m-4", "none", { hostId: null, powerState: "paused" }),
    await a.vm("m-0", "sev-es", { hostId: h1, powerState: "running", spec: other }),
    await a.vm("m-2", "none", { hostId: null }),
    await a.vm("m-7", "sev", { hostId: h2, policy: 0x1 }),
    await a.vm("m-5", "sev-es", { hostId: null, powerState: "running", spec: other }),
    await a.vm("m-8", "none", { hostId: h1, powerState: "paused" }),
    await a.vm("m-6", "sev", { hostId: h2, spec: other }),
  ];
}

const ORDERS = ["name", "host", "power", "mode", "guestOs", "policy"].flatMap((k) => [k, `-${k}`]);

describe("GET /v1/vms?sort=", () => {
  it("pages the whole list in every column's order, ascending and descending, each VM exactly once", () =>
    withApi(async (a) => {
      await fleet(a);
      const vms = await listAll(a, "", 100);
      assert.equal(vms.length, 9);
      for (const order of ORDERS) {
        for (const limit of [1, 2, 4]) {
          const got = (await listAll(a, `sort=${order}`, limit)).map((v) => v.id);
          assert.deepEqual(got, expected(vms, order), `sort=${order}&limit=${limit}`);
        }
      }
      // The name order reads as names; the default order is by id (ids made in the same millisecond need not
      // follow creation order).
      assert.deepEqual(
        (await listAll(a, "sort=-name")).map((v) => v.name),
        ["m-8", "m-7", "m-6", "m-5", "m-4", "m-3", "m-2", "m-1", "m-0"],
      );
      const byId = (await listAll(a, "sort=id")).map((v) => v.name);
      assert.deepEqual([...byId].sort(), ["m-0", "m-1", "m-2", "m-3", "m-4", "m-5", "m-6", "m-7", "m-8"]);
    }));

  it("puts VMs without a host last ascending and first descending, and pages across that boundary", () =>
    withApi(async (a) => {
      await fleet(a);
      const asc = await listAll(a, "sort=host", 2);
      assert.deepEqual(
        asc.slice(-3).map((v) => v.hostId),
        [null, null, null],
      );
      assert.ok(asc.slice(0, -3).every((v) => v.hostId !== null));
      const desc = await listAll(a, "sort=-host", 2);
      assert.deepEqual(
        desc.slice(0, 3).map((v) => v.hostId),
        [null, null, null],
      );
      assert.deepEqual(
        desc.map((v) => v.id),
        asc.map((v) => v.id).reverse(),
      );
    }));

  it("combines filters with every order", () =>
    withApi(async (a) => {
      const vms = await fleet(a);
      const host = vms[0]?.hostId ?? "";
      const all = await listAll(a, "", 100);
      const filters: [string, (v: VmItem) => boolean][] = [
        [`hostId=${host}`, (v) => v.hostId === host],
        ["hostId=none", (v) => v.hostId === null],
        ["securityMode=sev-es", (v) => v.securityMode === "sev-es"],
        ["powerState=running&namePrefix=m-", (v) => v.powerState === "running"],
      ];
      for (const [filter, keep] of filters) {
        for (const order of ORDERS) {
          const got = (await listAll(a, `${filter}&sort=${order}`, 2)).map((v) => v.id);
          assert.deepEqual(got, expected(all.filter(keep), order), `${filter}&sort=${order}`);
        }
      }
    }));

  it("refuses an unknown order, and a cursor of another order or direction, as problems with stable codes", () =>
    withApi(async (a) => {
      await fleet(a);
      for (const bad of ["bogus", "-id", "--name", "Name", "hostId", "name,power"]) {
        const r = await a.call("viewer", "GET", `/v1/vms?sort=${encodeURIComponent(bad)}`);
        assert.equal(r.statusCode, 400, bad);
        assert.match(String(r.headers["content-type"]), /application\/problem\+json/);
        assert.equal(json(r).code, "INVALID_INPUT");
        assert.doesNotMatch(r.body, /\n\s+at /, "no stack trace");
      }
      const cursorOf = async (query: string) =>
        (json(await a.call("viewer", "GET", `/v1/vms?limit=2&${query}`)) as { nextCursor: string })
          .nextCursor;
      const pairs: [string, string][] = [
        ["", "sort=name"],
        ["sort=name", ""],
        ["sort=power", "sort=-power"],
        ["sort=host", "sort=mode"],
        ["sort=-policy", "sort=guestOs"],
      ];
      for (const [from, to] of pairs) {
        const r = await a.call("viewer", "GET", `/v1/vms?limit=2&${to}&cursor=${await cursorOf(from)}`);
        assert.equal(r.statusCode, 400, `${from} → ${to}`);
        const p = json(r);
        assert.equal(p.code, "INVALID_INPUT");
        assert.match(String(p.detail), /another sort order/);
      }
      const garbage = await a.call("viewer", "GET", "/v1/vms?sort=host&cursor=bm90LWEtY3Vyc29y");
      assert.equal(garbage.statusCode, 400);
      assert.equal(json(garbage).code, "INVALID_INPUT");
    }));
});
