/**
 * The REST API (fastify 5): versioned `/v1/…` routes with TypeBox schemas, OpenAPI at `/docs` (`/docs/json`),
 * RFC 9457 problems, bearer-token auth with per-route permissions (default deny), audit records for every
 * state-changing and every denied request, `/healthz`, `/readyz` and Prometheus text at `/metrics`.
 *
 * Secrets: tokens are read only from the Authorization header, which the logger redacts; a token a client puts
 * anywhere else (the URL, another header) is blanked in logged URLs and in every log line and problem
 * (`redact.ts`); errors are rebuilt as problems from codes and one-line messages (no stacks, no request echo);
 * every 2xx body is built by a view function and serialized through its response schema, which drops undeclared
 * fields.
 *
 * Requests denied without a valid token are audited in aggregate, one record per source and minute, and failed
 * authentication is rate-limited per source (`denied-requests.ts`).
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
import { refusesWrites } from "../control/inventory/health.ts";
import { errorSummary } from "../control/operations/engine.ts";
import { ANONYMOUS, installAuth, type RouteEntry } from "./auth.ts";
import { isDashboardNavigation, registerDashboard, sendDashboardIndex } from "./dashboard.ts";
import {
  AuthFailureLimiter,
  type AuthFailureLimits,
  DEFAULT_AUTH_FAILURES,
  DeniedRequestAudit,
  sourceOf,
} from "./denied-requests.ts";
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
import { CENSOR, redactSecrets, requestLogView } from "./redact.ts";
import { RequestLogController } from "./request-log.ts";
import { adminRoutes } from "./routes/admin.ts";
import { attestationRoutes } from "./routes/attestation.ts";
import { consoleRoutes } from "./routes/console.ts";
import { hostRoutes } from "./routes/hosts.ts";
import { hypervisorViewRoutes } from "./routes/hypervisor-view.ts";
import { imageRoutes } from "./routes/images.ts";
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

/**
 * The options every logger of the API is built with (`serve`, the test fixture, `buildApi`'s own): the paths above
 * blanked, and every token-shaped secret blanked in each line as it is written, wherever it came from.
 */
export const LOG_SAFETY = {
  redact: { paths: REDACT_PATHS, censor: CENSOR },
  hooks: { streamWrite: redactSecrets },
};

/** How the request logger shows a request: the URL with secrets blanked (`redact.ts`). */
const LOG_SERIALIZERS = { req: requestLogView };

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
  /** Failed authentications a source may have per window before it is answered 429 (default 100 a minute). */
  readonly authFailures?: AuthFailureLimits;
  /** The window of the aggregated audit of unauthenticated denials (default one minute). */
  readonly deniedAuditWindowMs?: number;
  /** Serve HTTPS with this PEM certificate chain and key (`serve --tls-cert/--tls-key`); default plain HTTP. */
  readonly https?: { readonly cert: Buffer; readonly key: Buffer };
}

declare module "fastify" {
  interface FastifyInstance {
    /** Every route as registered, with its permission and audit action (tests derive the auth matrix from it). */
    readonly routeEntries: readonly RouteEntry[];
    /** The aggregated audit of unauthenticated denials: `flush()` writes the open windows now. */
    readonly deniedAudit: { flush(): Promise<void> };
  }
}

export type ApiApp = FastifyInstance;

function targetOf(request: FastifyRequest): string {
  const params = request.params as Record<string, unknown> | undefined;
  const id = params?.id;
  return typeof id === "string" ? redactSecrets(id) : "*";
}

/** A problem with token-shaped secrets blanked in its text members (a handler may quote a path id). */
function redactProblem(p: Problem): Problem {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) out[k] = typeof v === "string" ? redactSecrets(v) : v;
  return out as Problem;
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
            ...LOG_SAFETY,
            serializers: {
              ...(typeof options.logger === "object" ? options.logger.serializers : {}),
              ...LOG_SERIALIZERS,
            },
          }
      : undefined;
  // A given logger keeps its options; a child adds the request serializer, which fastify's own `req` yields to.
  const loggerInstance = options.loggerInstance?.child({}, { serializers: LOG_SERIALIZERS });
  const app = Fastify({
    ...(logger === undefined ? {} : { logger }),
    ...(loggerInstance === undefined ? {} : { loggerInstance }),
    ...(options.https === undefined ? {} : { https: { cert: options.https.cert, key: options.https.key } }),
    bodyLimit: 1024 * 1024,
    // Request lines at debug unless the request failed (request-log.ts), instead of fastify's two at info.
    logController: new RequestLogController(),
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

  const limiter = new AuthFailureLimiter(options.authFailures ?? DEFAULT_AUTH_FAILURES);
  const deniedAudit = new DeniedRequestAudit({
    append: (entries) => inventory.audit.append(entries),
    onError: (e, summary) =>
      app.log.error({ err: errorSummary(e), ...summary }, "could not write the audit of denied requests"),
    ...(options.deniedAuditWindowMs === undefined ? {} : { windowMs: options.deniedAuditWindowMs }),
  });
  app.decorate("deniedAudit", { flush: () => deniedAudit.flush(true) });
  app.addHook("onClose", () => deniedAudit.close());
  // A damaged store (inventory/health.ts) refuses every write up front, before authentication: checking a token and
  // auditing a denial would write into the store. Neither audited nor logged per request: the store cannot take the
  // record, `serve` logged the damage once, and /readyz (public) names it anyway.
  app.addHook("onRequest", async (request, reply) => {
    const damage = inventory.damage;
    if (!MUTATING.has(request.method) || !refusesWrites(damage)) return;
    return reply
      .code(503)
      .type(PROBLEM_CONTENT_TYPE)
      .send(problem(503, damage.code, damage.message, { damage: damage.kind }));
  });
  installAuth(app, inventory, routes, limiter);
  requireDryRun(app);

  /**
   * Denied (401/403/429) and failed mutating requests get their audit record here; operation failures were audited
   * with the operation. Denials without a valid token are counted into the source's aggregate record.
   */
  async function auditRejected(request: FastifyRequest, p: Problem, alreadyAudited: boolean): Promise<void> {
    // A damaged store takes no records (reads that fail there are answered, not audited).
    if (alreadyAudited || request.routeOptions.url === undefined || refusesWrites(inventory.damage)) return;
    if (!request.principal && (p.status === 401 || p.status === 429)) {
      // The route as a client writes it: fastify's pattern escapes a literal ':' as '::' (`vms::bulk-update`).
      deniedAudit.record(
        sourceOf(request.ip),
        `${request.method} ${request.routeOptions.url.replaceAll("::", ":")}`,
        p.status,
        p.code,
      );
      return;
    }
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
    const p = redactProblem(alreadyAudited ? error.problem : toProblem(error, shownPath(request.url)));
    // A read failing on the damage `serve` already logged (a truncated file reads nothing) is no news per request.
    const knownDamage = refusesWrites(inventory.damage) && p.code === inventory.damage.code;
    if (p.status >= 500 && !knownDamage) request.log.error({ err: errorSummary(error) }, "request failed");
    await auditRejected(request, p, alreadyAudited);
    if (p.status === 401) reply.header("www-authenticate", 'Bearer realm="ciphervisor"');
    if (p.status === 429 && typeof p.retryAfter === "number")
      reply.header("retry-after", String(p.retryAfter));
    return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
  });

  app.setNotFoundHandler(async (request, reply) =>
    // A browser opening a dashboard page (`/vms`, a reload): the single-page application (dashboard.ts).
    isDashboardNavigation(request)
      ? sendDashboardIndex(reply)
      : reply
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
  imageRoutes(app, cp.context);
  attestationRoutes(app, deps);
  kdsRoutes(app, deps);
  operationRoutes(app, deps);
  adminRoutes(app, cp.context);
  systemRoutes(app, { cp, metrics, isReady: options.isReady ?? (() => true) });
  hypervisorViewRoutes(app, deps);
  consoleRoutes(app, deps);
  await registerDashboard(app);

  await app.register(swaggerUi, { routePrefix: "/docs" });
  await app.ready();
  return app;
}
