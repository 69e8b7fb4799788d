/**
 * Carrying out one request that the server runs as an operation: send it, follow it if the server answered before
 * it finished (202), and turn a failed item into the same error the server would have answered had it waited —
 * so a caller sees one outcome whatever the timing.
 */
import { randomUUID } from "node:crypto";
import type { ApiClient } from "./client/http.ts";
import { allItems, follow, isFinal } from "./client/operations.ts";
import { RemoteError } from "./client/remote-error.ts";
import type { ApiItem, ApiOperation, OperationAnswer } from "./client/types.ts";

export interface RunOptions {
  readonly method?: "POST" | "DELETE";
  readonly body?: unknown;
  /** Stops waiting (the operation goes on on the server). */
  readonly signal?: AbortSignal;
  readonly onUpdate?: (op: ApiOperation) => void;
}

export interface Completed {
  readonly operation: ApiOperation;
  readonly results: ApiItem[];
  readonly vm?: OperationAnswer["vm"];
}

/** The error of a failed one-item operation, with the item's code and reason. */
export function itemError(op: ApiOperation, item: ApiItem | undefined): RemoteError {
  if (item?.code) {
    return new RemoteError(item.code, 409, item.reason ?? item.code, {
      details: { operationId: op.id, ...(item.details ?? {}) },
    });
  }
  const e = op.error ?? { code: "INTERNAL", message: `operation ${op.id} ${op.status}` };
  return new RemoteError(e.code, 409, e.message, { details: { operationId: op.id } });
}

/** Sends the request and waits for its operation; RemoteError when it (or its only item) failed. */
export async function runOperation(
  api: ApiClient,
  path: string,
  options: RunOptions = {},
): Promise<Completed> {
  const method = options.method ?? "POST";
  const res = await api.request<OperationAnswer>(method, path, {
    headers: { "idempotency-key": `cli-${randomUUID()}` },
    ...(method === "POST" ? { body: options.body ?? {} } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let op = res.body.operation;
  let results = res.body.results;
  if (!isFinal(op)) {
    op = await follow(api, op.id, {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onUpdate ? { onUpdate: options.onUpdate } : {}),
    });
    results = isFinal(op) ? await allItems(api, op.id) : [];
  }
  const items = results ?? [];
  if (op.status === "failed" || op.status === "cancelled") {
    throw itemError(
      op,
      items.find((i) => i.outcome === "failed"),
    );
  }
  return { operation: op, results: items, ...(res.body.vm ? { vm: res.body.vm } : {}) };
}
