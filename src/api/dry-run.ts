/**
 * Server-side dry runs, as `kubectl --dry-run=server`: every POST, PUT, PATCH and DELETE under `/v1` takes
 * `?dryRun=true`, runs the request's real checks and plan (`control/plan/`), answers 200 with the plan, changes
 * nothing, and writes exactly one audit record marked `dryRun`. A request a dry run cannot plan — malformed, about
 * an object that does not exist, or beyond the caller's permissions — is answered as the real request would be
 * (and its one audit record is marked `dryRun` too).
 *
 * `requireDryRun` enforces the rule where routes are registered: a mutating `/v1` route that does not accept
 * `dryRun` stops the server from starting, so a new route cannot forget it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type TSchema, Type } from "typebox";
import type { Inventory } from "../control/inventory/inventory.ts";
import type { Plan } from "../control/plan/types.ts";
import { CiphervisorError } from "../errors.ts";

export const DRY_RUN_DESCRIPTION =
  "true: run the request's checks and plan, change nothing, answer 200 with the plan (one audit record, marked dryRun)";

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The query string of a mutating route: `dryRun`, and nothing else. */
export const DryRunQuery = Type.Object(
  { dryRun: Type.Optional(Type.Boolean({ description: DRY_RUN_DESCRIPTION })) },
  { additionalProperties: false },
);

/** The 200 answer of a route whose real request also answers 200: the real shape, or the plan. */
export function orPlan(real: TSchema): TSchema {
  return Type.Union([real, Type.Ref("DryRunPlan")]);
}

export function isDryRun(request: FastifyRequest): boolean {
  return (request.query as { dryRun?: unknown } | undefined)?.dryRun === true;
}

/** Refuses to register a mutating `/v1` route whose query string does not declare `dryRun`. */
export function requireDryRun(app: FastifyInstance): void {
  app.addHook("onRoute", (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    if (!r.url.startsWith("/v1/") || !methods.some((m) => MUTATING.has(m))) return;
    const q = r.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
    if (q?.properties?.dryRun === undefined) {
      throw new Error(`${methods.join(",")} ${r.url} must accept ?dryRun (querystring: DryRunQuery)`);
    }
  });
}

function targetOf(request: FastifyRequest, plan: Plan): string {
  const id = (request.params as Record<string, unknown> | undefined)?.id;
  if (typeof id === "string") return id;
  return plan.items.length === 1 ? (plan.items[0]?.target ?? "*") : "*";
}

/** Audits the dry run (one record) and answers the plan. */
export async function answerDryRun(
  request: FastifyRequest,
  reply: FastifyReply,
  inventory: Inventory,
  plan: Plan,
): Promise<unknown> {
  const principal = request.principal;
  if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
  await inventory.audit.append({
    actor: principal.actor,
    action: request.routeOptions.config.action ?? `${request.method} ${request.routeOptions.url}`,
    target: targetOf(request, plan),
    outcome: "ok",
    details: {
      dryRun: true,
      method: request.method,
      route: request.routeOptions.url ?? "",
      total: plan.total,
      change: plan.change,
      unchanged: plan.unchanged,
      refused: plan.refused,
    },
  });
  return reply.code(200).send({ dryRun: true, ...plan });
}
