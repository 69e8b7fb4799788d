/**
 * Authentication and authorization on every route, derived from the routes actually registered — a route added
 * later is covered without touching this file: 401 without a token (or with a bad one), 403 with a role that
 * lacks the route's permission, each denial audited; and no route is left without a declared permission.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { can, type Permission, ROLES, type Role } from "../control/rbac.ts";
import type { RoutePermission } from "./auth.ts";
import { PROBLEM_CONTENT_TYPE } from "./problem.ts";
import { json, withApi } from "./testing/api-fixture.ts";

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function allowedFor(role: Role, p: RoutePermission): boolean {
  if (p === "public" || p === "authenticated") return true;
  const list: readonly Permission[] = typeof p === "string" ? [p] : p.anyOf;
  return list.some((x) => can([role], x));
}

/** A concrete URL for a route pattern: every `/:param` segment becomes a plausible id (`vms::verb` is literal). */
function concrete(url: string): string {
  return url.replace(/\/:([A-Za-z]+)/g, "/x_$1_1").replace(/::/g, ":");
}

describe("API auth: every route, default deny", () => {
  it("declares a permission on every route; only health, readiness, docs, the emulated KDS and the dashboard's code are public", () =>
    withApi(async (a) => {
      const routes = a.app.routeEntries;
      assert.ok(routes.length >= 30, `found ${routes.length} routes`);
      for (const r of routes)
        assert.notEqual(r.permission, undefined, `${r.method} ${r.url} declares no permission`);
      const publicRoutes = routes.filter((r) => r.permission === "public").map((r) => r.url);
      for (const u of publicRoutes) {
        assert.match(
          u,
          /^(\/healthz|\/readyz|\/docs.*|\/cek\/id\/:chipId|\/cek\/ask_ark_:product\.cert|\/vcek\/v1\/:product\/(cert_chain|crl|:hwid)|\/|\/assets\/\*)$/,
          `${u} is public`,
        );
      }
      for (const r of routes.filter((x) => x.url.startsWith("/v1/"))) {
        assert.ok(r.action, `${r.method} ${r.url} names its audit action`);
      }
    }));

  it("answers 401 without a token and 403 with a role lacking the permission, for every mutating route", () =>
    withApi(async (a) => {
      const mutating = a.app.routeEntries.filter((r) => MUTATING.has(r.method) && r.permission !== "public");
      assert.ok(mutating.length >= 15, `found ${mutating.length} mutating routes`);
      const deniedBefore = (await a.inventory.audit.list({ outcome: "denied" }, { limit: 5000 })).items
        .length;
      let denials = 0;
      for (const r of mutating) {
        const url = concrete(r.url);
        const anon = await a.call(null, r.method, url, {});
        assert.equal(anon.statusCode, 401, `${r.method} ${r.url} without a token`);
        // The request reached this very route (not a look-alike): the aggregate of anonymous denials names it.
        const seq = (await a.inventory.audit.head()).seq;
        await a.app.deniedAudit.flush();
        const aggregate = (await a.inventory.audit.list({ outcome: "denied" }, { limit: 5000 })).items.at(-1);
        assert.equal(aggregate?.seq, seq + 1, `${url}: one aggregated record`);
        assert.deepEqual(
          aggregate?.details.routes,
          { [`${r.method} ${r.url.replaceAll("::", ":")}`]: 1 },
          `${url} was routed elsewhere`,
        );
        assert.equal(json(anon).code, "UNAUTHENTICATED");
        assert.match(
          String(anon.headers["content-type"]),
          new RegExp(PROBLEM_CONTENT_TYPE.replace("+", "\\+")),
        );
        assert.match(String(anon.headers["www-authenticate"]), /^Bearer/);
        denials++;
        const p = r.permission as RoutePermission;
        const lacking = ROLES.filter((role) => !allowedFor(role, p));
        assert.ok(lacking.length > 0 || p === "authenticated", `${r.url}: every role may call it`);
        for (const role of lacking) {
          const res = await a.call(role, r.method, url, {});
          assert.equal(res.statusCode, 403, `${r.method} ${r.url} as ${role}: ${res.body}`);
          const body = json(res);
          assert.equal(body.code, "FORBIDDEN");
          assert.match(String(body.detail), /permission/);
          denials++;
        }
      }
      await a.app.deniedAudit.flush();
      const denied = (await a.inventory.audit.list({ outcome: "denied" }, { limit: 5000 })).items;
      assert.equal(denied.length - deniedBefore, denials, "every denied request is audited");
      const sample = denied.at(-1);
      assert.ok(sample && sample.details.route !== undefined && sample.action.length > 0);
    }));

  it("refuses read routes without a token too, and bad, unknown or revoked tokens", () =>
    withApi(async (a) => {
      const reads = a.app.routeEntries.filter((r) => r.method === "GET" && r.permission !== "public");
      for (const r of reads) {
        const res = await a.call(null, "GET", concrete(r.url));
        assert.equal(res.statusCode, 401, `GET ${r.url}`);
      }
      const bad = [
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer cvt_short",
        `Bearer cvt_${"A".repeat(43)}`,
        // The scheme is case-insensitive (RFC 9110 §11.1, hardening.test.ts), the token is not.
        `bearer ${a.tokens.viewer.toUpperCase()}`,
      ];
      for (const h of bad) {
        const res = await a.app.inject({ method: "GET", url: "/v1/vms", headers: { authorization: h } });
        assert.equal(res.statusCode, 401, h);
        assert.ok(!res.body.includes(h.split(" ")[1] ?? "\u0000"), "the presented token is not echoed");
      }
      const me = json(await a.call("viewer", "GET", "/v1/me"));
      const revoke = await a.call("admin", "DELETE", `/v1/tokens/${String(me.tokenId)}`);
      assert.equal(revoke.statusCode, 200);
      const after = await a.call("viewer", "GET", "/v1/vms");
      assert.equal(after.statusCode, 401);
      assert.match(String(json(after).detail), /revoked/);
    }));

  it("separates turning protection on, off, and allowing debug (per request and per VM)", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      const plain = await a.vm("p-1");
      const es = await a.vm("e-1", "sev-es");
      const bulk = (as: Role | "all", set: Record<string, unknown>, selector: Record<string, unknown>) =>
        a.call(as, "POST", "/v1/vms:bulk-update", { selector, set });
      // The request alone says what it needs.
      assert.equal(
        (await bulk("security-admin", { securityMode: "none" }, { ids: [es.id] })).statusCode,
        403,
      );
      assert.equal(
        (await bulk("security-officer", { securityMode: "sev-es" }, { ids: [plain.id] })).statusCode,
        403,
      );
      assert.equal(
        (await bulk("security-admin", { securityMode: "sev-es", policy: 0x6 }, { ids: [plain.id] }))
          .statusCode,
        403,
      );
      assert.equal((await bulk("operator", { securityMode: "sev" }, { ids: [plain.id] })).statusCode, 403);
      // "Set SEV" is an enable for an ordinary VM but a downgrade for an SEV-ES one: checked per VM.
      const r = await bulk("security-admin", { securityMode: "sev" }, { ids: [plain.id, es.id] });
      assert.equal(r.statusCode, 202);
      const opId = String((json(r).operation as { id: string }).id);
      const op = await a.cp.engine.waitFor(opId, 30_000);
      assert.equal(op.status, "partially-failed");
      const items = (await a.inventory.operations.items(opId)).items;
      assert.equal(items.find((i) => i.target === plain.id)?.outcome, "ok");
      const denied = items.find((i) => i.target === es.id);
      assert.equal(denied?.code, "FORBIDDEN");
      assert.match(denied?.reason ?? "", /vm\.security\.downgrade/);
      assert.equal((await a.inventory.vms.get(es.id))?.securityMode, "sev-es", "untouched");
      const audit = (await a.inventory.audit.list({ target: es.id, outcome: "denied" })).items;
      assert.equal(audit.length, 1);
      // Creating an encrypted VM needs the enable permission on top of vm.create.
      const spec = { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };
      const create = await a.call("operator", "POST", "/v1/vms", {
        name: "enc",
        spec,
        securityMode: "sev-es",
      });
      assert.equal(create.statusCode, 403);
      assert.match(String(json(create).detail), /vm\.security\.enable/);
    }));
});
