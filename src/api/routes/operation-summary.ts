/**
 * `GET /v1/operations/:id/summary`: an operation's outcome in one small answer — how many items ended ok (split
 * into changed and already-as-asked), how many failed, and every failed item with its code and reason. The CLI
 * prints a bulk result from it instead of paging 10,000 item results over HTTP when only the failures and the
 * counts are wanted; the store counts them without reading the ok items' results (`itemSummary`).
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { CiphervisorError } from "../../errors.ts";
import type { OperationDeps } from "../operation-response.ts";
import { errorResponses, IdParams, OperationSummarySchema } from "../schemas/common.ts";
import { itemView, operationView } from "../views.ts";

export function operationSummaryRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const inv = deps.cp.context.inventory;
  app.get(
    "/v1/operations/:id/summary",
    {
      config: { permission: "inventory.read", action: "operation.summary" },
      schema: {
        tags: ["operations"],
        summary: "Counts of ok (changed / already as asked) and failed items, and the failed items",
        params: IdParams,
        response: { 200: OperationSummarySchema, ...errorResponses },
      },
    },
    async (req) => {
      const op = await inv.operations.get(req.params.id);
      if (!op) throw new CiphervisorError("NOT_FOUND", `operation ${req.params.id} not found`);
      const { ok, unchanged, failures } = await inv.operations.itemSummary(op.id);
      return {
        operation: operationView(op),
        ok,
        changed: ok - unchanged,
        unchanged,
        failed: failures.length,
        failures: failures.map(itemView),
      };
    },
  );
}
