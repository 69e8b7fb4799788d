/**
 * Requests denied without a valid token (issue 13): they are audited in aggregate — a handful of records per source
 * and window whose counts add up to the requests — never one row each; failed authentication is rate-limited per
 * source (429 RATE_LIMITED with Retry-After) while a valid token from the same source still works; 403s stay one
 * record each; the audit chain still verifies.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AuditRecord } from "../control/audit/record.ts";
import {
  AuthFailureLimiter,
  DENIED_AGGREGATE_ACTION,
  DeniedRequestAudit,
  MAX_TRACKED_SOURCES,
  sourceOf,
} from "./denied-requests.ts";
import { PROBLEM_CONTENT_TYPE } from "./problem.ts";
import { type ApiFixture, json, withApi } from "./testing/api-fixture.ts";

async function auditSince(a: ApiFixture, seq: number): Promise<AuditRecord[]> {
  const all: AuditRecord[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: AuditRecord[]; nextCursor: string | null } = await a.inventory.audit.list(
      {},
      { limit: 5000, cursor },
    );
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return all.filter((r) => r.seq > seq);
}

const countOf = (r: AuditRecord) => Number(r.details.count);

describe("denied requests without a valid token", () => {
  it("1,000 bad-token requests add a handful of aggregated records whose counts sum to 1,000", () =>
    withApi(
      async (a) => {
        const before = (await a.inventory.audit.head()).seq;
        const statuses = new Map<number, number>();
        const bad = `cvt_${"B".repeat(43)}`;
        for (let i = 0; i < 1000; i++) {
          const r = await a.app.inject({
            method: i % 2 === 0 ? "GET" : "POST",
            url: i % 2 === 0 ? "/v1/vms" : "/v1/vms:bulk-update",
            headers: { authorization: `Bearer ${bad}` },
            ...(i % 2 === 0 ? {} : { payload: {} }),
          });
          statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
        }
        // The first 50 failures of the window are 401s, the rest are refused by the limiter.
        assert.deepEqual(Object.fromEntries(statuses), { 401: 50, 429: 950 });
        assert.equal((await a.inventory.audit.head()).seq, before, "nothing is written per request");
        await a.app.deniedAudit.flush();
        const added = await auditSince(a, before);
        assert.ok(added.length >= 1 && added.length <= 3, `${added.length} records`);
        for (const r of added) {
          assert.equal(r.action, DENIED_AGGREGATE_ACTION);
          assert.equal(r.outcome, "denied");
          assert.equal(r.actor.name, "anonymous");
          assert.equal(r.target, "127.0.0.1");
          assert.equal(r.details.aggregated, true);
          assert.ok(Date.parse(String(r.details.first)) <= Date.parse(String(r.details.last)));
          assert.ok(!JSON.stringify(r).includes(bad), "the presented token is not recorded");
        }
        assert.equal(
          added.reduce((n, r) => n + countOf(r), 0),
          1000,
        );
        const sum = (key: "statuses" | "routes" | "codes", k: string) =>
          added.reduce((n, r) => n + Number((r.details[key] as Record<string, number>)[k] ?? 0), 0);
        assert.equal(sum("statuses", "401"), 50);
        assert.equal(sum("statuses", "429"), 950);
        assert.equal(sum("codes", "RATE_LIMITED"), 950);
        assert.equal(sum("routes", "GET /v1/vms"), 500);
        assert.equal(sum("routes", "POST /v1/vms:bulk-update"), 500);
        const verify = await a.call("auditor", "GET", "/v1/audit/verify");
        assert.equal(verify.statusCode, 200, verify.body);
        assert.equal(json(verify).ok, true);
      },
      { api: { authFailures: { max: 50, windowMs: 60_000 } } },
    ));

  it("answers 429 RATE_LIMITED with Retry-After past the limit; a valid token from the same source still works", () =>
    withApi(
      async (a) => {
        for (let i = 0; i < 5; i++) assert.equal((await a.call(null, "GET", "/v1/vms")).statusCode, 401);
        const limited = await a.app.inject({
          method: "GET",
          url: "/v1/vms",
          headers: { authorization: `Bearer cvt_${"x".repeat(43)}` },
        });
        assert.equal(limited.statusCode, 429, limited.body);
        assert.match(
          String(limited.headers["content-type"]),
          new RegExp(PROBLEM_CONTENT_TYPE.replace("+", "\\+")),
        );
        const p = json(limited);
        assert.equal(p.code, "RATE_LIMITED");
        assert.equal(p.status, 429);
        const retryAfter = Number(limited.headers["retry-after"]);
        assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
        assert.equal(p.retryAfter, retryAfter);
        assert.ok(!limited.body.includes("x".repeat(43)));
        // No token at all is a failed authentication too.
        assert.equal((await a.call(null, "GET", "/v1/vms")).statusCode, 429);
        // The limit is per source: another address is answered as usual.
        const other = await a.app.inject({ method: "GET", url: "/v1/vms", remoteAddress: "10.1.2.3" });
        assert.equal(other.statusCode, 401);
        // A valid token from the limited source is still accepted, for reads and writes.
        assert.equal((await a.call("viewer", "GET", "/v1/vms")).statusCode, 200);
        await a.host("rome-1", "rome");
        const spec = { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };
        assert.equal((await a.call("operator", "POST", "/v1/vms", { name: "ok-1", spec })).statusCode, 201);
        // Public routes are never limited.
        assert.equal((await a.call(null, "GET", "/healthz")).statusCode, 200);
        assert.equal((await a.call(null, "GET", "/readyz")).statusCode, 200);
      },
      { api: { authFailures: { max: 5, windowMs: 60_000 } } },
    ));

  it("the limit ends with its window", () =>
    withApi(
      async (a) => {
        for (let i = 0; i < 3; i++) await a.call(null, "GET", "/v1/vms");
        const r = await a.call(null, "GET", "/v1/vms");
        assert.equal(r.statusCode, 429);
        assert.equal(r.headers["retry-after"], "1");
        await new Promise((done) => setTimeout(done, 350));
        assert.equal((await a.call(null, "GET", "/v1/vms")).statusCode, 401);
      },
      { api: { authFailures: { max: 3, windowMs: 300 } } },
    ));

  it("keeps one record per source and window, flushed when the window closes and on shutdown", async () => {
    let seqBefore = 0;
    let records: AuditRecord[] = [];
    await withApi(
      async (a) => {
        seqBefore = (await a.inventory.audit.head()).seq;
        for (const ip of ["192.0.2.1", "192.0.2.1", "192.0.2.2"]) {
          await a.app.inject({ method: "DELETE", url: "/v1/vms/vm_x", remoteAddress: ip });
        }
        // The window (200 ms) closes on its own timer: two records, one per source.
        const deadline = Date.now() + 5000;
        while ((await a.inventory.audit.head()).seq < seqBefore + 2 && Date.now() < deadline) {
          await new Promise((done) => setTimeout(done, 20));
        }
        records = await auditSince(a, seqBefore);
        assert.deepEqual(
          records.map((r) => [r.target, countOf(r), r.details.routes]),
          [
            ["192.0.2.1", 2, { "DELETE /v1/vms/:id": 2 }],
            ["192.0.2.2", 1, { "DELETE /v1/vms/:id": 1 }],
          ],
        );
        // A request denied with a valid token (403) is attributable: one record of its own, at once.
        const forbidden = await a.call("viewer", "DELETE", "/v1/vms/vm_x");
        assert.equal(forbidden.statusCode, 403);
        const last = (await auditSince(a, seqBefore)).at(-1);
        assert.equal(last?.actor.name, "viewer");
        assert.equal(last?.details.route, "/v1/vms/:id");
        // Left open at shutdown: written by close().
        await a.app.inject({ method: "GET", url: "/v1/hosts", remoteAddress: "192.0.2.3" });
        seqBefore = (await a.inventory.audit.head()).seq;
        await a.app.close();
        records = await auditSince(a, seqBefore);
        assert.deepEqual(
          records.map((r) => [r.target, countOf(r)]),
          [["192.0.2.3", 1]],
        );
      },
      { api: { deniedAuditWindowMs: 200 } },
    );
  });
});

describe("denied-requests building blocks", () => {
  it("counts an IPv6 source per /64 and an IPv4-mapped one as IPv4", () => {
    assert.equal(sourceOf("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert.equal(sourceOf("2001:db8::1"), "2001:db8:0:0::/64");
    assert.equal(sourceOf("::1"), "0:0:0:0::/64");
    assert.equal(sourceOf("::ffff:198.51.100.7"), "198.51.100.7");
    assert.equal(sourceOf("198.51.100.7"), "198.51.100.7");
  });

  it("stays bounded in memory under many sources", async () => {
    const limiter = new AuthFailureLimiter({ max: 1, windowMs: 60_000 });
    for (let i = 0; i < MAX_TRACKED_SOURCES + 500; i++)
      limiter.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.ok(limiter.size <= MAX_TRACKED_SOURCES);
    const written: unknown[][] = [];
    const audit = new DeniedRequestAudit({
      append: async (e) => {
        written.push([...e]);
      },
      onError: () => assert.fail("no error"),
    });
    const n = MAX_TRACKED_SOURCES + 500;
    for (let i = 0; i < n; i++) audit.record(`s${i}`, "GET /v1/vms", 401, "UNAUTHENTICATED");
    await audit.close();
    const entries = written.flat() as { target: string; details: { count: number } }[];
    assert.equal(entries.length, MAX_TRACKED_SOURCES + 1, "the sources past the bound share one record");
    assert.equal(
      entries.reduce((s, e) => s + e.details.count, 0),
      n,
    );
    assert.equal(entries.at(-1)?.target, "*");
  });
});
