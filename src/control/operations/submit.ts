/**
 * Queuing a request as an operation. The operation and the audit record of the request are written in one
 * transaction; a retried request with the same `Idempotency-Key` returns the operation already queued (and
 * audits nothing new). Keys are scoped to the caller, so two people cannot collide on, or probe, each other's keys.
 */
import type { Inventory } from "../inventory/inventory.ts";
import type { Actor, CreatedOperation } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";

export interface SubmitRequest {
  readonly kind: string;
  readonly actor: Actor;
  /** What the runner needs; stored, shown to readers, part of the idempotency check. Never secrets. */
  readonly params: JsonObject;
  /** The object the request is about (VM or host id, `*` for a selector), for the audit record. */
  readonly target: string;
  readonly total?: number;
  readonly idempotencyKey?: string | null;
}

/** The stored idempotency key: the caller's key scoped to the caller. */
export function scopedKey(actor: Actor, key: string | null | undefined): string | null {
  if (key === undefined || key === null || key === "") return null;
  return `${actor.id ?? "system"}/${key}`;
}

/**
 * Queues an operation and audits the request.
 *
 * @example
 * ```ts
 * const { operation, created } = await submitOperation(inventory, {
 *   kind: "vm.power-on", actor, params: { vmId }, target: vmId, idempotencyKey: req.headers["idempotency-key"],
 * });
 * ```
 */
export function submitOperation(inventory: Inventory, req: SubmitRequest): Promise<CreatedOperation> {
  return inventory.transaction(async (tx) => {
    const created = await tx.operations.create({
      kind: req.kind,
      actor: req.actor,
      params: req.params,
      total: req.total ?? 1,
      idempotencyKey: scopedKey(req.actor, req.idempotencyKey),
    });
    if (created.created) {
      await tx.audit.append({
        actor: req.actor,
        action: "operation.create",
        target: req.target,
        outcome: "ok",
        details: { operationId: created.operation.id, kind: req.kind, params: req.params },
      });
    }
    return created;
  });
}
