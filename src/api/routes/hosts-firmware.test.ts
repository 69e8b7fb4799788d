/**
 * The SEV firmware version on the host record: `GET /v1/hosts` and `/v1/hosts/{id}` show it to every role that
 * reads hosts (a viewer too, who may not read sev-info), it matches what the host's firmware reports, and reaching
 * the host again (sev-info) brings a stale record up to date.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { json, withApi } from "../testing/api-fixture.ts";

interface Firmware {
  apiMajor: number;
  apiMinor: number;
  build: number;
}

describe("host firmware version", () => {
  it("is in a viewer's host JSON, list and read, as the host's PLATFORM_STATUS reports it", () =>
    withApi(async (a) => {
      const id = await a.host("milan-1", "milan");
      const info = await a.call("attestation-reader", "GET", `/v1/hosts/${id}/sev-info`);
      assert.equal(info.statusCode, 200, info.body);
      const reported = (json(info) as { firmware: Firmware }).firmware;
      assert.ok(Number.isInteger(reported.apiMajor) && Number.isInteger(reported.build));

      // The viewer may not read sev-info, but sees the version on the host itself.
      assert.equal((await a.call("viewer", "GET", `/v1/hosts/${id}/sev-info`)).statusCode, 403);
      const one = await a.call("viewer", "GET", `/v1/hosts/${id}`);
      assert.equal(one.statusCode, 200, one.body);
      assert.deepEqual(json(one).firmware, reported);
      const list = json(await a.call("viewer", "GET", "/v1/hosts")) as {
        items: { id: string; firmware: unknown }[];
      };
      assert.deepEqual(list.items.find((h) => h.id === id)?.firmware, reported);
    }));

  it("is filled again when the host is reached, for a record without it (registered by an older release)", () =>
    withApi(async (a) => {
      const id = await a.host("rome-1", "rome");
      const reported = json(await a.call("viewer", "GET", `/v1/hosts/${id}`)).firmware;
      assert.ok(reported !== null && typeof reported === "object");
      await a.inventory.hosts.update(id, { firmware: null });
      assert.equal(json(await a.call("viewer", "GET", `/v1/hosts/${id}`)).firmware, null);
      assert.equal((await a.call("attestation-reader", "GET", `/v1/hosts/${id}/sev-info`)).statusCode, 200);
      assert.deepEqual(json(await a.call("viewer", "GET", `/v1/hosts/${id}`)).firmware, reported);
    }));
});
