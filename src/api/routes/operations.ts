/**
 * `/v1/operations`: poll an operation, page through its per-item results, stream its progress as server-sent
 * events (one `progress` event per change, then `done`), or cancel it while it is still queued.
 */
import { Readable } from "node:stream";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { OPERATION_STATUSES } from "../../control/inventory/types.ts";
import { isFinal } from "../../control/operations/engine.ts";
import { planCancel } from "../../control/plan/admin.ts";
import { CiphervisorError } from "../../errors.ts";
import { answerDryRun, DryRunQuery, isDryRun, orPlan } from "../dry-run.ts";
import type { OperationDeps } from "../operation-response.ts";
import { errorResponses, IdParams, PageOf, PageQuery, Text } from "../schemas/common.ts";
import { itemView, operationView } from "../views.ts";

export function operationRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const inv = deps.cp.context.inventory;
  const engine = deps.cp.engine;

  const mustGet = async (id: string) => {
    const op = await inv.operations.get(id);
    if (!op) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
    return op;
  };

  app.get(
    "/v1/operations",
    {
      config: { permission: "inventory.read", action: "operation.list" },
      schema: {
        tags: ["operations"],
        summary: "List operations (oldest first)",
        querystring: Type.Object(
          {
            ...PageQuery,
            status: Type.Optional(Type.Enum([...OPERATION_STATUSES])),
            kind: Type.Optional(Text({ maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: PageOf(Type.Ref("Operation"), "OperationPage"), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query;
      const page = await inv.operations.list(
        {
          ...(q.status === undefined ? {} : { status: q.status }),
          ...(q.kind === undefined ? {} : { kind: q.kind }),
        },
        { limit: q.limit ?? 100, cursor: q.cursor ?? null },
      );
      return {
        items: page.items.map((op) => operationView(op, engine.resumption(op))),
        nextCursor: page.nextCursor,
      };
    },
  );

  app.get(
    "/v1/operations/:id",
    {
      config: { permission: "inventory.read", action: "operation.read" },
      schema: {
        tags: ["operations"],
        summary: "Poll an operation",
        params: IdParams,
        response: { 200: Type.Ref("Operation"), ...errorResponses },
      },
    },
    async (req) => {
      const op = await mustGet(req.params.id);
      return operationView(op, engine.resumption(op));
    },
  );

  app.get(
    "/v1/operations/:id/items",
    {
      config: { permission: "inventory.read", action: "operation.items" },
      schema: {
        tags: ["operations"],
        summary: "Per-item results (ok, or failed with code and reason), by target",
        params: IdParams,
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: { 200: PageOf(Type.Ref("OperationItem"), "OperationItemPage"), ...errorResponses },
      },
    },
    async (req) => {
      await mustGet(req.params.id);
      const page = await inv.operations.items(req.params.id, {
        limit: req.query.limit ?? 100,
        cursor: req.query.cursor ?? null,
      });
      return { items: page.items.map(itemView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/operations/:id/events",
    {
      config: { permission: "inventory.read", action: "operation.stream" },
      schema: {
        tags: ["operations"],
        summary: "Stream progress as server-sent events: 'progress' per change, then 'done'",
        params: IdParams,
        produces: ["text/event-stream"],
        response: { 200: Type.String({ description: "text/event-stream" }), ...errorResponses },
      },
    },
    async (req, reply) => {
      await mustGet(req.params.id);
      const abort = new AbortController();
      req.raw.on("close", () => abort.abort());
      async function* events(): AsyncGenerator<string> {
        for await (const op of engine.watch(req.params.id, abort.signal)) {
          const event = isFinal(op) ? "done" : "progress";
          yield `event: ${event}\nid: ${op.done}\ndata: ${JSON.stringify(operationView(op, engine.resumption(op)))}\n\n`;
        }
      }
      reply.header("cache-control", "no-store").header("x-accel-buffering", "no").type("text/event-stream");
      return reply.send(Readable.from(events()));
    },
  );

  app.post(
    "/v1/operations/:id/cancel",
    {
      config: { permission: "operation.cancel", action: "operation.cancel" },
      schema: {
        tags: ["operations"],
        summary: "Cancel a queued operation (409 once it runs)",
        params: IdParams,
        querystring: DryRunQuery,
        response: { 200: orPlan(Type.Ref("Operation")), ...errorResponses },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
      const planned = await planCancel(deps.cp.context, req.params.id);
      if (isDryRun(req)) return answerDryRun(req, reply, inv, planned.plan);
      if (planned.refusal) throw planned.refusal;
      const op = await inv.transaction(async (tx) => {
        const cancelled = await tx.operations.cancel(req.params.id);
        await tx.audit.append({
          actor: principal.actor,
          action: "operation.cancel",
          target: cancelled.id,
          outcome: "ok",
          details: { kind: cancelled.kind },
        });
        return cancelled;
      });
      return operationView(op);
    },
  );
}
