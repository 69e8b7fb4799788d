/**
 * The CLI's HTTP client against a real node:http server on 127.0.0.1: answers, problems, and every way an answer
 * can fail to come (refused, too slow, interrupted) each give their one code; a stream outlives the request
 * timeout once its headers arrived.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { ApiClient } from "./http.ts";
import { RemoteError } from "./remote-error.ts";

async function withServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server = createServer(handler);
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RemoteError, String(e));
    return e.shownCode;
  }
  assert.fail("no error");
}

describe("the CLI's HTTP client", () => {
  it("sends the token in the header and JSON both ways; a problem keeps its code and detail", () =>
    withServer(
      (req, res) => {
        let body = "";
        req.on("data", (c) => {
          body += String(c);
        });
        req.on("end", () => {
          if (req.url === "/v1/missing") {
            res.writeHead(404, { "content-type": "application/problem+json" });
            res.end(JSON.stringify({ status: 404, code: "NOT_FOUND", detail: "no VM 'x'\nsecond line" }));
            return;
          }
          res.writeHead(200, { "content-type": "application/json" });
          res.end(
            JSON.stringify({
              auth: req.headers.authorization,
              url: req.url,
              body: JSON.parse(body || "null"),
            }),
          );
        });
      },
      async (url) => {
        const api = new ApiClient({ server: url, token: "cvt_t" });
        const r = await api.post<{ auth: string; url: string; body: unknown }>(
          "/v1/echo",
          { a: 1 },
          { query: { limit: 5, cursor: null } },
        );
        assert.deepEqual(r, { auth: "Bearer cvt_t", url: "/v1/echo?limit=5", body: { a: 1 } });
        const e = await api.get("/v1/missing").catch((x: unknown) => x);
        assert.ok(e instanceof RemoteError);
        assert.equal(e.shownCode, "NOT_FOUND");
        assert.equal(e.message, "no VM 'x'");
      },
    ));

  it("says UNREACHABLE for a closed port, TIMEOUT for a silent server, INTERRUPTED when the user aborts", async () => {
    let closedUrl = "";
    await withServer(
      () => {},
      async (url) => {
        closedUrl = url;
      },
    );
    assert.equal(await codeOf(new ApiClient({ server: closedUrl }).get("/v1/vms")), "UNREACHABLE");
    await withServer(
      () => {},
      async (url) => {
        const api = new ApiClient({ server: url, timeoutMs: 150 });
        assert.equal(await codeOf(api.get("/v1/vms")), "TIMEOUT");
        const user = new AbortController();
        setTimeout(() => user.abort(), 50);
        assert.equal(
          await codeOf(api.get("/v1/vms", { signal: user.signal, timeoutMs: 5000 })),
          "INTERRUPTED",
        );
      },
    );
  });

  it("keeps a stream open past the request timeout once its headers came, and ends it on abort", () =>
    withServer(
      (_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("event: progress\ndata: 1\n\n");
        setTimeout(() => res.write("event: progress\ndata: 2\n\n"), 300);
      },
      async (url) => {
        const api = new ApiClient({ server: url, timeoutMs: 100 });
        const user = new AbortController();
        const res = await api.open("/v1/operations/op_1/events", user.signal);
        let text = "";
        try {
          for await (const chunk of res.stream) {
            text += chunk.toString("utf8");
            if (text.includes("data: 2")) user.abort();
          }
        } catch (e) {
          assert.ok(user.signal.aborted, String(e));
        }
        assert.match(text, /data: 1[\s\S]*data: 2/);
      },
    ));
});
