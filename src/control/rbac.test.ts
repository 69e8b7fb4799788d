import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import {
  can,
  PERMISSIONS,
  type Permission,
  parseRoles,
  permissionsOf,
  ROLES,
  type Role,
  requirePermission,
} from "./rbac.ts";

/**
 * The expected matrix, written out independently of ROLE_PERMISSIONS so that a change to the table must be made
 * twice, on purpose. Everything not listed is denied.
 */
const EXPECTED: Record<Role, readonly Permission[]> = {
  viewer: ["inventory.read"],
  operator: [
    "inventory.read",
    "vm.create",
    "vm.delete",
    "vm.power",
    "vm.migrate",
    "host.maintenance",
    "operation.cancel",
  ],
  "security-admin": ["inventory.read", "vm.security.enable", "vm.security.policy"],
  "security-officer": ["inventory.read", "vm.security.downgrade", "vm.debug.allow"],
  "attestation-reader": ["inventory.read", "attestation.read"],
  "attestation-admin": ["inventory.read", "attestation.read", "attestation.session", "attestation.secret"],
  auditor: ["audit.read"],
  admin: ["inventory.read", "host.manage", "image.manage", "token.manage"],
};

describe("RBAC", () => {
  it(`matches the ${ROLES.length} × ${PERMISSIONS.length} allow/deny matrix exactly`, () => {
    let cells = 0;
    for (const role of ROLES) {
      for (const p of PERMISSIONS) {
        assert.equal(can([role], p), EXPECTED[role].includes(p), `${role} × ${p}`);
        cells++;
      }
    }
    assert.equal(cells, 8 * 18);
  });

  it("denies by default: no roles, unknown roles, wrong case", () => {
    for (const p of PERMISSIONS) {
      assert.equal(can([], p), false);
      assert.equal(can(["root"], p), false);
      assert.equal(can(["Admin"], p), false);
    }
  });

  it("separates turning protection on from turning it off, and reading attestation from writing it", () => {
    assert.equal(can("security-admin", "vm.security.enable"), true);
    assert.equal(can("security-admin", "vm.security.downgrade"), false);
    assert.equal(can("security-admin", "vm.debug.allow"), false);
    assert.equal(can("attestation-reader", "attestation.read"), true);
    assert.equal(can("attestation-reader", "attestation.secret"), false);
    assert.equal(can("attestation-reader", "attestation.session"), false);
    // The platform admin cannot change what is encrypted ("no cryptography administrator").
    for (const p of [
      "vm.security.enable",
      "vm.security.downgrade",
      "vm.debug.allow",
      "attestation.secret",
    ] as const) {
      assert.equal(can("admin", p), false, p);
    }
    // The auditor reads the audit log and nothing else.
    assert.deepEqual([...permissionsOf("auditor")], ["audit.read"]);
  });

  it("has no permission that edits or deletes audit records, for anybody", () => {
    const all = permissionsOf([...ROLES]);
    for (const p of all) assert.ok(!/^audit\.(?!read$)/.test(p), p);
    assert.ok(!PERMISSIONS.some((p) => /audit\.(write|edit|delete|update)/.test(p)));
  });

  it("unions the permissions of several roles", () => {
    assert.equal(can(["operator", "security-admin"], "vm.security.enable"), true);
    assert.equal(can(["operator", "security-admin"], "vm.power"), true);
    assert.equal(can(["operator", "security-admin"], "token.manage"), false);
  });

  it("throws FORBIDDEN naming the permission, and validates role names", () => {
    assert.doesNotThrow(() => requirePermission(["viewer"], "inventory.read"));
    assert.throws(
      () => requirePermission(["viewer"], "vm.power"),
      (e) => isCiphervisorError(e, "FORBIDDEN") && e.message.includes("vm.power"),
    );
    assert.deepEqual(parseRoles(["viewer", "auditor", "viewer"]), ["viewer", "auditor"]);
    assert.throws(
      () => parseRoles([]),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
    assert.throws(
      () => parseRoles(["superuser"]),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
  });
});
