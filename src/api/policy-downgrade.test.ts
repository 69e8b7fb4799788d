/**
 * Clearing a protective guest-policy bit is a downgrade (docs/threat-model.md §5.2–5.3; the bits are
 * docs/sev-interface.md §6, the "Guest Policy" table of SEV API 55766): NOKS (the key may then be shared with
 * another guest) and NOSEND (the guest may then be migrated away) need `vm.security.downgrade`, NODBG (the platform
 * may then decrypt guest memory) needs `vm.debug.allow`. The security-admin role, which may change a policy without
 * weakening it, is refused each (per VM, inside the operation); a caller that also holds the security-officer role
 * is allowed, and the change is audited as `vm.security.downgrade` naming the bit. (The bulk route itself asks for
 * `vm.security.enable` or `vm.security.policy` whenever `set` names a mode, so the security-officer role alone
 * cannot send this request.) Setting the same bit again is an ordinary policy change. Checked through the API's
 * bulk update and at the classifier underneath it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Role } from "../control/rbac.ts";
import { classifyChange } from "../control/security-change.ts";
import { PolicyBit } from "../sev/policy.ts";
import { json, withApi } from "./testing/api-fixture.ts";

const FULL = PolicyBit.NODBG | PolicyBit.NOKS | PolicyBit.ES | PolicyBit.NOSEND;
const CASES = [
  { bit: "NOKS", needs: "vm.security.downgrade" },
  { bit: "NOSEND", needs: "vm.security.downgrade" },
  { bit: "NODBG", needs: "vm.debug.allow" },
] as const;

describe("clearing NOKS, NOSEND or NODBG needs the downgrade (or debug) permission", () => {
  for (const { bit, needs } of CASES) {
    it(`classifies clearing ${bit} on an SEV-ES VM as a downgrade needing ${needs}`, () => {
      const c = classifyChange(
        { mode: "sev-es", policy: FULL },
        { mode: "sev-es", policy: FULL & ~PolicyBit[bit] },
      );
      assert.deepEqual([c.action, c.permissions], ["vm.security.downgrade", [needs]]);
      assert.equal(c.weakened.length, 1);
      assert.match(c.weakened[0] ?? "", new RegExp(`^${bit} cleared`));
      // Setting it again only strengthens.
      const back = classifyChange(
        { mode: "sev-es", policy: FULL & ~PolicyBit[bit] },
        { mode: "sev-es", policy: FULL },
      );
      assert.deepEqual([back.action, back.permissions], ["vm.policy.change", ["vm.security.policy"]]);
    });
  }

  it("through the API: security-admin is refused per VM, a security officer may, and the audit names the bit", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      for (const { bit, needs } of CASES) {
        const vm = await a.vm(`p-${bit.toLowerCase()}`, "sev-es", { policy: FULL });
        const weaker = FULL & ~PolicyBit[bit];
        const submit = (as: Role | "all", policy: number) =>
          a.call(as, "POST", "/v1/vms:bulk-update", {
            selector: { ids: [vm.id] },
            set: { securityMode: "sev-es", policy },
          });
        const bulk = async (as: Role | "all", policy: number) => {
          const r = await submit(as, policy);
          assert.ok(r.statusCode === 200 || r.statusCode === 202, r.body);
          const opId = String((json(r).operation as { id: string }).id);
          const op = await a.cp.engine.waitFor(opId, 30_000);
          const items = (await a.inventory.operations.items(opId)).items;
          assert.equal(items.length, 1);
          return { op, item: items[0]! };
        };
        const needsRe = new RegExp(`'${needs.replaceAll(".", "\\.")}'`);

        // A policy without NODBG says by itself that it allows debug, so that one is refused at the request; NOKS
        // and NOSEND are lost only relative to the VM's current policy, so they are refused per VM.
        const r = await submit("security-admin", weaker);
        if (bit === "NODBG") {
          assert.equal(r.statusCode, 403, r.body);
          assert.match(String(json(r).detail), needsRe);
        } else {
          assert.ok(r.statusCode === 200 || r.statusCode === 202, r.body);
          const opId = String((json(r).operation as { id: string }).id);
          const op = await a.cp.engine.waitFor(opId, 30_000);
          const [item] = (await a.inventory.operations.items(opId)).items;
          assert.equal(op.status, "failed", `${bit}: ${item?.reason}`);
          assert.equal(item?.code, "FORBIDDEN");
          assert.match(item?.reason ?? "", needsRe);
        }
        assert.equal((await a.inventory.vms.get(vm.id))?.policy, FULL, `${bit}: untouched`);

        const done = await bulk("all", weaker);
        assert.equal(done.op.status, "succeeded", `${bit}: ${done.item.reason}`);
        assert.equal((await a.inventory.vms.get(vm.id))?.policy, weaker);
        const audit = (await a.inventory.audit.list({ target: vm.id, outcome: "ok" })).items.filter((r) =>
          r.action.startsWith("vm."),
        );
        assert.equal(audit.length, 1, `${bit}: one change record`);
        assert.equal(audit[0]?.action, "vm.security.downgrade");
        const weakened = audit[0]?.details.weakened as string[] | undefined;
        assert.ok(
          weakened?.some((w) => w.startsWith(`${bit} cleared`)),
          `${bit}: ${JSON.stringify(weakened)}`,
        );

        // Restoring the bit is within security-admin's policy permission.
        const restored = await bulk("security-admin", FULL);
        assert.equal(restored.op.status, "succeeded", `${bit}: ${restored.item.reason}`);
        assert.equal((await a.inventory.vms.get(vm.id))?.policy, FULL);
      }
    }));
});
