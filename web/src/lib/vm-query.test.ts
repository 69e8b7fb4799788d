import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextSort, parseLabels, type SortKey, selectorFor, serverOrder, vmListQuery } from "./vm-query.ts";

describe("web: VM list query and selectors", () => {
  it("puts only the filter fields given into the list query, with the page", () => {
    assert.equal(vmListQuery({}, { limit: 50 }), "limit=50");
    assert.equal(
      vmListQuery(
        { namePrefix: " web ", securityMode: "", hostId: "none", labels: "app=web" },
        { limit: 25, cursor: "c1" },
      ),
      "limit=25&cursor=c1&namePrefix=web&hostId=none&labels=app%3Dweb",
    );
  });

  it("turns rows into ids and 'all matching the filter' into the filter's selector", () => {
    assert.deepEqual(selectorFor({ kind: "ids", ids: ["a", "b"] }, { namePrefix: "x" }), { ids: ["a", "b"] });
    assert.deepEqual(selectorFor({ kind: "filter" }, {}), { all: true });
    assert.deepEqual(
      selectorFor(
        { kind: "filter" },
        { namePrefix: "web-", hostId: "none", securityMode: "sev", labels: "a=1, b=2" },
      ),
      { namePrefix: "web-", hostId: null, securityMode: "sev", labels: { a: "1", b: "2" } },
    );
    assert.deepEqual(parseLabels("a=1,,bad,c=x=y"), { a: "1", c: "x=y" });
  });

  it("takes a column header ascending first, then descending", () => {
    assert.deepEqual(nextSort(undefined, "name"), { key: "name", dir: "asc" });
    assert.deepEqual(nextSort({ key: "name", dir: "asc" }, "name"), { key: "name", dir: "desc" });
    assert.deepEqual(nextSort({ key: "name", dir: "desc" }, "host"), { key: "host", dir: "asc" });
  });

  it("asks the server for every column's order, both ways, by the server's names", () => {
    const columns: [SortKey, string][] = [
      ["name", "name"],
      ["host", "host"],
      ["powerState", "power"],
      ["guestOs", "guestOs"],
      ["securityMode", "mode"],
      ["policy", "policy"],
    ];
    for (const [key, server] of columns) {
      assert.equal(serverOrder({ key, dir: "asc" }), server);
      assert.equal(serverOrder({ key, dir: "desc" }), `-${server}`);
    }
    assert.equal(serverOrder(undefined), undefined);
    assert.equal(vmListQuery({}, { limit: 25, sort: "-name" }), "limit=25&sort=-name");
    assert.equal(
      vmListQuery(
        { securityMode: "sev-es" },
        { limit: 25, cursor: "c2", sort: serverOrder({ key: "host", dir: "desc" }) },
      ),
      "limit=25&cursor=c2&sort=-host&securityMode=sev-es",
    );
    assert.equal(vmListQuery({}, { limit: 25, sort: undefined }), "limit=25");
  });
});
