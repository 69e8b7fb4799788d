/**
 * An operation's live progress (`GET /v1/operations/{id}/events`, server-sent events). EventSource cannot send an
 * Authorization header and the token must never go into a URL, so the stream is read with fetch: a parser turns
 * the text into frames, and `watchOperation` calls back with each operation state until the `done` event.
 */
import type { ApiClient } from "./api.ts";
import type { Operation } from "./types.ts";

export interface SseFrame {
  readonly event: string;
  readonly id?: string;
  readonly data: string;
}

/**
 * An incremental text/event-stream parser (WHATWG HTML §9.2.6, the parts this API uses): feed it text as it
 * arrives, in chunks cut anywhere; it returns each complete frame once.
 */
export class SseParser {
  #buffer = "";

  push(text: string): SseFrame[] {
    this.#buffer += text.replace(/\r\n?/g, "\n");
    const frames: SseFrame[] = [];
    let end = this.#buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      const frame = parseBlock(block);
      if (frame) frames.push(frame);
      end = this.#buffer.indexOf("\n\n");
    }
    return frames;
  }
}

function parseBlock(block: string): SseFrame | undefined {
  let event = "message";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return undefined;
  return { event, ...(id === undefined ? {} : { id }), data: data.join("\n") };
}

/** Streams `opId`'s states to `onState` until it is final; resolves with the final state. */
export async function watchOperation(
  client: ApiClient,
  opId: string,
  onState: (op: Operation) => void,
  signal?: AbortSignal,
): Promise<Operation | undefined> {
  const res = await client.raw(`/v1/operations/${encodeURIComponent(opId)}/events`, {
    headers: { accept: "text/event-stream" },
    ...(signal ? { signal } : {}),
  });
  if (!res.body) return undefined;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let last: Operation | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return last;
      for (const frame of parser.push(decoder.decode(value, { stream: true }))) {
        last = JSON.parse(frame.data) as Operation;
        onState(last);
        if (frame.event === "done") return last;
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** The engine's final statuses (FINAL_OPERATION_STATUSES of the control plane). */
export const FINAL_STATUSES: readonly string[] = ["succeeded", "partially-failed", "failed", "cancelled"];

/** True once an operation has ended. */
export function isFinalStatus(status: string): boolean {
  return FINAL_STATUSES.includes(status);
}
