/**
 * Idempotency-Key is scoped to the caller (src/control/operations/submit.ts; the header is the IETF
 * httpapi-idempotency-key draft): the same key sent by two different tokens is two requests and queues two
 * operations — otherwise one caller could suppress, or learn about, another's request by guessing its key — while
 * the same key from the same token, for the same request, answers the operation it queued first and audits nothing
 * new. app.test.ts covers the replay for one caller; this file adds the second caller.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Role } from "../control/rbac.ts";
import { json, withApi } from "./testing/api-fixture.ts";

describe("Idempotency-Key is per caller", () => {
  it("two tokens, one key: two operations; the same token again: its first operation", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      const vm = await a.vm("web-1");
      assert.equal((await a.run("vm.power-on", { vmId: vm.id }, vm.id)).op.status, "succeeded");
      const key = "restart-web-1";
      const restart = async (as: Role | "all") => {
        const r = await a.call(as, "POST", `/v1/vms/${vm.id}/restart`, undefined, {
          "idempotency-key": key,
          prefer: "respond-async",
        });
        assert.equal(r.statusCode, 202, r.body);
        return String((json(r).operation as { id: string }).id);
      };
      const created = async () =>
        (await a.inventory.audit.list({ action: "operation.create" }, { limit: 1000 })).items.filter(
          (r) => r.target === vm.id && r.details.kind === "vm.restart",
        );

      const mine = await restart("operator");
      const theirs = await restart("all");
      assert.notEqual(theirs, mine, "another caller's key must not answer my operation");
      const ops = await Promise.all([mine, theirs].map((id) => a.cp.engine.waitFor(id, 30_000)));
      assert.notEqual(ops[0]?.actor.id, ops[1]?.actor.id, "each operation is its caller's");
      assert.equal((await created()).length, 2, "both requests were queued and audited");

      // The same caller retrying with the same key gets its first operation back, and nothing new is queued.
      assert.equal(await restart("operator"), mine);
      assert.equal(await restart("all"), theirs);
      assert.equal((await created()).length, 2, "a replay audits nothing");
      const listed = json(await a.call("viewer", "GET", "/v1/operations?kind=vm.restart")).items as unknown[];
      assert.equal(listed.length, 2);
    }));
});
