import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ROLE_PERMISSIONS } from "../../../src/control/rbac.ts";
import { ACTION_PERMISSIONS, availability } from "./permissions.ts";

describe("web: actions the roles cannot do are disabled, naming the permission", () => {
  it("a viewer may read but no action: each names its permission", () => {
    const viewer = ROLE_PERMISSIONS.viewer;
    assert.equal(availability(viewer, "inventory.read").allowed, true);
    const a = availability(viewer, "vm.disable");
    assert.deepEqual(a, { allowed: false, reason: "needs the 'vm.security.downgrade' permission" });
    assert.match(availability(viewer, "vm.enable-sev-es").reason ?? "", /'vm\.security\.enable' or/);
    assert.match(availability(viewer, "host.maintenance").reason ?? "", /'host\.maintenance'/);
  });

  it("follows the role table: security-admin enables, security-officer disables, operator drains", () => {
    assert.equal(availability(ROLE_PERMISSIONS["security-admin"], "vm.enable-sev-es").allowed, true);
    assert.equal(availability(ROLE_PERMISSIONS["security-admin"], "vm.disable").allowed, false);
    assert.equal(availability(ROLE_PERMISSIONS["security-officer"], "vm.disable").allowed, true);
    assert.equal(availability(ROLE_PERMISSIONS.operator, "host.maintenance").allowed, true);
    assert.equal(availability(ROLE_PERMISSIONS.operator, "vm.migrate").allowed, true);
    assert.equal(availability(ROLE_PERMISSIONS.auditor, "audit.read").allowed, true);
  });

  it("names only permissions that exist in the control plane", () => {
    const known = new Set(Object.values(ROLE_PERMISSIONS).flat());
    for (const [action, p] of Object.entries(ACTION_PERMISSIONS)) {
      for (const x of p.anyOf) assert.ok(known.has(x as never), `${action}: ${x}`);
    }
  });
});
