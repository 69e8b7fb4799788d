/**
 * Answering a mutating request with its operation (or, on a dry run, with its plan). Long kinds (bulk updates, drains) and requests that prefer
 * `respond-async` get 202 with the operation and a `Location` to poll or stream. Short kinds are awaited (up to
 * a bound, then 202 as well): a success answers with the operation and its results; a single-item operation
 * that failed answers with that item's problem (e.g. 409 NO_VALID_HOST with a reason per host), carrying the
 * operation id.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { type ControlPlane, OPERATION_KINDS, type OperationKind } from "../control/control-plane.ts";
import type { OperationItem } from "../control/inventory/types.ts";
import type { JsonObject } from "../control/json.ts";
import { isFinal } from "../control/operations/engine.ts";
import { scopedKey } from "../control/operations/submit.ts";
import type { RequestPlan } from "../control/plan/evaluate.ts";
import type { Plan } from "../control/plan/types.ts";
import { CiphervisorError } from "../errors.ts";
import { answerDryRun, isDryRun } from "./dry-run.ts";
import { ProblemError, problem, statusForCode } from "./problem.ts";
import { itemView, operationView } from "./views.ts";

export interface OperationDeps {
  readonly cp: ControlPlane;
  /** How long a short operation is awaited before answering 202. */
  readonly syncWaitMs: number;
}

export interface SubmitSpec {
  readonly kind: OperationKind;
  readonly params: JsonObject;
  readonly target: string;
  readonly total?: number;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The failed item of a one-item operation as a problem. */
function itemProblem(item: OperationItem, operationId: string, instance: string): ProblemError {
  const code = item.code ?? "INTERNAL";
  const status = statusForCode(code);
  const details = item.details ?? {};
  const ext: Record<string, unknown> = { operationId, instance };
  for (const k of ["findings", "candidates", "permissions", "powerState"])
    if (details[k] !== undefined) ext[k] = details[k];
  return new ProblemError(
    problem(status, code, status >= 500 ? "internal error" : (item.reason ?? code), ext),
  );
}

export interface RespondOptions {
  /**
   * The request's plan (`control/plan/`): on a dry run it is the answer; on a real request its refusal, if any, is
   * answered before anything is queued (409 with the refusal's code). Skipped when the Idempotency-Key names an
   * operation already queued: a retry gets that operation's answer, even if the VM has moved on since.
   */
  readonly plan?: () => Promise<RequestPlan>;
  /**
   * The dry run of a request that is never refused before it is queued (the bulk operations: each item is judged
   * by the operation itself), so the plan is computed only when asked for.
   */
  readonly dryRun?: () => Promise<Plan>;
  /**
   * Extra members of a successful answer (e.g. the created VM); `status: 201` makes it a 201 and `location` points
   * the Location header at the created resource instead of the operation.
   */
  readonly onSuccess?: (results: OperationItem[]) => Promise<Record<string, unknown>>;
}

/**
 * Submits the operation and answers (see the module comment); on `?dryRun=true` answers the plan instead. A
 * reused Idempotency-Key with a different request is a 409 CONFLICT.
 */
export async function submitAndRespond(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: OperationDeps,
  spec: SubmitSpec,
  options: RespondOptions = {},
): Promise<unknown> {
  const principal = request.principal;
  if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
  const inventory = deps.cp.context.inventory;
  if (isDryRun(request)) {
    const plan = options.dryRun ? await options.dryRun() : (await options.plan?.())?.plan;
    if (!plan) throw new CiphervisorError("INTERNAL", `${spec.kind} has no dry run`);
    return answerDryRun(request, reply, inventory, plan);
  }
  const key = headerString(request.headers["idempotency-key"]);
  const scoped = scopedKey(principal.actor, key);
  const replay = scoped === null ? undefined : await inventory.operations.getByIdempotencyKey(scoped);
  if (!replay && options.plan) {
    const { refusal } = await options.plan();
    if (refusal) throw refusal;
  }
  const onSuccess = options.onSuccess;
  const { operation } = await deps.cp.submit({
    kind: spec.kind,
    actor: principal.actor,
    params: spec.params,
    target: spec.target,
    ...(spec.total === undefined ? {} : { total: spec.total }),
    idempotencyKey: key ?? null,
  });
  const location = `/v1/operations/${operation.id}`;
  const prefersAsync = /(^|[\s,])respond-async([\s,;]|$)/i.test(headerString(request.headers.prefer) ?? "");
  if (OPERATION_KINDS[spec.kind].long || prefersAsync) {
    return reply
      .code(202)
      .header("location", location)
      .send({ operation: operationView(operation) });
  }
  const op = await deps.cp.engine.waitFor(operation.id, deps.syncWaitMs);
  if (!isFinal(op))
    return reply
      .code(202)
      .header("location", location)
      .send({ operation: operationView(op) });
  const items = (await deps.cp.context.inventory.operations.items(op.id, { limit: 100 })).items;
  const failed = items.find((i) => i.outcome === "failed");
  if (op.status === "failed" && failed && items.length === 1) throw itemProblem(failed, op.id, request.url);
  if (op.status === "failed" && op.error) {
    throw new ProblemError(
      problem(statusForCode(op.error.code), op.error.code, op.error.message, {
        operationId: op.id,
        instance: request.url,
      }),
    );
  }
  const extra = onSuccess && op.status === "succeeded" ? await onSuccess(items) : {};
  const { status, location: resource, ...members } = extra;
  return reply
    .code(status === 201 ? 201 : 200)
    .header("location", typeof resource === "string" ? resource : location)
    .send({ operation: operationView(op), results: items.map(itemView), ...members });
}
