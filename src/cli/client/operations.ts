/**
 * Operations from the client's side: follow an operation to its end — streaming its server-sent events, or polling
 * when streaming is not available — and read its per-item results page by page.
 */
import type { ApiClient } from "./http.ts";
import { RemoteError } from "./remote-error.ts";
import type { ApiItem, ApiOperation, OperationSummary, Page } from "./types.ts";

export const FINAL_STATUSES: readonly ApiOperation["status"][] = [
  "succeeded",
  "partially-failed",
  "failed",
  "cancelled",
];

export function isFinal(op: ApiOperation): boolean {
  return FINAL_STATUSES.includes(op.status);
}

export interface FollowOptions {
  /** Called with every new state. */
  readonly onUpdate?: (op: ApiOperation) => void;
  /** Stop following (the operation goes on on the server). */
  readonly signal?: AbortSignal;
  /** Polling interval when streaming is not available (default 200 ms). */
  readonly pollMs?: number;
}

/** Parses a server-sent event stream into (event, data) pairs. */
async function* sse(body: AsyncIterable<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length > 0) yield { event, data: data.join("\n") };
      end = buffer.indexOf("\n\n");
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Follows operation `id` until it is final (or `signal` aborts) and returns its last known state. Streams
 * `/events`; if the stream cannot be opened or breaks, polls.
 */
export async function follow(api: ApiClient, id: string, options: FollowOptions = {}): Promise<ApiOperation> {
  let last: ApiOperation | undefined;
  const seen = (op: ApiOperation) => {
    last = op;
    options.onUpdate?.(op);
  };
  try {
    const res = await api.open(`/v1/operations/${id}/events`, options.signal);
    for await (const ev of sse(res.stream)) {
      const op = JSON.parse(ev.data) as ApiOperation;
      seen(op);
      if (ev.event === "done" || isFinal(op)) return op;
    }
  } catch (e) {
    if (options.signal?.aborted && last) return last;
    // A 404 for the operation itself is final; anything else (no streaming, a proxy cutting the stream) → poll.
    if (e instanceof RemoteError && e.status === 404 && e.shownCode === "NOT_FOUND" && !last) throw e;
  }
  for (;;) {
    if (options.signal?.aborted && last) return last;
    const op = await api.get<ApiOperation>(`/v1/operations/${id}`);
    seen(op);
    if (isFinal(op)) return op;
    await sleep(options.pollMs ?? 200, options.signal);
  }
}

/** Every item result of an operation (optionally only failed or ok ones). */
export async function allItems(api: ApiClient, id: string, outcome?: "ok" | "failed"): Promise<ApiItem[]> {
  const out: ApiItem[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<ApiItem> = await api.get<Page<ApiItem>>(`/v1/operations/${id}/items`, {
      query: { limit: 5000, cursor },
    });
    for (const i of page.items) if (outcome === undefined || i.outcome === outcome) out.push(i);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

/** `GET /v1/operations/:id/summary`: counts and the failed items, without paging every result. */
export function summary(api: ApiClient, id: string): Promise<OperationSummary> {
  return api.get<OperationSummary>(`/v1/operations/${id}/summary`);
}
