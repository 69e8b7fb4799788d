import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Vm } from "./types.ts";
import { nextSort, parseLabels, selectorFor, serverOrder, sortRows, vmListQuery } from "./vm-query.ts";

const vm = (id: string, name: string, mode: Vm["securityMode"], policy = 0): Vm => ({
  id,
  name,
  clusterId: null,
  hostId: `h-${name}`,
  spec: { guestOs: "linux-5.19", vcpus: 1, memoryMiB: 64 },
  powerState: "off",
  securityMode: mode,
  policy,
  attestationState: "none",
  liveMigratable: { status: true },
  labels: {},
});

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

  it("sorts the page by a column, ties by id, ascending then descending", () => {
    const rows = [vm("3", "c", "sev-es"), vm("1", "a", "none"), vm("2", "b", "sev")];
    assert.deepEqual(
      sortRows(rows, { key: "securityMode", dir: "asc" }).map((v) => v.name),
      ["a", "b", "c"],
    );
    assert.deepEqual(
      sortRows(rows, { key: "name", dir: "desc" }).map((v) => v.name),
      ["c", "b", "a"],
    );
    assert.deepEqual(sortRows(rows, undefined), rows);
    assert.deepEqual(nextSort(undefined, "name"), { key: "name", dir: "asc" });
    assert.deepEqual(nextSort({ key: "name", dir: "asc" }, "name"), { key: "name", dir: "desc" });
    assert.deepEqual(nextSort({ key: "name", dir: "desc" }, "host"), { key: "host", dir: "asc" });
  });

  it("asks the server for the name order (whole list), and only for it", () => {
    assert.equal(serverOrder({ key: "name", dir: "asc" }), "name");
    assert.equal(serverOrder({ key: "name", dir: "desc" }), "-name");
    assert.equal(serverOrder({ key: "host", dir: "asc" }), undefined);
    assert.equal(serverOrder(undefined), undefined);
    assert.equal(vmListQuery({}, { limit: 25, sort: "-name" }), "limit=25&sort=-name");
    assert.equal(vmListQuery({}, { limit: 25, sort: undefined }), "limit=25");
  });
});
