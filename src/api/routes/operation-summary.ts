/**
 * `GET /v1/operations/:id/summary`: an operation's outcome in one small answer — how many items ended ok (split
 * into changed and already-as-asked), how many failed, and every failed item with its code and reason. The CLI
 * prints a bulk result from it instead of paging 10,000 item results over HTTP when only the failures and the
 * counts are wanted.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import type { OperationItem } from "../../control/inventory/types.ts";
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
      let ok = 0;
      let unchanged = 0;
      const failures: OperationItem[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: OperationItem[]; nextCursor: string | null } = await inv.operations.items(
          op.id,
          {
            limit: 5000,
            cursor,
          },
        );
        for (const i of page.items) {
          if (i.outcome === "failed") failures.push(i);
          else {
            ok++;
            // Runners mark an item that needed no change with a truthy `unchanged` (true, or why).
            if (i.details?.unchanged) unchanged++;
          }
        }
        cursor = page.nextCursor;
      } while (cursor !== null);
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
