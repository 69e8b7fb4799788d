/**
 * The mapping of a lost PostgreSQL connection: refused, reset, timed out or dropped mid-query, it is the store
 * being unreachable (STORE_UNREACHABLE, HTTP 503), never an internal error (500) — whether pg reports it with a
 * socket errno, a SQLSTATE, or (its own errors) only a message.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { statusForCode } from "../../../api/problem.ts";
import { CiphervisorError } from "../../../errors.ts";
import { isConnectionLoss, isDriverError, mapDbError } from "./errors.ts";

function coded(code: string, message = "x"): Error {
  return Object.assign(new Error(message), { code });
}

describe("inventory errors: a lost PostgreSQL connection", () => {
  const lost: [string, Error][] = [
    ["a refused connection", coded("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432")],
    ["a reset connection", coded("ECONNRESET", "read ECONNRESET")],
    ["a write to a closed socket", coded("EPIPE", "write EPIPE")],
    ["a connect timeout", coded("ETIMEDOUT")],
    ["an unknown host", coded("ENOTFOUND")],
    ["SQLSTATE 08006 (connection failure)", coded("08006")],
    ["SQLSTATE 57P01 (terminated by the administrator)", coded("57P01")],
    ["pg: the connection ended mid-query", new Error("Connection terminated unexpectedly")],
    ["pg-pool: no connection in time", new Error("timeout exceeded when trying to connect")],
    ["pg-pool: connect timed out", new Error("Connection terminated due to connection timeout")],
    [
      "pg: a client after its connection error",
      new Error("Client has encountered a connection error and is not queryable"),
    ],
  ];
  for (const [what, e] of lost) {
    it(`${what} is STORE_UNREACHABLE (503)`, () => {
      assert.equal(isConnectionLoss(e), true);
      assert.equal(isDriverError(e), true, "a transaction maps it too");
      const mapped = mapDbError(e);
      assert.equal(mapped.code, "STORE_UNREACHABLE");
      assert.equal(statusForCode(mapped.code), 503);
      assert.equal(mapped.cause, e);
    });
  }

  it("leaves a wrong statement, an unrelated message and our own errors alone", () => {
    assert.equal(isConnectionLoss(coded("42601", "syntax error")), false);
    assert.equal(mapDbError(coded("42601", "syntax error")).code, "INTERNAL");
    assert.equal(isConnectionLoss(new Error("something else terminated")), false);
    assert.equal(isDriverError(new Error("a runner's own failure")), false);
    const ours = new CiphervisorError("CONFLICT", "Connection terminated");
    assert.equal(isConnectionLoss(ours), false);
    assert.equal(mapDbError(ours), ours);
  });
});
