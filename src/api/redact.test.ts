/**
 * No token reaches a log line or a problem, wherever a client puts it (issue 13, bug 2): in the query string (named
 * like a credential or not, percent-encoded or not), in a path segment, in another header, or in a body a handler
 * quotes. The request still gets its usual answer.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CENSOR, loggedUrl, pathWithoutSecrets, redactSecrets } from "./redact.ts";
import { json, withApi } from "./testing/api-fixture.ts";

describe("tokens never reach a log line", () => {
  it("blanks a token sent in the URL, a path segment or another header, in logs and problems", () =>
    withApi(async (a) => {
      const secret = a.tokens.viewer;
      const tail = secret.slice(4);
      const attempts = [
        { url: `/v1/vms?token=${secret}` },
        { url: `/v1/vms?limit=5&access_token=${encodeURIComponent(secret)}` },
        { url: `/v1/vms?q=${secret.replace("_", "%5F")}` },
        { url: `/v1/vms/${secret}` },
        { url: "/v1/vms", headers: { "x-api-key": secret } },
      ];
      for (const { url, headers } of attempts) {
        const r = await a.app.inject({ method: "GET", url, ...(headers ? { headers } : {}) });
        assert.ok(r.statusCode === 401 || r.statusCode === 400, `${url}: ${r.statusCode}`);
        assert.ok(!r.body.includes(tail), `${url}: the answer quotes the token`);
      }
      // A valid token in the header, and one in the path of a route that quotes its id in the problem.
      const missing = await a.call("viewer", "GET", `/v1/vms/${secret}`);
      assert.equal(missing.statusCode, 404, missing.body);
      assert.ok(!missing.body.includes(tail), "a problem quotes the token");
      assert.equal(json(missing).code, "NOT_FOUND");
      const logs = a.logs();
      assert.ok(logs.includes("/v1/vms?token=[redacted]"), "the request is still logged");
      assert.ok(logs.includes("limit=5"), "other parameters are kept");
      assert.ok(!logs.includes(tail), "a token reached the log");
    }));
});

describe("redaction building blocks", () => {
  it("loggedUrl keeps the shape of a URL and blanks only what holds or names a credential", () => {
    assert.equal(loggedUrl("/v1/vms?limit=5&token=abc"), `/v1/vms?limit=5&token=${CENSOR}`);
    assert.equal(loggedUrl("/v1/vms?password=hunter2&sort=name"), `/v1/vms?password=${CENSOR}&sort=name`);
    assert.equal(loggedUrl("/v1/vms?x=CVT_abc"), `/v1/vms?x=${CENSOR}`);
    assert.equal(loggedUrl("/v1/vms/cvt%5Fabc/power-on"), `/v1/vms/${CENSOR}/power-on`);
    assert.equal(loggedUrl("/v1/vms?cvt_abc"), `/v1/vms?${CENSOR}`);
    assert.equal(loggedUrl("/v1/vms?limit=5"), "/v1/vms?limit=5");
    assert.ok(loggedUrl(`/v1/vms?q=${"a".repeat(5000)}`).length <= 2049);
  });

  it("redactSecrets and pathWithoutSecrets blank every token-shaped secret", () => {
    assert.equal(redactSecrets("bad token cvt_AbC-9_x in text"), `bad token ${CENSOR} in text`);
    assert.equal(redactSecrets("cvt%5fabc and Cvt_def"), `${CENSOR} and ${CENSOR}`);
    assert.equal(redactSecrets("no secret here"), "no secret here");
    assert.equal(pathWithoutSecrets("/v1/tokens/tok_1"), "/v1/tokens/tok_1");
    assert.equal(pathWithoutSecrets("/v1/vms/cvt_abc"), `/v1/vms/${CENSOR}`);
  });
});
