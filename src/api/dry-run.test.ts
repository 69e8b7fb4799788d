/**
 * `?dryRun=true` on every mutating route, on a mixed fleet: the dry run leaves every table of the inventory byte
 * for byte as it was (the audit log gains exactly one record, marked `dryRun`), and its plan is what the real
 * request then does — a `change` succeeds (a power-on lands on the host the plan named), `unchanged` is recorded
 * as such, and `refused` is answered with the plan's code.
 *
 * The routes are listed here literally (not read from the routes' own declarations), and the test fails if the
 * server has a mutating `/v1` route this table does not cover.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import type { LightMyRequestResponse } from "fastify";
import type { Role } from "../control/rbac.ts";
import { seededRandom } from "../crypto/random.ts";
import { createLaunchSession } from "../owner/session.ts";
import { type ApiFixture, json, withApi } from "./testing/api-fixture.ts";

const spec = {
  vcpus: 1,
  memoryMiB: 32,
  guestOs: "linux-5.19",
  firmware: "efi",
  hardwareVersion: 19,
} as const;

/** Every table but the audit log's, row by row: what "byte-identical" is checked against. */
function tables(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    const names = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
        name: string;
      }[]
    )
      .map((r) => r.name)
      .filter((n) => !n.startsWith("audit") && !n.startsWith("sqlite_") && !n.startsWith("kysely_"));
    assert.ok(names.includes("vms") && names.includes("operations") && names.includes("hosts"));
    return JSON.stringify(names.map((n) => [n, db.prepare(`SELECT * FROM "${n}" ORDER BY rowid`).all()]));
  } finally {
    db.close();
  }
}

async function auditCount(a: ApiFixture): Promise<number> {
  return (await a.inventory.audit.head()).seq;
}

interface Plan {
  dryRun: true;
  action: string;
  total: number;
  items: { target: string; name: string; outcome: string; code?: string; host?: string | null }[];
}

interface Case {
  /** `METHOD /route` as the server registers it. */
  readonly route: string;
  readonly as: Role | "all";
  /** The request (URL without `dryRun`, body, and headers such as a binary body's content type). */
  readonly request: () => Promise<{ url: string; body?: unknown; headers?: Record<string, string> }>;
  /** The outcomes the plan must give, in order (what this fleet makes each case exercise). */
  readonly expect: readonly string[];
}

/** Waits for the operation of a 202 and returns its items. */
async function itemsOf(a: ApiFixture, r: LightMyRequestResponse) {
  const body = json(r) as { operation?: { id: string }; results?: unknown[] };
  const id = body.operation?.id;
  assert.ok(id, `an operation answer: ${r.body}`);
  const op = await a.cp.engine.waitFor(id, 60_000);
  const items = (await a.inventory.operations.items(op.id, { limit: 5000 })).items;
  return { op, items };
}

/** Compares the plan with what the real request did. */
async function agree(a: ApiFixture, c: Case, plan: Plan, real: LightMyRequestResponse): Promise<void> {
  const where = `${c.route}: plan ${JSON.stringify(plan.items)}; real ${real.statusCode} ${real.body.slice(0, 400)}`;
  const only = plan.items.length === 1 ? plan.items[0] : undefined;
  if (only?.outcome === "refused") {
    assert.equal(real.statusCode, 409, where);
    assert.equal(json(real).code, only.code, where);
    return;
  }
  assert.ok(real.statusCode >= 200 && real.statusCode < 300, where);
  if (real.body === "" || c.route.endsWith("/cancel")) return;
  if (!(json(real) as { operation?: unknown }).operation) return;
  const { op, items } = await itemsOf(a, real);
  const byTarget = new Map(items.map((i) => [i.target, i]));
  for (const p of plan.items) {
    // A create's item is the new VM's id; the plan names it by its name.
    const i = byTarget.get(p.target) ?? (items.length === 1 ? items[0] : undefined);
    assert.ok(i, `${where}: no result for ${p.name}`);
    if (p.outcome === "refused") {
      assert.deepEqual([i.outcome, i.code], ["failed", p.code], `${where}: ${p.name}`);
    } else {
      assert.equal(i.outcome, "ok", `${where}: ${p.name} ${JSON.stringify(i)}`);
      assert.equal(Boolean(i.details?.unchanged), p.outcome === "unchanged", `${where}: ${p.name}`);
      if (c.route.endsWith("/power-on") && p.outcome === "change") {
        assert.equal(i.details?.host, p.host, `${where}: the planned host`);
      }
    }
  }
  assert.notEqual(op.status, "failed", where);
}

describe("?dryRun=true on every mutating route", () => {
  it("changes nothing, writes one dry-run audit record, and plans what the real request does", () =>
    withApi(async (a) => {
      assert.ok(a.dbUrl, "a SQLite fixture");
      const file = a.dbUrl;
      const rome = await a.host("rome-1", "rome", 3); // two SEV-ES slots
      const naples = await a.host("naples-1", "naples");
      const spare = await a.host("spare-1", "naples");
      const web = await a.vm("web-1", "none", { hostId: rome });
      const db = await a.vm("db-1", "sev-es", { hostId: rome });
      const es = [
        db,
        await a.vm("db-2", "sev-es", { hostId: rome }),
        await a.vm("db-3", "sev-es", { hostId: rome }),
      ];
      const off = await a.vm("off-1", "none", { hostId: naples });
      // A BIOS VM on an old hardware version: the bulk SEV-ES change refuses it (EFI_REQUIRED).
      await a.vm("old-1", "none", { spec: { ...spec, firmware: "bios", hardwareVersion: 14 } });
      const att = await a.vm("att-1", "sev-es", { hostId: rome, spec: { ...spec, attestation: true } });
      const call = (as: Role | "all", m: string, url: string, body?: unknown) => a.call(as, m, url, body);
      for (const v of [web, db])
        assert.equal((await call("all", "POST", `/v1/vms/${v.id}/power-on`)).statusCode, 200);
      const stuck = await a.inventory.operations.create({
        kind: "test.never-claimed",
        actor: { id: null, name: "test" },
        params: {},
        total: 1,
        idempotencyKey: null,
      });
      const done = (await a.inventory.operations.list({}, { limit: 1 })).items[0];
      assert.ok(done && done.status === "succeeded");
      const pdh = new Uint8Array(
        Buffer.from(String(json(await call("all", "GET", `/v1/hosts/${rome}/sev-info`)).pdh), "base64"),
      );
      const session = createLaunchSession(pdh, 0x7, seededRandom("dry-run"));
      const sessionBody = {
        godhCert: Buffer.from(session.godhCert).toString("base64"),
        session: Buffer.from(session.session).toString("base64"),
      };
      const secretBody = {
        header: Buffer.alloc(0x34).toString("base64"),
        secret: Buffer.alloc(32).toString("base64"),
      };
      const token = (await call("admin", "POST", "/v1/tokens", { name: "old", roles: ["viewer"] })).json()
        .token.id;
      // Every token has been used once, so no "last used" write lands inside a snapshot window.
      for (const role of ["all", "admin", "operator", "security-admin", "attestation-admin"] as const)
        await call(role, "GET", "/v1/me");

      const cases: Case[] = [
        {
          route: "POST /v1/vms",
          as: "all",
          request: async () => ({
            url: "/v1/vms",
            body: { name: "new-1", spec, securityMode: "sev-es", hostId: rome },
          }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms",
          as: "all",
          request: async () => ({ url: "/v1/vms", body: { name: "web-1", spec } }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/power-on",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${es[1]?.id}/power-on` }),
          expect: ["change"],
        },
        // The pool's two slots are taken now: the third SEV-ES VM has nowhere to go.
        {
          route: "POST /v1/vms/:id/power-on",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${es[2]?.id}/power-on` }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/power-on",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${web.id}/power-on` }),
          expect: ["unchanged"],
        },
        {
          route: "POST /v1/vms/:id/power-off",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${off.id}/power-off` }),
          expect: ["unchanged"],
        },
        {
          route: "POST /v1/vms/:id/restart",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${db.id}/restart` }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms/:id/suspend",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${db.id}/suspend` }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/suspend",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${web.id}/suspend` }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms/:id/resume",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${web.id}/resume` }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms/:id/migrate",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${db.id}/migrate`, body: { mode: "live" } }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/migrate",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${web.id}/migrate`, body: { mode: "live" } }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms/:id/snapshots",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${db.id}/snapshots`, body: { name: "s1", memory: true } }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/snapshots",
          as: "operator",
          request: async () => ({ url: `/v1/vms/${db.id}/snapshots`, body: { name: "s2" } }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms/:id/clone",
          as: "all",
          request: async () => ({ url: `/v1/vms/${db.id}/clone`, body: { name: "db-copy" } }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/clone",
          as: "all",
          request: async () => ({ url: `/v1/vms/${off.id}/clone`, body: { name: "off-copy" } }),
          expect: ["change"],
        },
        {
          route: "DELETE /v1/vms/:id",
          as: "all",
          request: async () => ({ url: `/v1/vms/${db.id}` }),
          expect: ["refused"],
        },
        {
          route: "DELETE /v1/vms/:id",
          as: "all",
          request: async () => ({ url: `/v1/vms/${off.id}` }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms::bulk-update",
          as: "all",
          request: async () => ({
            url: "/v1/vms:bulk-update",
            body: { selector: { all: true }, set: { securityMode: "sev-es" } },
          }),
          expect: [],
        },
        {
          route: "POST /v1/vms::bulk-update",
          as: "all",
          request: async () => ({
            url: "/v1/vms:bulk-update",
            body: {
              selector: { powerState: "running" },
              set: { securityMode: "sev-es" },
              restart: true,
              parallel: 2,
            },
          }),
          expect: [],
        },
        {
          route: "POST /v1/vms::bulk-power",
          as: "all",
          request: async () => ({
            url: "/v1/vms:bulk-power",
            body: { selector: { hostId: rome }, action: "power-on" },
          }),
          expect: [],
        },
        {
          route: "POST /v1/hosts",
          as: "admin",
          request: async () => ({
            url: "/v1/hosts",
            body: { name: "genoa-1", emulated: { generation: "genoa" } },
          }),
          expect: ["change"],
        },
        {
          route: "POST /v1/hosts",
          as: "admin",
          request: async () => ({ url: "/v1/hosts", body: { name: "rome-1" } }),
          expect: ["refused"],
        },
        {
          route: "DELETE /v1/hosts/:id",
          as: "admin",
          request: async () => ({ url: `/v1/hosts/${rome}` }),
          expect: ["refused"],
        },
        {
          route: "DELETE /v1/hosts/:id",
          as: "admin",
          request: async () => ({ url: `/v1/hosts/${spare}` }),
          expect: ["change"],
        },
        {
          route: "POST /v1/hosts/:id/enter-maintenance",
          as: "operator",
          request: async () => ({ url: `/v1/hosts/${naples}/enter-maintenance` }),
          expect: [],
        },
        {
          route: "POST /v1/hosts/:id/exit-maintenance",
          as: "operator",
          request: async () => ({ url: `/v1/hosts/${naples}/exit-maintenance` }),
          expect: ["change"],
        },
        {
          route: "POST /v1/hosts/:id/exit-maintenance",
          as: "operator",
          request: async () => ({ url: `/v1/hosts/${rome}/exit-maintenance` }),
          expect: ["unchanged"],
        },
        {
          route: "POST /v1/images",
          as: "admin",
          request: async () => ({
            url: "/v1/images?name=kernel-1&kind=kernel",
            body: Buffer.alloc(4096, 1),
            headers: { "content-type": "application/octet-stream" },
          }),
          expect: ["change"],
        },
        {
          route: "POST /v1/images",
          as: "admin",
          request: async () => ({
            url: "/v1/images?name=kernel-1&kind=kernel",
            body: Buffer.alloc(32, 2),
            headers: { "content-type": "application/octet-stream" },
          }),
          expect: ["refused"],
        },
        {
          route: "DELETE /v1/images/:name",
          as: "admin",
          request: async () => ({ url: "/v1/images/kernel-1" }),
          expect: ["change"],
        },
        {
          route: "POST /v1/tokens",
          as: "admin",
          request: async () => ({ url: "/v1/tokens", body: { name: "ci", roles: ["viewer"] } }),
          expect: ["change"],
        },
        {
          route: "DELETE /v1/tokens/:id",
          as: "admin",
          request: async () => ({ url: `/v1/tokens/${token}` }),
          expect: ["change"],
        },
        {
          route: "DELETE /v1/tokens/:id",
          as: "admin",
          request: async () => ({ url: `/v1/tokens/${token}` }),
          expect: ["unchanged"],
        },
        {
          route: "PUT /v1/vms/:id/launch-session",
          as: "attestation-admin",
          request: async () => ({ url: `/v1/vms/${db.id}/launch-session`, body: sessionBody }),
          expect: ["refused"],
        },
        {
          route: "PUT /v1/vms/:id/launch-session",
          as: "attestation-admin",
          request: async () => ({ url: `/v1/vms/${es[2]?.id}/launch-session`, body: sessionBody }),
          expect: ["change"],
        },
        {
          route: "POST /v1/vms/:id/launch-secret",
          as: "attestation-admin",
          request: async () => ({ url: `/v1/vms/${db.id}/launch-secret`, body: secretBody }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/vms/:id/launch-finish",
          as: "attestation-admin",
          request: async () => ({ url: `/v1/vms/${att.id}/launch-finish` }),
          expect: ["refused"],
        },
        {
          // An SEV-ES VM has no report to give: refused; an SNP VM's would be "unchanged" (a read).
          route: "POST /v1/vms/:id/attestation-report",
          as: "attestation-admin",
          request: async () => ({ url: `/v1/vms/${att.id}/attestation-report`, body: {} }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/operations/:id/cancel",
          as: "all",
          request: async () => ({ url: `/v1/operations/${done.id}/cancel` }),
          expect: ["refused"],
        },
        {
          route: "POST /v1/operations/:id/cancel",
          as: "all",
          request: async () => ({ url: `/v1/operations/${stuck.operation.id}/cancel` }),
          expect: ["change"],
        },
      ];

      // Every mutating route of the server is in the table.
      const mutating = a.app.routeEntries
        .filter((r) => ["POST", "PUT", "PATCH", "DELETE"].includes(r.method) && r.url.startsWith("/v1/"))
        .map((r) => `${r.method} ${r.url}`);
      const covered = new Set(cases.map((c) => c.route));
      assert.deepEqual(
        mutating.filter((r) => !covered.has(r)),
        [],
        "mutating routes without a dry-run case",
      );

      for (const c of cases) {
        const { url, body, headers } = await c.request();
        const [method] = c.route.split(" ");
        const before = tables(file);
        const audit = await auditCount(a);
        const dry = await a.call(
          c.as,
          method ?? "POST",
          `${url}${url.includes("?") ? "&" : "?"}dryRun=true`,
          body,
          headers,
        );
        assert.equal(dry.statusCode, 200, `${c.route}: ${dry.body}`);
        const plan = json(dry) as unknown as Plan;
        assert.equal(plan.dryRun, true, c.route);
        assert.equal(tables(file), before, `${c.route}: the dry run changed the inventory`);
        assert.equal(await auditCount(a), audit + 1, `${c.route}: exactly one audit record`);
        const last = (await a.inventory.audit.list({}, { limit: 5000 })).items.at(-1);
        assert.equal(last?.details.dryRun, true, c.route);
        if (c.expect.length > 0)
          assert.deepEqual(
            plan.items.map((i) => i.outcome),
            c.expect,
            c.route,
          );
        else assert.ok(plan.items.length > 0, `${c.route}: a plan over several VMs`);
        const real = await a.call(c.as, method ?? "POST", url, body, headers);
        await agree(a, c, plan, real);
      }
    }));

  it("is documented in the OpenAPI document of every mutating route, with the plan as a 200 answer", () =>
    withApi(async (a) => {
      const doc = json(await a.call(null, "GET", "/docs/json")) as {
        paths: Record<
          string,
          Record<string, { parameters?: { name: string; in: string }[]; responses: Record<string, unknown> }>
        >;
      };
      let seen = 0;
      for (const [path, ops] of Object.entries(doc.paths)) {
        if (!path.startsWith("/v1/")) continue;
        for (const [method, op] of Object.entries(ops)) {
          if (!["post", "put", "patch", "delete"].includes(method)) continue;
          seen++;
          assert.ok(
            op.parameters?.some((p) => p.name === "dryRun" && p.in === "query"),
            `${method.toUpperCase()} ${path} documents ?dryRun`,
          );
          assert.ok(
            JSON.stringify(op.responses["200"] ?? {}).includes("DryRunPlan"),
            `${method} ${path}: 200 plan`,
          );
        }
      }
      assert.ok(seen >= 20, `mutating routes in the document: ${seen}`);
    }));
});
