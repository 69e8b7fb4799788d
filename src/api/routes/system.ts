/** `/healthz` (the process answers), `/readyz` (the inventory answers and the node serves), `/metrics`. */
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
      let ok = deps.isReady();
      if (ok) {
        try {
          await deps.cp.context.inventory.audit.head();
        } catch {
          ok = false;
        }
      }
      if (ok) return { status: "ready" };
      return reply
        .code(503)
        .type(PROBLEM_CONTENT_TYPE)
        .send(problem(503, "IO", "not ready: the inventory does not answer or the node is shutting down"));
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
