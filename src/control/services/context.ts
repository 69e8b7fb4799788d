/**
 * What every control-plane service works with, and the few helpers they share: finding a VM or host, reaching a
 * host through its driver, and committing one item of an operation — the change, the item's result and its audit
 * record in one transaction, or the failure and its audit record.
 */
import { CiphervisorError, isCiphervisorError } from "../../errors.ts";
import type { DriverHost, DriverRegistry } from "../drivers/driver.ts";
import type { BlobStore } from "../images/blobs.ts";
import type { Inventory, InventoryScope } from "../inventory/inventory.ts";
import type { Actor, Host, Operation, OperationItemResult, Vm } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import type { Logger } from "../operations/types.ts";

export interface ControlContext {
  readonly inventory: Inventory;
  readonly drivers: DriverRegistry;
  readonly log: Logger;
  /** VMs handled at once inside one operation (drains, fleet-wide power changes). */
  readonly parallelism: number;
  /** VMs per transaction in bulk updates. */
  readonly batchSize: number;
  /** The image catalog's bytes, content-addressed (its records are in the inventory). */
  readonly blobs: BlobStore;
  /** The largest image an upload may be. */
  readonly maxImageBytes: number;
}

/** The actor of an operation's changes: whoever submitted it. */
export function actorOf(op: Operation): Actor {
  return op.actor;
}

export async function getVm(scope: Pick<InventoryScope, "vms">, id: string): Promise<Vm> {
  const vm = await scope.vms.get(id);
  if (!vm) throw new CiphervisorError("NOT_FOUND", `VM ${id} not found`, { details: { vm: id } });
  return vm;
}

export async function getHost(scope: Pick<InventoryScope, "hosts">, id: string): Promise<Host> {
  const host = await scope.hosts.get(id);
  if (!host) throw new CiphervisorError("NOT_FOUND", `host ${id} not found`, { details: { host: id } });
  return host;
}

/** The driver handle of an inventory host. */
export function connect(c: ControlContext, host: Host): Promise<DriverHost> {
  return c.drivers.connect(host.driver, host.address);
}

/** A string parameter of an operation (validated when the request was accepted; a bad row is internal). */
export function param(op: Operation, name: string): string {
  const v = op.params[name];
  if (typeof v !== "string")
    throw new CiphervisorError("INTERNAL", `operation ${op.id} lacks parameter ${name}`);
  return v;
}

/** An optional string parameter. */
export function optionalParam(op: Operation, name: string): string | undefined {
  const v = op.params[name];
  return typeof v === "string" ? v : undefined;
}

/** An item result for a failure: the error's code (a refusal's own, e.g. LIVE_MIGRATION_UNSUPPORTED) and details. */
export function failureResult(target: string, e: unknown): OperationItemResult {
  if (isCiphervisorError(e)) {
    const details = e.details === undefined ? null : (JSON.parse(JSON.stringify(e.details)) as JsonObject);
    return { target, outcome: "failed", code: e.code, reason: e.message, details };
  }
  return { target, outcome: "failed", code: "INTERNAL", reason: "internal error", details: null };
}

export interface AuditedItem {
  readonly action: string;
  readonly target: string;
  readonly details?: JsonObject;
}

/**
 * Records a failed item and its `failed` audit record together, with `undo` (putting a reserved VM back, say)
 * in the same transaction.
 */
export async function recordFailure(
  c: ControlContext,
  op: Operation,
  item: AuditedItem,
  error: unknown,
  undo?: (tx: InventoryScope) => Promise<unknown>,
): Promise<OperationItemResult> {
  const result = failureResult(item.target, error);
  await c.inventory.transaction(async (tx) => {
    if (undo) await undo(tx);
    await tx.operations.recordItems(op.id, [result]);
    await tx.audit.append({
      actor: op.actor,
      action: item.action,
      target: item.target,
      outcome: "failed",
      details: {
        operationId: op.id,
        code: result.code ?? "INTERNAL",
        reason: result.reason ?? "",
        ...item.details,
      },
    });
  });
  if (isCiphervisorError(error, "INTERNAL") || !isCiphervisorError(error)) {
    c.log.error({ op: op.id, target: item.target, code: result.code }, "operation item failed internally");
  }
  return result;
}

/**
 * Commits one successful item: `change` runs inside the transaction (the VM or host write), then the item result
 * and the audit record are appended — all or nothing.
 */
export async function commitItem<T>(
  c: ControlContext,
  op: Operation,
  item: AuditedItem & { readonly result?: JsonObject },
  change: (tx: InventoryScope) => Promise<T>,
): Promise<T> {
  return c.inventory.transaction(async (tx) => {
    const out = await change(tx);
    await tx.operations.recordItems(op.id, [
      { target: item.target, outcome: "ok", details: item.result ?? null },
    ]);
    await tx.audit.append({
      actor: op.actor,
      action: item.action,
      target: item.target,
      outcome: "ok",
      details: { operationId: op.id, ...item.details },
    });
    return out;
  });
}
