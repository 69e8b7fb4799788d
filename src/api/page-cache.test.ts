import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PageCache } from "./page-cache.ts";

describe("the list page cache", () => {
  it("serves a page only under the store version it was computed at", () => {
    const c = new PageCache();
    assert.equal(c.get("1.0", "limit=10"), undefined);
    const kept = c.set("1.0", "limit=10", "[page]");
    assert.deepEqual(c.get("1.0", "limit=10"), kept);
    assert.equal(c.get("1.0", "limit=20"), undefined, "another query is another page");
    assert.equal(c.get("1.1", "limit=10"), undefined, "a change drops it");
    assert.equal(c.get("1.0", "limit=10"), undefined, "and it does not come back with the old token");
    assert.equal(c.size, 0);
  });

  it("caches nothing without a token, and still gives an ETag", () => {
    const c = new PageCache();
    const a = c.set(undefined, "q", "x");
    const b = c.set(undefined, "q", "x");
    assert.equal(c.get(undefined, "q"), undefined);
    assert.notEqual(a.etag, b.etag, "no token: no two answers share a validator");
  });

  it("ETags differ per query, per version and per process", () => {
    const c = new PageCache();
    const e1 = c.set("1.0", "a", "x").etag;
    assert.notEqual(c.set("1.0", "b", "x").etag, e1);
    assert.notEqual(c.set("1.1", "a", "x").etag, e1);
    assert.notEqual(
      new PageCache().set("1.0", "a", "x").etag,
      e1,
      "a restarted server's counters start again",
    );
    assert.match(e1, /^"[0-9a-f]{12}-1\.0-[\w-]{16}"$/);
  });

  it("stays within its entry and byte bounds, dropping the oldest first", () => {
    const c = new PageCache({ maxEntries: 3, maxBytes: 10 });
    for (const k of ["a", "b", "c", "d"]) c.set("t", k, "12");
    assert.equal(c.size, 3);
    assert.equal(c.get("t", "a"), undefined);
    assert.ok(c.get("t", "d"));
    c.set("t", "big", "123456789");
    assert.ok(c.get("t", "big"));
    assert.equal(c.get("t", "c"), undefined, "bytes over 10: older pages go");
    c.set("t", "huge", "12345678901");
    assert.equal(c.get("t", "huge"), undefined, "a page larger than the bound is not kept");
    assert.ok(c.get("t", "big"));
  });
});
