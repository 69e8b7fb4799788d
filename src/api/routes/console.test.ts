/**
 * `GET /v1/vms/{id}/console`: a reader sees what the guest wrote (control characters kept in the JSON, for the CLI
 * to escape), a VM without a host has an empty console, a libvirt host's console is refused with its code, and an
 * unknown VM is 404.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { json, withApi } from "../testing/api-fixture.ts";

describe("GET /v1/vms/{id}/console", () => {
  it("answers readers with the guest's console, empty off-host, refused for libvirt hosts", () =>
    withApi(async (a) => {
      await a.host("milan-1", "milan");
      const vm = await a.vm("web", "sev-es");
      const off = await a.call("viewer", "GET", `/v1/vms/${vm.id}/console`);
      assert.equal(off.statusCode, 200, off.body);
      assert.deepEqual(json(off), {
        vmId: vm.id,
        vm: "web",
        host: null,
        powerState: "off",
        console: "",
        dropped: 0,
      });

      assert.equal((await a.run("vm.power-on", { vmId: vm.id }, vm.id)).op.status, "succeeded");
      const on = json(await a.call("viewer", "GET", `/v1/vms/${vm.id}/console`));
      assert.equal(on["host"], "milan-1");
      assert.equal(on["powerState"], "running");
      assert.equal(on["console"], "OK\n", "the default workload's output, through the SEV-ES GHCB path");

      assert.equal((await a.call(null, "GET", `/v1/vms/${vm.id}/console`)).statusCode, 401);
      const missing = await a.call("viewer", "GET", "/v1/vms/00000000-0000-4000-8000-000000000000/console");
      assert.equal(missing.statusCode, 404);
      assert.equal(json(missing)["code"], "NOT_FOUND");

      const lv = await a.inventory.hosts.create({
        name: "lv-1",
        driver: "libvirt",
        address: "test:///default",
        cpuGeneration: "milan",
        sevAsids: 10,
        esAsids: 10,
      });
      const there = await a.vm("there", "none", { hostId: lv.id, powerState: "running" });
      const refused = await a.call("viewer", "GET", `/v1/vms/${there.id}/console`);
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(json(refused)["code"], "LIBVIRT_UNSUPPORTED");
    }));
});
