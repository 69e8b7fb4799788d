/**
 * What each dashboard action needs, as one table (the API's route permissions, src/api/): a button whose
 * permission the signed-in roles lack stays visible but disabled, and says which permission it needs. The server
 * still checks every request; this only keeps people from trying what will be refused.
 */

/** Dashboard actions → the permissions the API asks for (any one of `anyOf`). */
export const ACTION_PERMISSIONS = {
  "vm.enable-sev-es": { anyOf: ["vm.security.enable", "vm.security.policy"] },
  "vm.disable": { anyOf: ["vm.security.downgrade"] },
  "vm.change-policy": { anyOf: ["vm.security.policy", "vm.security.downgrade"] },
  "vm.migrate": { anyOf: ["vm.migrate"] },
  "vm.power": { anyOf: ["vm.power"] },
  "host.maintenance": { anyOf: ["host.maintenance"] },
  "operation.cancel": { anyOf: ["operation.cancel"] },
  "audit.read": { anyOf: ["audit.read"] },
  "attestation.read": { anyOf: ["attestation.read"] },
  "inventory.read": { anyOf: ["inventory.read"] },
} as const satisfies Record<string, { anyOf: readonly string[] }>;

export type DashboardAction = keyof typeof ACTION_PERMISSIONS;

export interface Availability {
  readonly allowed: boolean;
  /** Why not, naming the permission: "needs the 'vm.security.downgrade' permission". */
  readonly reason?: string;
}

/** Whether `permissions` (from GET /v1/me) allow `action`. */
export function availability(permissions: readonly string[], action: DashboardAction): Availability {
  const needs: readonly string[] = ACTION_PERMISSIONS[action].anyOf;
  if (needs.some((p) => permissions.includes(p))) return { allowed: true };
  const named = needs.map((p) => `'${p}'`).join(" or ");
  return { allowed: false, reason: `needs the ${named} permission` };
}
