/** Conversion between operations/items and their rows. */
import { createHash } from "node:crypto";
import type { Selectable } from "kysely";
import { canonicalJson, type JsonObject, parseStoredJson } from "../../json.ts";
import {
  ITEM_OUTCOMES,
  type NewOperation,
  OPERATION_STATUSES,
  type Operation,
  type OperationError,
  type OperationItem,
} from "../types.ts";
import { oneOf } from "../validate.ts";
import type { OperationItemTable, OperationTable } from "./schema.ts";

export function toOperation(r: Selectable<OperationTable>): Operation {
  return {
    id: r.id,
    kind: r.kind,
    status: oneOf(r.status, OPERATION_STATUSES, "status"),
    idempotencyKey: r.idempotency_key,
    actor: { id: r.actor_id, name: r.actor_name },
    params: parseStoredJson<JsonObject>(r.params, "operation params"),
    total: Number(r.total),
    done: Number(r.done),
    okCount: Number(r.ok_count),
    failedCount: Number(r.failed_count),
    error: r.error === null ? null : parseStoredJson<OperationError>(r.error, "operation error"),
    claimedBy: r.claimed_by,
    leaseUntil: r.lease_until,
    attempts: Number(r.attempts),
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
  };
}

export function toOperationItem(r: Selectable<OperationItemTable>): OperationItem {
  return {
    operationId: r.operation_id,
    target: r.target,
    outcome: oneOf(r.outcome, ITEM_OUTCOMES, "outcome"),
    code: r.code,
    reason: r.reason,
    details: r.details === null ? null : parseStoredJson<JsonObject>(r.details, "operation item details"),
    recordedAt: r.recorded_at,
  };
}

/**
 * Fingerprint of a request for idempotency: the same key with the same kind, actor and parameters is a retry;
 * with anything else it is a client bug, reported as CONFLICT rather than silently returning another operation.
 */
export function requestHash(op: NewOperation): string {
  const body = canonicalJson({ kind: op.kind, actorId: op.actor.id, params: op.params ?? {} });
  return createHash("sha256").update(body, "utf8").digest("hex");
}
