/**
 * `/healthz` (the process answers), `/readyz` (the inventory is healthy and the node serves), `/metrics`, and
 * `/v1/system/store-check` (an operator's on-demand quick or full integrity check of the inventory).
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { ControlPlane } from "../../control/control-plane.ts";
import type { ApiMetrics } from "../metrics.ts";
import { PROBLEM_CONTENT_TYPE, problem } from "../problem.ts";
import { errorResponses } from "../schemas/common.ts";

export interface SystemDeps {
  readonly cp: ControlPlane;
  readonly metrics: ApiMetrics;
  readonly isReady: () => boolean;
}

const Status = Type.Object({ status: Type.String() });

const StoreCheck = Type.Object({
  status: Type.Union([Type.Literal("ok"), Type.Literal("damaged")]),
  check: Type.Union([Type.Literal("quick"), Type.Literal("full")]),
  damage: Type.Optional(
    Type.Object({
      kind: Type.String(),
      code: Type.String(),
      message: Type.String(),
      findings: Type.Array(Type.String()),
    }),
  ),
  ms: Type.Number(),
});

/**
 * How old a quick_check `/readyz` may reuse. It blocks the event loop ≈ 0.2 s at 200,000 VMs; a probe every few
 * seconds would spend a tenth of the node on it. The file and write-access checks still run on every probe.
 */
export const READY_QUICK_CHECK_MAX_AGE_MS = 60_000;

export function systemRoutes(app: FastifyInstance, deps: SystemDeps): void {
  app.get(
    "/healthz",
    {
      config: { permission: "public", action: "health.read" },
      schema: { tags: ["system"], summary: "Liveness", security: [], response: { 200: Status } },
    },
    async () => ({ status: "ok" }),
  );

  app.get(
    "/readyz",
    {
      config: { permission: "public", action: "ready.read" },
      schema: {
        tags: ["system"],
        summary: "Readiness: the inventory answers",
        security: [],
        response: { 200: Status, 503: { $ref: "Problem#" } },
      },
    },
    async (_req, reply) => {
      const notReady = (code: string, detail: string, extra: Record<string, unknown> = {}) =>
        reply
          .code(503)
          .type(PROBLEM_CONTENT_TYPE)
          .send(problem(503, code, detail, extra));
      if (!deps.isReady()) return notReady("IO", "not ready: the node is shutting down");
      const inventory = deps.cp.context.inventory;
      try {
        const damage = await inventory.check({ maxAgeMs: READY_QUICK_CHECK_MAX_AGE_MS });
        if (damage) return notReady(damage.code, `not ready: ${damage.message}`, { damage: damage.kind });
        await inventory.audit.head();
      } catch {
        return notReady("IO", "not ready: the inventory does not answer");
      }
      return { status: "ready" };
    },
  );

  app.get(
    "/v1/system/store-check",
    {
      config: { permission: { anyOf: ["audit.read", "host.manage"] }, action: "store.check" },
      schema: {
        tags: ["system"],
        summary: "Check the inventory now: quick_check, or the full integrity_check with full=true (slow)",
        querystring: Type.Object({ full: Type.Optional(Type.Boolean({ default: false })) }),
        response: { 200: StoreCheck, ...errorResponses },
      },
    },
    async (req) => {
      const full = (req.query as { full?: boolean }).full === true;
      const t0 = performance.now();
      const damage = await deps.cp.context.inventory.check({ full });
      const ms = Math.round(performance.now() - t0);
      return {
        status: damage ? "damaged" : "ok",
        check: full ? "full" : "quick",
        ...(damage ? { damage: { ...damage, findings: [...damage.findings] } } : {}),
        ms,
      };
    },
  );

  app.get(
    "/metrics",
    {
      config: { permission: "inventory.read", action: "metrics.read" },
      schema: {
        tags: ["system"],
        summary: "Prometheus metrics (text exposition format)",
        produces: ["text/plain"],
        response: { 200: Type.String(), ...errorResponses },
      },
    },
    async (_req, reply) =>
      reply.type("text/plain; version=0.0.4; charset=utf-8").send(await deps.metrics.render(deps.cp)),
  );
}
