/**
 * An API over a fresh control plane for tests: a SQLite inventory in a temp directory, emulated hosts, one token
 * per role, and `call` to inject requests as a role (or anonymously).
 */
import { Writable } from "node:stream";
import type { LightMyRequestResponse } from "fastify";
import { pino } from "pino";
import type { ControlPlaneOptions } from "../../control/control-plane.ts";
import { ROLES, type Role } from "../../control/rbac.ts";
import { createToken } from "../../control/services/tokens.ts";
import { type Fixture, withFixture } from "../../control/testing/control-fixture.ts";
import { type ApiApp, type ApiOptions, buildApi, LOG_SAFETY } from "../app.ts";

export interface ApiFixture extends Fixture {
  readonly app: ApiApp;
  /** A token secret per role, plus `all` (every role but admin's token powers). */
  readonly tokens: Readonly<Record<Role | "all", string>>;
  /** Everything the API logged (JSON lines). */
  logs(): string;
  call(
    as: Role | "all" | null,
    method: string,
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
}

export async function withApi<T>(
  fn: (a: ApiFixture) => Promise<T>,
  options: {
    syncWaitMs?: number;
    control?: Partial<ControlPlaneOptions>;
    /** Further API options (rate limits, audit windows). */
    api?: Pick<ApiOptions, "authFailures" | "deniedAuditWindowMs">;
  } = {},
): Promise<T> {
  return withFixture(async (f) => {
    let logText = "";
    const sink = new Writable({
      write(chunk, _enc, done) {
        logText += String(chunk);
        done();
      },
    });
    // The loggers `serve` builds have the same safety options.
    const logger = pino({ level: "debug", ...LOG_SAFETY }, sink);
    const app = await buildApi({
      cp: f.cp,
      loggerInstance: logger,
      ...(options.syncWaitMs === undefined ? {} : { syncWaitMs: options.syncWaitMs }),
      ...options.api,
    });
    const tokens: Record<string, string> = {};
    const actor = { id: null, name: "test-setup" };
    for (const role of ROLES) {
      tokens[role] = (await createToken(f.inventory, actor, { name: role, roles: [role] })).secret.reveal();
    }
    tokens.all = (
      await createToken(f.inventory, actor, {
        name: "everything",
        roles: ["operator", "security-admin", "security-officer", "admin", "auditor", "attestation-admin"],
      })
    ).secret.reveal();
    const a: ApiFixture = {
      ...f,
      app,
      tokens: tokens as Record<Role | "all", string>,
      logs: () => logText,
      call(as, method, url, body, headers = {}) {
        return app.inject({
          method: method as "GET",
          url,
          headers: { ...(as === null ? {} : { authorization: `Bearer ${tokens[as]}` }), ...headers },
          ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
        });
      },
    };
    try {
      return await fn(a);
    } finally {
      await app.close();
    }
  }, options.control);
}

/** Parses a JSON (or problem+json) body. */
export function json(r: LightMyRequestResponse): Record<string, unknown> & { [k: string]: unknown } {
  return JSON.parse(r.body) as Record<string, unknown>;
}
