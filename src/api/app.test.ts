/**
 * The REST API through `inject()` and over a real socket: validation errors with field paths, 404/409 problems
 * with stable codes (the operation table's for refused operations on SEV-ES VMs), operations (sync answers, 202,
 * Idempotency-Key, polling, server-sent events, cancel), cursor pagination, OpenAPI, metrics, and no token in any
 * response or log line.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ruleFor } from "../hypervisor/operation-rules.ts";
import { PROBLEM_CONTENT_TYPE } from "./problem.ts";
import { type ApiFixture, json, withApi } from "./testing/api-fixture.ts";

const spec = { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };

async function createVm(a: ApiFixture, name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await a.call("all", "POST", "/v1/vms", { name, spec, ...extra });
  assert.equal(r.statusCode, 201, r.body);
  return String((json(r).vm as { id: string }).id);
}

async function post(a: ApiFixture, url: string, body?: unknown, headers?: Record<string, string>) {
  return a.call("all", "POST", url, body, headers);
}

function isProblem(
  r: { headers: Record<string, unknown>; body: string },
  status: number,
  code: string,
): Record<string, unknown> {
  assert.match(String(r.headers["content-type"]), /^application\/problem\+json/);
  const p = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(p.status, status, r.body);
  assert.equal(p.code, code, r.body);
  assert.equal(p.type, `urn:ciphervisor:problem:${code}`);
  assert.equal(typeof p.title, "string");
  assert.equal(typeof p.detail, "string");
  assert.equal(p.stack, undefined);
  return p;
}

describe("API: problems", () => {
  it("reports every invalid field with its path (body, querystring, params)", () =>
    withApi(async (a) => {
      const r = await post(a, "/v1/vms", {
        name: "bad name!",
        spec: { vcpus: 0, memoryMiB: 32, guestOs: "beos", firmware: "efi", hardwareVersion: 19, bogus: true },
        securityMode: "tdx",
      });
      assert.equal(r.statusCode, 400);
      const p = isProblem(r, 400, "INVALID_INPUT");
      const paths = (p.errors as { in: string; path: string }[]).map((e) => `${e.in}:${e.path}`).sort();
      assert.deepEqual(paths, [
        "body:/name",
        "body:/securityMode",
        "body:/spec/bogus",
        "body:/spec/guestOs",
        "body:/spec/vcpus",
      ]);
      const missing = await post(a, "/v1/vms", { spec });
      assert.deepEqual(
        (isProblem(missing, 400, "INVALID_INPUT").errors as { path: string }[]).map((e) => e.path),
        ["/name"],
      );
      const q = await a.call("viewer", "GET", "/v1/vms?limit=0&powerState=flying");
      const qp = isProblem(q, 400, "INVALID_INPUT");
      assert.deepEqual((qp.errors as { in: string; path: string }[]).map((e) => `${e.in}:${e.path}`).sort(), [
        "querystring:/limit",
        "querystring:/powerState",
      ]);
      const cursor = await a.call("viewer", "GET", "/v1/vms?cursor=garbage");
      assert.equal(
        (isProblem(cursor, 400, "INVALID_INPUT").errors as { path: string }[])[0]?.path,
        "/cursor",
      );
      const notJson = await a.app.inject({
        method: "POST",
        url: "/v1/vms",
        headers: { authorization: `Bearer ${a.tokens.all}`, "content-type": "application/json" },
        payload: "{not json",
      });
      assert.match(String(isProblem(notJson, 400, "INVALID_INPUT").detail), /not valid JSON/);
      // A policy that contradicts the mode is refused with the field named.
      const policy = await post(a, "/v1/vms", { name: "p", spec, securityMode: "sev", policy: 0x7 });
      assert.equal(
        (isProblem(policy, 400, "INVALID_INPUT").errors as { path: string }[])[0]?.path,
        "/policy",
      );
    }));

  it("answers 404 and 409 problems with stable codes; refusals carry the operation table's code and reason", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      isProblem(await a.call("viewer", "GET", "/v1/vms/vm_missing"), 404, "NOT_FOUND");
      isProblem(await a.call("viewer", "GET", "/v1/hosts/host_missing"), 404, "NOT_FOUND");
      isProblem(await a.call("viewer", "GET", "/v1/operations/op_missing"), 404, "NOT_FOUND");
      isProblem(await a.call("viewer", "GET", "/v1/nothing-here"), 404, "NOT_FOUND");
      isProblem(await post(a, "/v1/vms/vm_missing/power-on"), 404, "NOT_FOUND");

      const es = await createVm(a, "db-1", { securityMode: "sev-es" });
      assert.equal((await post(a, `/v1/vms/${es}/power-on`)).statusCode, 200);
      const cases: [string, unknown, "live-migrate" | "memory-snapshot" | "suspend" | "hot-clone"][] = [
        [`/v1/vms/${es}/migrate`, { mode: "live" }, "live-migrate"],
        [`/v1/vms/${es}/snapshots`, { name: "s1", memory: true }, "memory-snapshot"],
        [`/v1/vms/${es}/suspend`, undefined, "suspend"],
        [`/v1/vms/${es}/clone`, { name: "db-1-copy" }, "hot-clone"],
      ];
      for (const [url, body, operation] of cases) {
        const rule = ruleFor("sev-es", operation);
        assert.equal(rule.allowed, false);
        if (rule.allowed) continue;
        const p = isProblem(await post(a, url, body), 409, rule.code);
        assert.ok(String(p.detail).includes(rule.reason), `${operation}: the table's reason`);
        assert.equal(p.operation, operation);
      }
      // Allowed cells still work: a disk snapshot of the same VM.
      assert.equal((await post(a, `/v1/vms/${es}/snapshots`, { name: "disk-1" })).statusCode, 200);
      isProblem(await a.call("all", "DELETE", `/v1/vms/${es}`), 409, "CONFLICT");
      // Already as asked is not a conflict: the operation records it unchanged.
      const again = await post(a, `/v1/vms/${es}/power-on`);
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().results[0].details.unchanged, "already running");
      isProblem(await post(a, "/v1/vms", { name: "db-1", spec }), 409, "CONFLICT");

      // No capacity anywhere: NO_VALID_HOST with a reason per candidate host.
      await a.host("naples-1", "naples");
      const win = await createVm(a, "win-1", {
        spec: { ...spec, guestOs: "windows-server-2022" },
      });
      await a.call(
        "all",
        "POST",
        `/v1/hosts/${(await a.inventory.hosts.getByName("rome-1"))?.id}/enter-maintenance`,
      );
      const busy = await a.cp.engine.waitFor(
        String(
          ((await a.inventory.operations.list({ kind: "host.enter-maintenance" })).items[0] ?? { id: "" }).id,
        ),
        30_000,
      );
      assert.equal(busy.kind, "host.enter-maintenance");
      const es2 = await createVm(a, "db-2", { securityMode: "sev-es" });
      const nvh = isProblem(await post(a, `/v1/vms/${es2}/power-on`), 409, "NO_VALID_HOST");
      const cands = nvh.candidates as { host: string; findings: { code: string }[] }[];
      assert.deepEqual(cands.map((c) => [c.host, c.findings.map((f) => f.code).join(",")]).sort(), [
        ["naples-1", "CPU_GENERATION"],
        ["rome-1", "MAINTENANCE"],
      ]);
      // Requirement checks at creation name every failed check.
      const req = await post(a, "/v1/vms", {
        name: "win-es",
        securityMode: "sev-es",
        spec: { ...spec, guestOs: "windows-server-2022", firmware: "bios", hardwareVersion: 14 },
      });
      const rp = isProblem(req, 409, "REQUIREMENT_FAILED");
      assert.deepEqual((rp.findings as { code: string }[]).map((f) => f.code).sort(), [
        "EFI_REQUIRED",
        "GUEST_OS_UNSUPPORTED",
        "HARDWARE_VERSION",
      ]);
      assert.ok(win);
    }));
});

describe("API: operations", () => {
  it("answers short operations when done, long ones with 202; polls, streams and replays by Idempotency-Key", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      await a.host("milan-1", "milan");
      const created = await post(a, "/v1/vms", { name: "web-1", spec, labels: { app: "web" } });
      assert.equal(created.statusCode, 201);
      assert.match(String(created.headers.location), /^\/v1\/vms\/vm_/);
      const id = String((json(created).vm as { id: string }).id);

      const on = await post(a, `/v1/vms/${id}/power-on`, undefined, { "idempotency-key": "boot-web-1" });
      assert.equal(on.statusCode, 200, on.body);
      const body = json(on) as {
        operation: { id: string; status: string };
        results: { details: { host: string } }[];
      };
      assert.equal(body.operation.status, "succeeded");
      assert.ok(["rome-1", "milan-1"].includes(body.results[0]?.details.host ?? ""));
      // The retry (same key, same request) gets the same operation, even though the VM now runs.
      const again = await post(a, `/v1/vms/${id}/power-on`, undefined, { "idempotency-key": "boot-web-1" });
      assert.equal(again.statusCode, 200);
      assert.equal((json(again).operation as { id: string }).id, body.operation.id);
      // The same key for another request is a conflict.
      const other = await post(a, `/v1/vms/${id}/power-off`, undefined, { "idempotency-key": "boot-web-1" });
      isProblem(other, 409, "CONFLICT");

      // Prefer: respond-async → 202 with a Location to poll.
      const async = await post(a, `/v1/vms/${id}/restart`, undefined, { prefer: "respond-async" });
      assert.equal(async.statusCode, 202);
      const loc = String(async.headers.location);
      assert.match(loc, /^\/v1\/operations\/op_/);
      await a.cp.engine.waitFor(loc.split("/").at(-1) ?? "", 30_000);
      const polled = json(await a.call("viewer", "GET", loc));
      assert.equal(polled.status, "succeeded");
      assert.deepEqual(polled.progress, { done: 1, total: 1, ok: 1, failed: 0 });

      // A long operation streams: progress events, then done.
      for (let i = 0; i < 30; i++) await a.vm(`bulk-${i}`, "none", { labels: { app: "bulk" } });
      const bulk = await post(a, "/v1/vms:bulk-update", {
        selector: { labels: { app: "bulk" } },
        set: { securityMode: "sev-es" },
      });
      assert.equal(bulk.statusCode, 202);
      const opId = String((json(bulk).operation as { id: string }).id);
      const events = await a.call("viewer", "GET", `/v1/operations/${opId}/events`);
      assert.equal(events.statusCode, 200);
      assert.match(String(events.headers["content-type"]), /^text\/event-stream/);
      const frames = events.body.split("\n\n").filter((f) => f.length > 0);
      const last = frames.at(-1) ?? "";
      assert.match(last, /^event: done\n/);
      const final = JSON.parse(last.split("data: ")[1] ?? "{}") as {
        status: string;
        progress: { ok: number };
      };
      assert.deepEqual([final.status, final.progress.ok], ["succeeded", 30]);
      const items = json(await a.call("viewer", "GET", `/v1/operations/${opId}/items?limit=10`));
      assert.equal((items.items as unknown[]).length, 10);
      assert.equal(typeof items.nextCursor, "string");
      // Cancelling a finished operation is a conflict; the list shows every operation.
      isProblem(await a.call("operator", "POST", `/v1/operations/${opId}/cancel`), 409, "CONFLICT");
      const ops = json(await a.call("viewer", "GET", "/v1/operations?kind=vm.bulk-update"));
      assert.equal((ops.items as unknown[]).length, 1);
    }));

  it("pages through lists with cursors and filters", () =>
    withApi(async (a) => {
      for (let i = 0; i < 7; i++)
        await a.vm(`vm-${i}`, i % 2 === 0 ? "none" : "sev", { labels: { tier: i < 3 ? "gold" : "bronze" } });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = json(
          await a.call(
            "viewer",
            "GET",
            `/v1/vms?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
          ),
        ) as { items: { name: string }[]; nextCursor: string | null };
        assert.ok(page.items.length <= 3);
        seen.push(...page.items.map((v) => v.name));
        cursor = page.nextCursor;
      } while (cursor !== null);
      assert.deepEqual([...seen].sort(), ["vm-0", "vm-1", "vm-2", "vm-3", "vm-4", "vm-5", "vm-6"]);
      const gold = json(await a.call("viewer", "GET", "/v1/vms?labels=tier%3Dgold&securityMode=sev")) as {
        items: { name: string }[];
      };
      assert.deepEqual(
        gold.items.map((v) => v.name),
        ["vm-1"],
      );
      const unplaced = json(await a.call("viewer", "GET", "/v1/vms?hostId=none&limit=100")) as {
        items: unknown[];
      };
      assert.equal(unplaced.items.length, 7);
    }));
});

describe("API: documentation, health, metrics, secrets", () => {
  it("serves OpenAPI at /docs/json and the UI at /docs; health and readiness; Prometheus metrics", () =>
    withApi(async (a) => {
      const doc = json(await a.call(null, "GET", "/docs/json")) as {
        openapi: string;
        paths: Record<string, Record<string, unknown>>;
        components: { schemas: Record<string, unknown> };
      };
      assert.equal(doc.openapi, "3.1.0");
      for (const p of [
        "/v1/vms",
        "/v1/vms:bulk-update",
        "/v1/hosts/{id}/enter-maintenance",
        "/v1/operations/{id}/events",
        "/v1/audit/verify",
        "/v1/tokens",
      ]) {
        assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
      }
      assert.ok(doc.components.schemas.Problem && doc.components.schemas.Vm);
      const ui = await a.call(null, "GET", "/docs");
      assert.ok([200, 302].includes(ui.statusCode));
      assert.deepEqual(json(await a.call(null, "GET", "/healthz")), { status: "ok" });
      assert.deepEqual(json(await a.call(null, "GET", "/readyz")), { status: "ready" });
      isProblem(await a.call(null, "GET", "/metrics"), 401, "UNAUTHENTICATED");
      await a.host("rome-1", "rome");
      const m = await a.call("viewer", "GET", "/metrics");
      assert.equal(m.statusCode, 200);
      assert.match(String(m.headers["content-type"]), /^text\/plain/);
      assert.match(
        m.body,
        /^ciphervisor_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1$/m,
      );
      assert.match(m.body, /^ciphervisor_host_asids\{host="rome-1",pool="sev-es",state="size"\} 99$/m);
      assert.match(m.body, /^ciphervisor_vms\{power_state="off",security_mode="none"\} 0$/m);
    }));

  it("never puts a token in a response body, an error, or a log line", () =>
    withApi(async (a) => {
      const issued = await a.call("admin", "POST", "/v1/tokens", { name: "ci", roles: ["operator"] });
      assert.equal(issued.statusCode, 201);
      assert.equal(issued.headers["cache-control"], "no-store");
      const secret = String(json(issued).secret);
      assert.match(secret, /^cvt_/);
      // Use it, misuse it, and provoke errors of every kind with it in the header.
      const h = { authorization: `Bearer ${secret}` };
      await a.app.inject({ method: "GET", url: "/v1/me", headers: h });
      await a.app.inject({ method: "GET", url: "/v1/audit", headers: h });
      await a.app.inject({ method: "POST", url: "/v1/vms", headers: h, payload: { name: secret } });
      await a.app.inject({ method: "GET", url: "/v1/vms/nope", headers: h });
      const wrong = `${secret.slice(0, -2)}AA`;
      const r401 = await a.app.inject({
        method: "GET",
        url: "/v1/vms",
        headers: { authorization: `Bearer ${wrong}` },
      });
      assert.ok(!r401.body.includes(wrong));
      const list = await a.call("admin", "GET", "/v1/tokens");
      assert.ok(
        !list.body.includes(secret) && !list.body.includes("hash"),
        "the list shows neither secret nor hash",
      );
      const logs = a.logs();
      assert.ok(logs.length > 1000, "the API logged its requests");
      for (const t of [secret, wrong, ...Object.values(a.tokens)])
        assert.ok(!logs.includes(t), "a token in the log");
      const audit = await a.call("auditor", "GET", "/v1/audit?limit=5000");
      for (const t of [secret, ...Object.values(a.tokens)])
        assert.ok(!audit.body.includes(t), "a token in the audit log");
    }));

  it("works over a real socket", () =>
    withApi(async (a) => {
      const url = await a.app.listen({ host: "127.0.0.1", port: 0 });
      const me = await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${a.tokens.operator}` } });
      assert.equal(me.status, 200);
      assert.deepEqual(((await me.json()) as { roles: string[] }).roles, ["operator"]);
      const anon = await fetch(`${url}/v1/vms`);
      assert.equal(anon.status, 401);
      assert.equal(anon.headers.get("content-type")?.startsWith(PROBLEM_CONTENT_TYPE), true);
      await a.host("milan-1", "milan");
      const create = await fetch(`${url}/v1/vms`, {
        method: "POST",
        headers: { authorization: `Bearer ${a.tokens.all}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "sock-1", spec, securityMode: "sev-es" }),
      });
      assert.equal(create.status, 201);
      const vm = ((await create.json()) as { vm: { id: string } }).vm;
      const on = await fetch(`${url}/v1/vms/${vm.id}/power-on`, {
        method: "POST",
        headers: { authorization: `Bearer ${a.tokens.operator}`, prefer: "respond-async" },
      });
      assert.equal(on.status, 202);
      const events = await fetch(`${url}${on.headers.get("location")}/events`, {
        headers: { authorization: `Bearer ${a.tokens.viewer}` },
      });
      const text = await events.text();
      assert.match(text, /event: done\nid: \d+\ndata: .*"status":"succeeded"/);
    }));
});
