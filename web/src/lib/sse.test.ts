import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { apiClient } from "./api.ts";
import { isFinalStatus, SseParser, watchOperation } from "./sse.ts";

const op = (status: string, done: number) =>
  JSON.stringify({ id: "op_1", status, progress: { done, total: 2, ok: done, failed: 0 } });

describe("web: operation event stream", () => {
  it("parses frames cut anywhere, with CRLF and comments", () => {
    const p = new SseParser();
    assert.deepEqual(p.push("event: progress\nid: 0\nda"), []);
    assert.deepEqual(p.push('ta: {"a":1}\n\n: keep-alive\n\nevent: done\r\ndata: x\r\n\r\n'), [
      { event: "progress", id: "0", data: '{"a":1}' },
      { event: "done", data: "x" },
    ]);
  });

  it("reads the stream with the token in the Authorization header only, until 'done'", async () => {
    const seen: { url: string; auth: string | null }[] = [];
    const body = `event: progress\nid: 0\ndata: ${op("running", 1)}\n\nevent: done\nid: 2\ndata: ${op("succeeded", 2)}\n\n`;
    const fake: typeof fetch = async (input, init) => {
      seen.push({ url: String(input), auth: new Headers(init?.headers).get("authorization") });
      const bytes = new TextEncoder().encode(body);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes.slice(0, 17));
          c.enqueue(bytes.slice(17));
          c.close();
        },
      });
      return new Response(stream, { status: 200, headers: { "content-type": "text/event-stream" } });
    };
    const states: string[] = [];
    const last = await watchOperation(
      apiClient("cvt_secret", () => {}, fake),
      "op_1",
      (o) => states.push(o.status),
    );
    assert.deepEqual(states, ["running", "succeeded"]);
    assert.equal(last?.status, "succeeded");
    assert.deepEqual(seen, [{ url: "/v1/operations/op_1/events", auth: "Bearer cvt_secret" }]);
    assert.ok(!seen[0]!.url.includes("cvt_"), "never in the URL");
    assert.equal(isFinalStatus("running"), false);
    assert.equal(isFinalStatus("partially-failed"), true);
  });

  it("turns a problem answer into an ApiError with the problem's title and code", async () => {
    const fake: typeof fetch = async () =>
      new Response(
        JSON.stringify({ title: "Forbidden", status: 403, code: "FORBIDDEN", detail: "needs x" }),
        {
          status: 403,
          headers: { "content-type": "application/problem+json" },
        },
      );
    let signedOut = false;
    await assert.rejects(apiClient("t", () => (signedOut = true), fake).json("/v1/vms"), {
      message: "Forbidden (FORBIDDEN): needs x",
    });
    assert.equal(signedOut, false, "only a 401 signs out");
  });
});
