/**
 * The web dashboard (web/, built by Vite into dist/web/): `GET /` and `GET /assets/*` are public, because they are
 * the application's code and carry no data — every answer the dashboard shows comes from `/v1/…` with the
 * signed-in token. Any other GET the router does not know, outside `/v1/`, that accepts `text/html` gets the same
 * `index.html`, so a reload or a bookmarked page (`/vms`, `/hosts`) opens the single-page application there, while
 * API clients keep the 404 problem. Every dashboard answer carries a strict Content-Security-Policy: scripts,
 * styles and connections from this origin only (no inline script, no CDN, no external font), no framing.
 *
 * The bundle sits at dist/web/ — next to the chunk this module is bundled into (`../web/` from dist/chunks/ or
 * dist/cli/), or, when running from sources, in the checkout's dist/ after `npm run build`. Without a bundle the
 * dashboard routes answer 503 IO naming the build command, so the routes (and their permissions) never depend on
 * whether a build ran.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CiphervisorError } from "../errors.ts";

/** The policy of every dashboard response (the API's JSON needs none: browsers do not render it). */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

/** Where the built bundle may be, nearest first. */
const CANDIDATES = [new URL("../web/", import.meta.url), new URL("../../dist/web/", import.meta.url)];

/** The folder holding the built dashboard (with index.html), or undefined before `npm run build`. */
export function dashboardRoot(): string | undefined {
  for (const c of CANDIDATES) {
    const dir = fileURLToPath(c);
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

function notBuilt(): CiphervisorError {
  return new CiphervisorError(
    "IO",
    "the dashboard is not built in this installation: run 'npm run build' (the API under /v1 works without it)",
  );
}

/** True for a request the single-page application answers: a browser navigating to a page outside the API. */
export function isDashboardNavigation(request: FastifyRequest): boolean {
  if (request.method !== "GET" && request.method !== "HEAD") return false;
  const path = request.url.split("?")[0] ?? "";
  if (path === "/v1" || path.startsWith("/v1/") || path.startsWith("/assets/")) return false;
  const accept = request.headers.accept;
  return typeof accept === "string" && /\btext\/html\b/i.test(accept);
}

/** Answers the application's index.html (no caching: it names the hashed bundle of the current build). */
export function sendDashboardIndex(reply: FastifyReply): FastifyReply {
  const root = dashboardRoot();
  if (root === undefined) throw notBuilt();
  reply.headers(SECURITY_HEADERS).header("cache-control", "no-cache");
  return reply.sendFile("index.html", root, { cacheControl: false });
}

/**
 * Registers `GET /` and `GET /assets/*` (public), and `reply.sendFile`. Call `isDashboardNavigation` and
 * `sendDashboardIndex` from the not-found handler for the pages' own paths.
 */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  await app.register(fastifyStatic, { serve: false });
  app.get(
    "/",
    {
      config: { permission: "public", action: "dashboard.read" },
      schema: { hide: true },
    },
    async (_req, reply) => sendDashboardIndex(reply),
  );
  app.get(
    "/assets/*",
    {
      config: { permission: "public", action: "dashboard.read" },
      schema: { hide: true },
    },
    async (req, reply) => {
      const root = dashboardRoot();
      if (root === undefined) throw notBuilt();
      const file = (req.params as Record<string, string | undefined>)["*"] ?? "";
      reply.headers(SECURITY_HEADERS);
      // Vite names every asset by its content hash: a name never changes meaning, so it may be cached for good.
      return reply.sendFile(file, `${root}assets`, { maxAge: "365d", immutable: true, dotfiles: "deny" });
    },
  );
}
