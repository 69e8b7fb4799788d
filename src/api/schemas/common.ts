/** Schemas shared by every route: problems, pagination, ids, the operation envelope. */
import { type TSchema, type TStringOptions, Type } from "typebox";
import { ITEM_OUTCOMES, OPERATION_STATUSES } from "../../control/inventory/types.ts";

/**
 * Free text in a request (label keys and values, addresses, ids, filters, cursors): any character but the C0 and
 * C1 control characters and DEL. Nothing the API stores can then carry a terminal escape sequence, a bell or a line
 * break into a table, a log line or an audit record. `problem.ts` names the rule in the field error.
 */
export const TEXT_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";

/** A free-text request string (`TEXT_PATTERN`) with the given limits. */
export function Text(options: Omit<TStringOptions, "pattern"> = {}) {
  return Type.String({ ...options, pattern: TEXT_PATTERN });
}

/** RFC 9457 problem details, with ciphervisor's stable `code` and field errors. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: "urn:ciphervisor:problem:<CODE>" }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: "A stable code: an error code or an operation-table refusal code" }),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          in: Type.String({ description: "body, querystring, params or headers" }),
          path: Type.String({ description: "JSON Pointer to the field" }),
          message: Type.String(),
        }),
      ),
    ),
  },
  { additionalProperties: true, $id: "Problem", description: "application/problem+json" },
);

/** The error responses every authenticated route can give. */
export const errorResponses = {
  "4xx": { $ref: "Problem#" },
  "5xx": { $ref: "Problem#" },
} as const;

export const IdParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$" }),
});

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 100 })),
  cursor: Type.Optional(Text({ maxLength: 512 })),
};

/** A page of `item`: items in stable order and the opaque cursor of the next page (null on the last). */
export function PageOf<T extends TSchema>(item: T, name: string) {
  return Type.Object(
    { items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) },
    { title: name },
  );
}

/** The Idempotency-Key and Prefer request headers of every mutating route. */
export const MutatingHeaders = Type.Object({
  "idempotency-key": Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: "^[\\x21-\\x7e]+$",
      description: "Same key and same request → the same operation (retries are safe)",
    }),
  ),
  prefer: Type.Optional(Text({ maxLength: 200, description: "respond-async: answer 202 at once" })),
});

export const OperationSchema = Type.Object(
  {
    id: Type.String(),
    kind: Type.String(),
    /** A stored status, or `resuming`: running, but its node is gone and another takes it over at `takeoverAt`. */
    status: Type.Enum([...OPERATION_STATUSES, "resuming"]),
    takeoverAt: Type.Optional(
      Type.String({ description: "when resuming: the lease's expiry, when a node takes the operation over" }),
    ),
    resumeReason: Type.Optional(
      Type.Enum(["lease-expired", "holder-exited", "holder-restarted", "renewal-missed", "store-outage"], {
        description:
          "when resuming: how the node was found gone, or store-outage: the store went away under the run, which resumes after a backoff",
      }),
    ),
    actor: Type.Object({ id: Type.Union([Type.String(), Type.Null()]), name: Type.String() }),
    params: Type.Record(Type.String(), Type.Unknown()),
    progress: Type.Object({
      done: Type.Integer(),
      total: Type.Integer(),
      ok: Type.Integer(),
      failed: Type.Integer(),
    }),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
    attempts: Type.Integer(),
    createdAt: Type.String(),
    startedAt: Type.Union([Type.String(), Type.Null()]),
    finishedAt: Type.Union([Type.String(), Type.Null()]),
    links: Type.Object({ self: Type.String(), items: Type.String(), events: Type.String() }),
  },
  { $id: "Operation" },
);

export const OperationItemSchema = Type.Object(
  {
    target: Type.String(),
    outcome: Type.Enum([...ITEM_OUTCOMES]),
    code: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    recordedAt: Type.String(),
  },
  { $id: "OperationItem" },
);

/** What a mutating route answers: the operation, and once it finished, its first results. */
export const OperationResponse = Type.Object({
  operation: Type.Ref("Operation"),
  results: Type.Optional(Type.Array(Type.Ref("OperationItem"))),
});

/** `GET /v1/operations/:id/summary`. */
export const OperationSummarySchema = Type.Object({
  operation: Type.Ref("Operation"),
  ok: Type.Integer(),
  changed: Type.Integer({ description: "ok items that changed something" }),
  unchanged: Type.Integer({ description: "ok items that were already as asked" }),
  failed: Type.Integer(),
  failures: Type.Array(Type.Ref("OperationItem"), { description: "every failed item, in target order" }),
});
