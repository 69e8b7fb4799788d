/**
 * Roles and permissions: one table, default deny (docs/threat-model.md §5.3, docs/product-behaviour.md §8). SEV-specific
 * privileges are separate from generic VM privileges, as KubeVirt splits attestation: reading a measurement is not
 * setting a session or injecting a secret; turning protection on is not turning it off. The platform `admin`
 * manages tokens, roles and hosts but cannot change what is encrypted (vSphere's "no cryptography administrator").
 * No permission edits or deletes audit records: that action does not exist for anybody.
 */
import { CiphervisorError } from "../errors.ts";

/** Every permission the control plane checks. */
export const PERMISSIONS = [
  /** Read clusters, hosts, VMs and operations. */
  "inventory.read",
  /** Create ordinary (unencrypted) VMs. */
  "vm.create",
  "vm.delete",
  /** Power on/off, reset, pause/resume. */
  "vm.power",
  /** Migrate (the operation table still refuses live migration of SEV/SEV-ES VMs). */
  "vm.migrate",
  /** Enter and exit host maintenance (drains hosts). */
  "host.maintenance",
  /** Add, change and remove hosts and clusters. */
  "host.manage",
  /** Upload and delete firmware, kernel and initrd images of the catalog. */
  "image.manage",
  "operation.cancel",
  /** Turn SEV or SEV-ES on, create encrypted VMs, strengthen protection. */
  "vm.security.enable",
  /** Change the guest policy without weakening it. */
  "vm.security.policy",
  /** Weaken protection: turn SEV/SEV-ES off, drop ES, clear NOSEND/NOKS, lower the minimum firmware. */
  "vm.security.downgrade",
  /** Allow debugging (clear NODBG): the platform could then decrypt guest memory. */
  "vm.debug.allow",
  /** Fetch the platform certificate chain and read launch measurements. */
  "attestation.read",
  /** Set the guest-owner session (dhCert + session blob) before launch. */
  "attestation.session",
  /** Inject a launch secret. */
  "attestation.secret",
  /** Read and verify the audit log. */
  "audit.read",
  /** Create, list and revoke tokens and assign roles. */
  "token.manage",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The built-in roles. */
export const ROLES = [
  "viewer",
  "operator",
  "security-admin",
  "security-officer",
  "attestation-reader",
  "attestation-admin",
  "auditor",
  "admin",
] as const;
export type Role = (typeof ROLES)[number];

/** The one role → permissions table. A token may hold several roles; its permissions are the union. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
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
  // Weakening protection is its own role so that the people who turn SEV on are not, by default, the ones who can
  // turn it off. (The two-person request/approve flow of docs/threat-model.md §5.2 builds on this permission.)
  "security-officer": ["inventory.read", "vm.security.downgrade", "vm.debug.allow"],
  "attestation-reader": ["inventory.read", "attestation.read"],
  "attestation-admin": ["inventory.read", "attestation.read", "attestation.session", "attestation.secret"],
  // Audit only: an auditor sees who did what, not the fleet.
  auditor: ["audit.read"],
  admin: ["inventory.read", "host.manage", "image.manage", "token.manage"],
};

/** True when `name` is a built-in role. */
export function isRole(name: string): name is Role {
  return (ROLES as readonly string[]).includes(name);
}

/** The union of the permissions of `roles`; unknown role names grant nothing. */
export function permissionsOf(roles: string | readonly string[]): Set<Permission> {
  const out = new Set<Permission>();
  for (const r of typeof roles === "string" ? [roles] : roles) {
    if (isRole(r)) for (const p of ROLE_PERMISSIONS[r]) out.add(p);
  }
  return out;
}

/**
 * Default deny: true only if one of `roles` grants `permission`.
 *
 * @example
 * ```ts
 * can(["operator"], "vm.power"); // true
 * can(["operator"], "vm.security.enable"); // false
 * ```
 */
export function can(roles: string | readonly string[], permission: Permission): boolean {
  // No set built: a bulk operation asks this for every VM it judges.
  for (const r of typeof roles === "string" ? [roles] : roles) {
    if (isRole(r) && ROLE_PERMISSIONS[r].includes(permission)) return true;
  }
  return false;
}

/** Throws FORBIDDEN unless `roles` grant `permission`. */
export function requirePermission(roles: string | readonly string[], permission: Permission): void {
  if (!can(roles, permission)) {
    throw new CiphervisorError("FORBIDDEN", `this action needs the '${permission}' permission`, {
      details: { permission },
    });
  }
}

/** Validates role names for a new token; INVALID_INPUT names the unknown one. */
export function parseRoles(names: readonly string[]): Role[] {
  if (names.length === 0) throw new CiphervisorError("INVALID_INPUT", "a token needs at least one role");
  const out: Role[] = [];
  for (const n of names) {
    if (!isRole(n)) {
      throw new CiphervisorError("INVALID_INPUT", `unknown role '${n}'; roles are ${ROLES.join(", ")}`, {
        details: { field: "roles" },
      });
    }
    if (!out.includes(n)) out.push(n);
  }
  return out;
}
