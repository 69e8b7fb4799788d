/**
 * The REST API (fastify 5): versioned `/v1/…` routes with TypeBox schemas, OpenAPI at `/docs` (`/docs/json`),
 * RFC 9457 problems, bearer-token auth with per-route permissions (default deny), audit records for every
 * state-changing and every denied request, `/healthz`, `/readyz` and Prometheus text at `/metrics`.
 *
 * Secrets: tokens arrive only in the Authorization header, which the logger redacts; errors are rebuilt as
 * problems from codes and one-line messages (no stacks, no request echo); every 2xx body is built by a view
 * function and serialized through its response schema, which drops undeclared fields.
 *
 * @example
 * ```ts
 * const app = await buildApi({ cp });
 * const res = await app.inject({ method: "GET", url: "/v1/vms", headers: { authorization: `Bearer ${secret}` } });
 * ```
 */
import type { Duplex } from "node:stream";
import AjvCompiler from "@fastify/ajv-compiler";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from "fastify";
import type { AuditOutcome } from "../control/audit/record.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import { errorSummary } from "../control/operations/engine.ts";
import { ANONYMOUS, installAuth, type RouteEntry } from "./auth.ts";
import { isDryRun, requireDryRun } from "./dry-run.ts";
import { ApiMetrics } from "./metrics.ts";
import {
  PROBLEM_CONTENT_TYPE,
  type Problem,
  ProblemError,
  problem,
  shownPath,
  toProblem,
} from "./problem.ts";
import { adminRoutes } from "./routes/admin.ts";
import { attestationRoutes } from "./routes/attestation.ts";
import { hostRoutes } from "./routes/hosts.ts";
import { kdsRoutes } from "./routes/kds.ts";
import { operationSummaryRoutes } from "./routes/operation-summary.ts";
import { operationRoutes } from "./routes/operations.ts";
import { systemRoutes } from "./routes/system.ts";
import { vmRoutes } from "./routes/vms.ts";
import { AuditRecordSchema, TokenSchema } from "./schemas/admin.ts";
import { OperationItemSchema, OperationSchema, ProblemSchema } from "./schemas/common.ts";
import { HostSchema } from "./schemas/host.ts";
import { DryRunPlanSchema, PlanItemSchema, PoolImpactSchema } from "./schemas/plan.ts";
import { VmSchema, VmSpecSchema } from "./schemas/vm.ts";

/** Paths the logger blanks wherever they appear: credentials and anything named like a secret. */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "authorization",
  "secret",
  "*.secret",
  "token",
  "*.token",
  "password",
  "*.password",
];

export interface ApiOptions {
  readonly cp: ControlPlane;
  /** fastify's logger option (pino options, with `redact` added); default: no logging. */
  readonly logger?: FastifyServerOptions["logger"];
  /** A ready pino logger to use instead (tests capture output through it). */
  readonly loggerInstance?: FastifyServerOptions["loggerInstance"];
  /** How long a short operation is awaited before answering 202 (default 30 s). */
  readonly syncWaitMs?: number;
  /** Readiness beyond a reachable inventory (e.g. false while shutting down). */
  readonly isReady?: () => boolean;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Every route as registered, with its permission and audit action (tests derive the auth matrix from it). */
    readonly routeEntries: readonly RouteEntry[];
  }
}

export type ApiApp = FastifyInstance;

function targetOf(request: FastifyRequest): string {
  const params = request.params as Record<string, unknown> | undefined;
  const id = params?.id;
  return typeof id === "string" ? id : "*";
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Ajv's options for every request part; only `coerceTypes` differs between them (`requestValidators`). */
const AJV_OPTIONS = { allErrors: true, removeAdditional: false, useDefaults: true } as const;

/**
 * The validator compiler of each request part. A JSON body is validated as sent — `"2"` is not 2, `true` is not
 * 1, `null` is not `""` — so a client's type mistake is a 400 naming the field, not a silent conversion (ajv's
 * coercion turned `{"hostId": null}` into `""`, a selector matching nothing). Querystrings are strings on the wire:
 * they alone are coerced (`limit=10`, `dryRun=true`, a repeated key into an array). Params and headers are
 * strings and declared as strings, so they need no coercion either.
 */
function requestValidators(): NonNullable<
  NonNullable<FastifyServerOptions["schemaController"]>["compilersFactory"]
>["buildValidator"] {
  const pool = AjvCompiler();
  return (externalSchemas) => {
    const strict = pool(externalSchemas, { customOptions: { ...AJV_OPTIONS, coerceTypes: false } });
    const coercing = pool(externalSchemas, { customOptions: { ...AJV_OPTIONS, coerceTypes: "array" } });
    return (route) => (route.httpPart === "querystring" ? coercing(route) : strict(route));
  };
}

/**
 * Errors the HTTP parser meets before fastify sees a request (headers or URL over Node's 16 KiB, a malformed
 * request line, a timeout): a problem written on the raw socket, with nothing of the request in it.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, detail] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "the request line or headers are too large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "the request took too long to arrive"]
        : [400, "Bad Request", "the request is not valid HTTP"];
  const body = JSON.stringify(problem(status, status === 408 ? "IO" : "INVALID_INPUT", detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

export async function buildApi(options: ApiOptions): Promise<ApiApp> {
  const { cp } = options;
  const inventory = cp.context.inventory;
  const logger =
    options.loggerInstance === undefined
      ? options.logger === undefined || options.logger === false
        ? false
        : {
            ...(typeof options.logger === "object" ? options.logger : {}),
            redact: { paths: REDACT_PATHS, censor: "[redacted]" },
          }
      : undefined;
  const app = Fastify({
    ...(logger === undefined ? {} : { logger }),
    ...(options.loggerInstance === undefined ? {} : { loggerInstance: options.loggerInstance }),
    bodyLimit: 1024 * 1024,
    // The KDS's chip ids are 128 hex digits (fastify's default limit is 100 characters per path parameter).
    routerOptions: { maxParamLength: 256 },
    schemaController: { compilersFactory: { buildValidator: requestValidators() } },
    // A malformed percent-encoding or an over-long path segment: fastify would answer plain JSON quoting the URL.
    frameworkErrors: (error, request, reply) => {
      const p = toProblem(error, shownPath(request.url));
      return (reply as FastifyReply).code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
    },
    clientErrorHandler,
  });
  const routes: RouteEntry[] = [];
  app.decorate("routeEntries", routes);
  const metrics = new ApiMetrics();

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "ciphervisor",
        version: "1",
        description:
          "Confidential VMs on AMD SEV and SEV-ES: hosts, VMs, bulk security changes, operations, audit. Errors are RFC 9457 problems (application/problem+json) with a stable `code`.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  for (const s of [
    ProblemSchema,
    OperationSchema,
    OperationItemSchema,
    VmSpecSchema,
    VmSchema,
    HostSchema,
    TokenSchema,
    AuditRecordSchema,
    PlanItemSchema,
    PoolImpactSchema,
    DryRunPlanSchema,
  ]) {
    app.addSchema(s);
  }

  installAuth(app, inventory, routes);
  requireDryRun(app);

  /** Denied (401/403) and failed mutating requests get their audit record here; operation failures were audited with the operation. */
  async function auditRejected(request: FastifyRequest, p: Problem, alreadyAudited: boolean): Promise<void> {
    if (alreadyAudited || request.routeOptions.url === undefined) return;
    const denied = p.status === 401 || p.status === 403;
    if (!denied && !(MUTATING.has(request.method) && request.principal)) return;
    const outcome: AuditOutcome = denied ? "denied" : "failed";
    try {
      await inventory.audit.append({
        actor: request.principal?.actor ?? ANONYMOUS,
        action: request.routeOptions.config.action ?? `${request.method} ${request.routeOptions.url}`,
        target: targetOf(request),
        outcome,
        details: {
          method: request.method,
          route: request.routeOptions.url,
          status: p.status,
          code: p.code,
          reason: p.detail,
          ...(isDryRun(request) ? { dryRun: true } : {}),
        },
      });
    } catch (e) {
      request.log.error({ err: errorSummary(e) }, "could not write the audit record of a rejected request");
    }
  }

  app.setErrorHandler(async (error, request, reply) => {
    const alreadyAudited = error instanceof ProblemError;
    const p = alreadyAudited ? error.problem : toProblem(error, shownPath(request.url));
    if (p.status >= 500) request.log.error({ err: errorSummary(error) }, "request failed");
    await auditRejected(request, p, alreadyAudited);
    if (p.status === 401) reply.header("www-authenticate", 'Bearer realm="ciphervisor"');
    return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
  });

  app.setNotFoundHandler(async (request, reply) =>
    reply
      .code(404)
      .type(PROBLEM_CONTENT_TYPE)
      .send(
        problem(404, "NOT_FOUND", `no route ${request.method} ${shownPath(request.url)}`, {
          instance: shownPath(request.url),
        }),
      ),
  );

  app.addHook("onResponse", async (request, reply) => {
    metrics.observe(
      request.method,
      request.routeOptions.url ?? "unmatched",
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  const deps = { cp, syncWaitMs: options.syncWaitMs ?? 30_000 };
  vmRoutes(app, deps);
  operationSummaryRoutes(app, deps);
  hostRoutes(app, deps);
  attestationRoutes(app, deps);
  kdsRoutes(app, deps);
  operationRoutes(app, deps);
  adminRoutes(app, cp.context);
  systemRoutes(app, { cp, metrics, isReady: options.isReady ?? (() => true) });

  await app.register(swaggerUi, { routePrefix: "/docs" });
  await app.ready();
  return app;
}
