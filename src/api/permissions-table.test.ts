/**
 * The permission each route needs, written down here by hand and checked against the running API — not read from
 * the routes' own declarations (auth.test.ts does that, and would keep passing if a route's declaration were
 * weakened). RBAC is default deny (docs/threat-model.md §5.3): a route that quietly moved from
 * `vm.security.downgrade` to `inventory.read`, or became public, fails this file.
 *
 * For every route × every role: a role the table says lacks the permission gets 403 FORBIDDEN, before any body or
 * parameter validation (the requests carry an empty, invalid body and made-up ids); a role that holds it gets past
 * authorization (neither 401 nor 403). Every non-public route answers 401 without a token, with an expired token
 * and with a revoked one (tokens that hold every role, so only their state can refuse them). The table and the
 * registered routes must list the same routes, both ways. Nothing is created or changed by the run: mutating routes
 * get made-up ids, empty bodies and `?dryRun=true` where they offer it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { can, type Permission, ROLES, type Role } from "../control/rbac.ts";
import { createToken, revokeToken } from "../control/services/tokens.ts";
import { type ApiFixture, json, withApi } from "./testing/api-fixture.ts";

type Need = "public" | "authenticated" | Permission | { anyOf: Permission[] };

/** Route → the permission it needs. Written by hand; `::` is fastify's escaped literal colon. */
const TABLE: Readonly<Record<string, Need>> = {
  // VMs
  "GET /v1/vms": "inventory.read",
  "GET /v1/vms/:id": "inventory.read",
  "POST /v1/vms": "vm.create",
  "DELETE /v1/vms/:id": "vm.delete",
  "POST /v1/vms/:id/power-on": "vm.power",
  "POST /v1/vms/:id/power-off": "vm.power",
  "POST /v1/vms/:id/restart": "vm.power",
  "POST /v1/vms/:id/suspend": "vm.power",
  "POST /v1/vms/:id/resume": "vm.power",
  "POST /v1/vms/:id/migrate": "vm.migrate",
  "POST /v1/vms/:id/snapshots": "vm.create",
  "POST /v1/vms/:id/clone": "vm.create",
  "POST /v1/vms::bulk-update": {
    anyOf: ["vm.security.enable", "vm.security.policy", "vm.security.downgrade", "vm.debug.allow"],
  },
  "POST /v1/vms::bulk-power": { anyOf: ["vm.power", "vm.delete"] },
  "GET /v1/vms/:id/hypervisor-view": "inventory.read",
  "GET /v1/vms/:id/console": "inventory.read",
  // Attestation (the guest owner's flow)
  "PUT /v1/vms/:id/launch-session": "attestation.session",
  "GET /v1/vms/:id/launch-measurement": "attestation.read",
  "POST /v1/vms/:id/attestation-report": "attestation.read",
  "POST /v1/vms/:id/launch-secret": "attestation.secret",
  "POST /v1/vms/:id/launch-finish": "attestation.secret",
  "GET /v1/hosts/:id/sev-info": "attestation.read",
  // Hosts
  "GET /v1/hosts": "inventory.read",
  "GET /v1/hosts/:id": "inventory.read",
  "POST /v1/hosts": "host.manage",
  "DELETE /v1/hosts/:id": "host.manage",
  "GET /v1/hosts/:id/drain-plan": "inventory.read",
  "POST /v1/hosts/:id/enter-maintenance": "host.maintenance",
  "POST /v1/hosts/:id/exit-maintenance": "host.maintenance",
  // Image catalog
  "GET /v1/images": "inventory.read",
  "GET /v1/images/:name": "inventory.read",
  "POST /v1/images": "image.manage",
  "DELETE /v1/images/:name": "image.manage",
  // Operations
  "GET /v1/operations": "inventory.read",
  "GET /v1/operations/:id": "inventory.read",
  "GET /v1/operations/:id/items": "inventory.read",
  "GET /v1/operations/:id/events": "inventory.read",
  "GET /v1/operations/:id/summary": "inventory.read",
  "POST /v1/operations/:id/cancel": "operation.cancel",
  // Identity, tokens, audit, system
  "GET /v1/me": "authenticated",
  "GET /v1/tokens": "token.manage",
  "POST /v1/tokens": "token.manage",
  "DELETE /v1/tokens/:id": "token.manage",
  "GET /v1/audit": "audit.read",
  "GET /v1/audit/verify": "audit.read",
  "GET /v1/system/store-check": { anyOf: ["audit.read", "host.manage"] },
  "GET /metrics": "inventory.read",
  // Public: probes, the emulated AMD KDS, the dashboard and the OpenAPI documents
  "GET /healthz": "public",
  "GET /readyz": "public",
  "GET /cek/id/:chipId": "public",
  "GET /cek/ask_ark_:product.cert": "public",
  "GET /vcek/v1/:product/cert_chain": "public",
  "GET /vcek/v1/:product/crl": "public",
  "GET /vcek/v1/:product/:hwid": "public",
  "GET /": "public",
  "GET /assets/*": "public",
  "GET /docs": "public",
  "GET /docs/json": "public",
  "GET /docs/yaml": "public",
  "GET /docs/static/index.html": "public",
  "GET /docs/static/swagger-initializer.js": "public",
  "GET /docs/static/*": "public",
};

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
/** Failed authentications are rate-limited per source; this run makes hundreds on purpose. */
const NO_AUTH_LIMIT = { api: { authFailures: { max: 1_000_000, windowMs: 60_000 } } };

function allowed(role: Role, need: Need): boolean {
  if (need === "public" || need === "authenticated") return true;
  return (typeof need === "string" ? [need] : need.anyOf).some((p) => can([role], p));
}

/** A concrete URL for a route pattern: each `:param` a made-up id, `::` a literal colon, `*` a made-up path. */
function concrete(pattern: string): string {
  return pattern
    .replaceAll("::", "\u0000")
    .replace(/:([A-Za-z]+)/g, "x_$1_1")
    .replaceAll("\u0000", ":")
    .replace(/\*$/, "nothing-here.js");
}

/** The routes whose OpenAPI description offers `?dryRun=`. */
async function dryRunRoutes(a: ApiFixture): Promise<Set<string>> {
  const doc = json(await a.call(null, "GET", "/docs/json")) as {
    paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
  };
  const out = new Set<string>();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      if (op.parameters?.some((p) => p.in === "query" && p.name === "dryRun"))
        out.add(`${method.toUpperCase()} ${path}`);
    }
  }
  return out;
}

function openApiPath(pattern: string): string {
  return pattern
    .replaceAll("::", "\u0000")
    .replace(/:([A-Za-z]+)/g, "{$1}")
    .replaceAll("\u0000", ":");
}

function send(
  a: ApiFixture,
  method: string,
  url: string,
  authorization: string | undefined,
): Promise<LightMyRequestResponse> {
  return a.app.inject({
    method: method as "GET",
    url,
    headers: authorization === undefined ? {} : { authorization },
    ...(MUTATING.has(method) ? { payload: {} } : {}),
  });
}

describe("API permissions: a literal route → permission table", () => {
  it("lists exactly the registered routes", () =>
    withApi(async (a) => {
      const registered = new Set(a.app.routeEntries.map((r) => `${r.method} ${r.url}`));
      const missing = [...registered].filter((k) => !(k in TABLE));
      const stale = Object.keys(TABLE).filter((k) => !registered.has(k));
      assert.deepEqual(missing, [], "routes the table lacks: add each with the permission it must need");
      assert.deepEqual(stale, [], "routes in the table that the API no longer has");
    }));

  it("every route × every role: 403 before validation when the table says no, past authorization when yes", () =>
    withApi(async (a) => {
      const dry = await dryRunRoutes(a);
      const tableDry = Object.keys(TABLE).filter((k) => {
        const [method = "", pattern = ""] = k.split(" ");
        return dry.has(`${method} ${openApiPath(pattern)}`);
      });
      assert.ok(
        tableDry.includes("POST /v1/vms::bulk-update"),
        `dry-run routes found: ${tableDry.join(", ")}`,
      );
      const before = await snapshot(a);
      let forbidden = 0;
      let passed = 0;
      for (const [key, need] of Object.entries(TABLE)) {
        const [method = "", pattern = ""] = key.split(" ");
        const url = concrete(pattern);
        for (const role of ROLES) {
          const ok = allowed(role, need);
          const target =
            ok && MUTATING.has(method) && dry.has(`${method} ${openApiPath(pattern)}`)
              ? `${url}?dryRun=true`
              : url;
          const res = await send(a, method, target, `Bearer ${a.tokens[role]}`);
          if (ok) {
            assert.ok(
              res.statusCode !== 401 && res.statusCode !== 403,
              `${key} as ${role} should pass authorization: ${res.statusCode} ${res.body.slice(0, 200)}`,
            );
            passed++;
          } else {
            assert.equal(res.statusCode, 403, `${key} as ${role}: ${res.body.slice(0, 200)}`);
            const body = json(res);
            assert.equal(body.code, "FORBIDDEN", `${key} as ${role}`);
            const named = typeof need === "string" ? [need] : typeof need === "object" ? need.anyOf : [];
            assert.ok(
              named.some((p) => String(body.detail).includes(p)),
              `${key} as ${role}: "${String(body.detail)}" names none of ${named.join(", ")}`,
            );
            forbidden++;
          }
        }
      }
      // The run denied and admitted a real share of the matrix (not vacuous either way).
      assert.ok(forbidden > 200 && passed > 150, `${forbidden} forbidden, ${passed} passed`);
      assert.deepEqual(await snapshot(a), before, "the run changed nothing");
    }, NO_AUTH_LIMIT));

  it("every non-public route: 401 without a token, with an expired token and with a revoked one", () =>
    withApi(async (a) => {
      const actor = { id: null, name: "test-setup" };
      const everyRole = [...ROLES];
      const expired = (
        await createToken(a.inventory, actor, {
          name: "expired",
          roles: everyRole,
          expiresAt: new Date(Date.now() - 60_000).toISOString(),
        })
      ).secret.reveal();
      const revokedIssued = await createToken(a.inventory, actor, { name: "revoked", roles: everyRole });
      const revoked = revokedIssued.secret.reveal();
      // Before its revocation the same token is admitted everywhere: the 401s below are its state alone.
      assert.equal((await send(a, "GET", "/v1/audit", `Bearer ${revoked}`)).statusCode, 200);
      await revokeToken(a.inventory, actor, revokedIssued.token.id);
      const before = await snapshot(a);
      for (const [key, need] of Object.entries(TABLE)) {
        const [method = "", pattern = ""] = key.split(" ");
        const url = concrete(pattern);
        if (need === "public") {
          const res = await send(a, method, url, undefined);
          assert.ok(res.statusCode !== 401 && res.statusCode !== 403, `${key} is public: ${res.statusCode}`);
          continue;
        }
        for (const [what, auth] of [
          ["no token", undefined],
          ["an expired token", `Bearer ${expired}`],
          ["a revoked token", `Bearer ${revoked}`],
        ] as const) {
          const res = await send(a, method, url, auth);
          assert.equal(res.statusCode, 401, `${key} with ${what}: ${res.body.slice(0, 200)}`);
          assert.equal(json(res).code, "UNAUTHENTICATED", `${key} with ${what}`);
        }
      }
      assert.deepEqual(await snapshot(a), before, "the run changed nothing");
    }, NO_AUTH_LIMIT));
});

/** What a mutating request that slipped through would change. */
async function snapshot(a: ApiFixture): Promise<unknown> {
  const inv = a.inventory;
  return {
    vms: (await inv.vms.list({}, { limit: 1000 })).items.map((v) => [v.id, v.version]),
    hosts: (await inv.hosts.list({}, { limit: 1000 })).items.map((h) => h.id),
    tokens: (await inv.tokens.list({ limit: 1000 })).items.map((t) => [t.id, t.revokedAt]),
    images: (await inv.images.list({ limit: 1000 })).items.map((i) => i.name),
    operations: (await inv.operations.list({}, { limit: 1000 })).items.length,
  };
}
