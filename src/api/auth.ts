/**
 * Authentication and authorization for every route, default deny. Each route declares in its config the
 * permission it needs (`permission`) and the audit action it performs (`action`); a route that declares nothing
 * is refused to everybody. The check runs in `onRequest`, before the body is even parsed, so a caller without
 * the right role learns nothing from validation errors. Bearer tokens only, never in URLs.
 */

import type { FastifyInstance, FastifyRequest } from "fastify";
import { refusesWrites } from "../control/inventory/health.ts";
import type { Inventory } from "../control/inventory/inventory.ts";
import type { Actor } from "../control/inventory/types.ts";
import { can, type Permission } from "../control/rbac.ts";
import { authenticateToken } from "../control/tokens.ts";
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import type { AuthFailureLimiter } from "./denied-requests.ts";

/** What a route requires: nothing (public), any valid token, one permission, or any of several. */
export type RoutePermission =
  | "public"
  | "authenticated"
  | Permission
  | { readonly anyOf: readonly Permission[] };

/** The authenticated caller. */
export interface Principal {
  readonly tokenId: string;
  readonly actor: Actor;
  readonly roles: readonly string[];
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Required: routes without it are denied to everybody. */
    permission?: RoutePermission;
    /** The audit action of the route (e.g. `vm.power-on`), used for denied and failed requests. */
    action?: string;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Every route as registered, for the auth tests and the docs: method, URL, permission, action. */
export interface RouteEntry {
  readonly method: string;
  readonly url: string;
  readonly permission: RoutePermission | undefined;
  readonly action: string | undefined;
}

/** The anonymous actor of a request without a valid token. */
export const ANONYMOUS: Actor = { id: null, name: "anonymous" };

/** Describes a permission requirement for messages. */
export function describePermission(p: RoutePermission): string {
  if (typeof p === "string") return `'${p}'`;
  return p.anyOf.map((x) => `'${x}'`).join(" or ");
}

function allowed(roles: readonly string[], p: RoutePermission): boolean {
  if (p === "public" || p === "authenticated") return true;
  if (typeof p === "string") return can(roles, p);
  return p.anyOf.some((x) => can(roles, x));
}

/** FORBIDDEN unless the caller holds every one of `permissions` (for checks that depend on the request body). */
export function requirePermissions(request: FastifyRequest, permissions: readonly Permission[]): void {
  const roles = request.principal?.roles ?? [];
  const missing = permissions.filter((p) => !can(roles, p));
  if (missing.length > 0) {
    throw new CiphervisorError(
      "FORBIDDEN",
      `this request needs ${missing.map((p) => `'${p}'`).join(" and ")}`,
      { details: { permissions: missing } },
    );
  }
}

/** FORBIDDEN unless the caller holds at least one of `permissions`. */
export function requireAnyPermission(request: FastifyRequest, permissions: readonly Permission[]): void {
  const roles = request.principal?.roles ?? [];
  if (permissions.length > 0 && !permissions.some((p) => can(roles, p))) {
    throw new CiphervisorError(
      "FORBIDDEN",
      `this request needs ${permissions.map((p) => `'${p}'`).join(" or ")}`,
      { details: { permissions: [...permissions] } },
    );
  }
}

/**
 * `Bearer <token68>`: the scheme is case-insensitive (RFC 9110 §11.1) and may be followed by several spaces
 * (RFC 9110 §11.4); the token itself is compared exactly.
 */
const BEARER = /^bearer +([^\s]+)$/i;
/** How often a token's `last used` time is written (not on every request: that would serialize reads). */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * Installs the authentication hook and the route registry (`app.routeEntries`). With a `limiter`, each failed
 * authentication counts against the request's source, and a source over its limit is answered RATE_LIMITED (429)
 * instead of UNAUTHENTICATED; a valid token is still checked and accepted (`denied-requests.ts`).
 */
export function installAuth(
  app: FastifyInstance,
  inventory: Inventory,
  routes: RouteEntry[],
  limiter?: AuthFailureLimiter,
): void {
  const touched = new Map<string, number>();
  app.addHook("onRoute", (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const config = (r.config ?? {}) as { permission?: RoutePermission; action?: string };
    // The documentation routes (added by @fastify/swagger-ui) are public: they show the API, not data.
    if (r.url === "/docs" || r.url.startsWith("/docs/")) {
      r.config = { ...config, permission: "public", action: "docs.read" };
    }
    for (const m of methods) {
      if (m === "HEAD") continue;
      routes.push({
        method: m,
        url: r.url,
        permission: (r.config as typeof config | undefined)?.permission,
        action: config.action,
      });
    }
  });
  app.addHook("onRequest", async (request) => {
    // Unmatched routes fall through to the 404 handler.
    if (request.routeOptions.url === undefined) return;
    const required = request.routeOptions.config.permission;
    if (required === "public") return;
    const header = request.headers.authorization;
    const m = typeof header === "string" ? BEARER.exec(header) : null;
    const secret = m?.[1];
    const refuse = (e: CiphervisorError): never => {
      const wait = limiter?.fail(request.ip) ?? 0;
      if (wait > 0) {
        throw new CiphervisorError(
          "RATE_LIMITED",
          `too many failed authentications from this address; retry in ${wait} s`,
          { details: { retryAfter: wait } },
        );
      }
      throw e;
    };
    if (secret === undefined) {
      throw refuse(
        new CiphervisorError(
          "UNAUTHENTICATED",
          "this request needs an API token: 'Authorization: Bearer cvt_…'",
        ),
      );
    }
    let token: Awaited<ReturnType<typeof authenticateToken>>;
    try {
      token = await authenticateToken(inventory, secret);
    } catch (e) {
      throw isCiphervisorError(e, "UNAUTHENTICATED") ? refuse(e) : e;
    }
    request.principal = { tokenId: token.id, actor: { id: token.id, name: token.name }, roles: token.roles };
    const now = Date.now();
    // Not into a damaged store (inventory/health.ts): "last used" can wait, the store's pages cannot.
    if ((touched.get(token.id) ?? 0) + TOUCH_INTERVAL_MS < now && !refusesWrites(inventory.damage)) {
      touched.set(token.id, now);
      inventory.tokens.touch(token.id).catch(() => undefined);
    }
    if (required === undefined) {
      // Default deny: a route that forgot to declare its permission is closed, not open.
      throw new CiphervisorError("FORBIDDEN", "this route declares no permission and is closed to everybody");
    }
    if (!allowed(token.roles, required)) {
      throw new CiphervisorError(
        "FORBIDDEN",
        `this request needs the ${describePermission(required)} permission`,
        {
          details: { permission: typeof required === "string" ? required : required.anyOf.join("|") },
        },
      );
    }
  });
}
