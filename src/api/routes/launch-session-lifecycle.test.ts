/**
 * The stored launch session is one-shot: powering the VM off (here from the paused, attested launch), changing
 * its policy in bulk, or cloning it leaves no session behind — each in the transaction of that change.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../../crypto/random.ts";
import { createLaunchSession } from "../../owner/session.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** A powered-off SEV-ES VM on a Rome host with the owner's session stored (`session-set`). */
async function vmWithSession(a: ApiFixture, seed: string) {
  const hostId = await a.host(`rome-${seed}`, "rome");
  const vm = await a.vm(`vault-${seed}`, "sev-es", { hostId });
  const info = json(await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`));
  const pdh = new Uint8Array(Buffer.from(String(info.pdh), "base64"));
  const s = createLaunchSession(pdh, vm.policy, seededRandom(`owner-${seed}`));
  const put = await a.call("attestation-admin", "PUT", `/v1/vms/${vm.id}/launch-session`, {
    godhCert: b64(s.godhCert),
    session: b64(s.session),
  });
  assert.equal(put.statusCode, 200, put.body);
  const stored = await a.inventory.vms.get(vm.id);
  assert.equal(stored?.attestationState, "session-set");
  assert.ok(stored?.spec.launchSession, "the session is stored");
  return vm;
}

describe("launch session lifecycle", () => {
  it("powering off a VM paused for its owner drops the session with the power state", () =>
    withApi(async (a) => {
      const vm = await vmWithSession(a, "off");
      const on = await a.call("operator", "POST", `/v1/vms/${vm.id}/power-on`);
      assert.equal(on.statusCode, 200, on.body);
      const paused = await a.inventory.vms.get(vm.id);
      assert.deepEqual([paused?.powerState, paused?.spec.launchSession !== undefined], ["paused", true]);
      const off = await a.call("operator", "POST", `/v1/vms/${vm.id}/power-off`);
      assert.equal(off.statusCode, 200, off.body);
      const after = await a.inventory.vms.get(vm.id);
      assert.deepEqual([after?.powerState, after?.attestationState], ["off", "none"]);
      assert.equal(after?.spec.launchSession, undefined);
      assert.equal(after?.spec.attestation, true, "the VM still launches paused for its owner");
    }));

  it("a bulk policy change clears a session-set VM's session and its attestation state", () =>
    withApi(async (a) => {
      const vm = await vmWithSession(a, "bulk");
      const bystander = await a.vm("plain-es", "sev-es");
      const res = await a.call("all", "POST", "/v1/vms:bulk-update", {
        selector: { ids: [vm.id, bystander.id] },
        set: { policy: vm.policy | 0x10 },
      });
      assert.equal(res.statusCode, 202, res.body);
      const id = String((json(res).operation as { id: string }).id);
      const op = await a.cp.engine.waitFor(id, 30_000);
      assert.equal(op.status, "succeeded");
      const after = await a.inventory.vms.get(vm.id);
      assert.deepEqual([after?.policy, after?.attestationState], [vm.policy | 0x10, "none"]);
      assert.equal(after?.spec.launchSession, undefined);
      const records = (await a.inventory.audit.list({ target: vm.id, action: "vm.policy.change" })).items;
      assert.equal(records[0]?.details.sessionCleared, true);
      const other = await a.inventory.vms.get(bystander.id);
      assert.deepEqual([other?.policy, other?.attestationState], [bystander.policy | 0x10, "none"]);
    }));

  it("a clone does not copy the parent's session", () =>
    withApi(async (a) => {
      const vm = await vmWithSession(a, "clone");
      const res = await a.call("all", "POST", `/v1/vms/${vm.id}/clone`, { name: "vault-copy" });
      assert.equal(res.statusCode, 200, res.body);
      const copy = await a.inventory.vms.getByName("vault-copy");
      assert.ok(copy);
      assert.equal(copy.spec.launchSession, undefined);
      assert.equal(copy.attestationState, "none");
      assert.ok((await a.inventory.vms.get(vm.id))?.spec.launchSession, "the parent keeps its own session");
    }));
});
