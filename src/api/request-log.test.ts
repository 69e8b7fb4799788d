import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { requestLogLevel } from "./request-log.ts";
import { withApi } from "./testing/api-fixture.ts";

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  req?: { url?: string };
  res?: { statusCode?: number };
}

function lines(text: string): Line[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);
}

describe("request log", () => {
  it("chooses debug for successes, warn for client errors, error for server errors", () => {
    assert.equal(requestLogLevel(200), "debug");
    assert.equal(requestLogLevel(304), "debug");
    assert.equal(requestLogLevel(404), "warn");
    assert.equal(requestLogLevel(429), "warn");
    assert.equal(requestLogLevel(500), "error");
  });

  it("logs a success at debug (hidden at info) and a failure at warn, naming the request", async () => {
    await withApi(async (a) => {
      assert.equal((await a.call(null, "GET", "/healthz")).statusCode, 200);
      assert.equal((await a.call("all", "GET", "/v1/vms/vm-nothing")).statusCode, 404);
      const all = lines(a.logs()).filter(
        (l) => l.msg === "incoming request" || l.msg === "request completed",
      );
      const byReq = new Map<string, Line[]>();
      for (const l of all) byReq.set(l.reqId ?? "", [...(byReq.get(l.reqId ?? "") ?? []), l]);
      const [health, missing] = [...byReq.values()];
      assert.deepEqual(
        health?.map((l) => [l.level, l.msg, l.req?.url ?? l.res?.statusCode]),
        [
          [20, "incoming request", "/healthz"],
          [20, "request completed", 200],
        ],
      );
      // The failure's completed line is at warn and names the request, since its incoming line is at debug.
      assert.deepEqual(
        missing?.map((l) => [l.level, l.msg, l.res?.statusCode]),
        [
          [20, "incoming request", undefined],
          [40, "request completed", 404],
        ],
      );
      assert.equal(missing?.[1]?.req?.url, "/v1/vms/vm-nothing");
      // At the default level (info = 30) only the failure is written.
      assert.deepEqual(
        all.filter((l) => l.level >= 30).map((l) => l.res?.statusCode),
        [404],
      );
    });
  });
});
