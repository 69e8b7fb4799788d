/**
 * What a security change is, and which permission it needs (docs/threat-model.md §5.2–5.3): turning protection on,
 * changing the policy without weakening it, weakening it (a downgrade), and allowing debug are four different
 * things, held by different roles. A change is classified per VM, because the same request ("set SEV") turns
 * protection on for an ordinary VM and weakens an SEV-ES one.
 */
import { CiphervisorError } from "../errors.ts";
import { defaultPolicy } from "../hypervisor/vm-spec.ts";
import { decodePolicy, POLICY_RESERVED_MASK, PolicyBit } from "../sev/policy.ts";
import type { SecurityMode } from "./inventory/types.ts";
import type { Permission } from "./rbac.ts";

/** A VM's protection: its mode and the 32-bit guest policy bound at launch (0 for ordinary VMs). */
export interface Protection {
  readonly mode: SecurityMode;
  readonly policy: number;
}

const RANK: Readonly<Record<SecurityMode, number>> = { none: 0, sev: 1, "sev-es": 2 };

/** Policy bits whose clearing weakens protection (NODBG is separate: clearing it allows debug). */
const PROTECTIVE_BITS: readonly (keyof typeof PolicyBit)[] = ["NOKS", "NOSEND", "DOMAIN", "SEV"];

/**
 * The policy a request ends with: the given one, the VM's current one when only the mode stays, or the safe
 * default for the new mode (NODBG | NOKS, plus ES). Ordinary VMs have policy 0.
 */
export function resolvePolicy(before: Protection, mode: SecurityMode, policy: number | undefined): number {
  if (mode === "none") return 0;
  if (policy !== undefined) return policy;
  if (mode === before.mode && before.policy !== 0) return before.policy;
  return defaultPolicy(mode);
}

/** INVALID_INPUT when `policy` does not fit `mode` (the ES bit must match, reserved bits must be clear). */
export function validatePolicy(mode: SecurityMode, policy: number, field = "policy"): void {
  const bad = (message: string) =>
    new CiphervisorError("INVALID_INPUT", `${field}: ${message}`, { details: { field } });
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff)
    throw bad("must be a 32-bit unsigned integer");
  if (mode === "none") {
    if (policy !== 0) throw bad("an ordinary VM has no guest policy; omit it or pass 0");
    return;
  }
  if ((policy & POLICY_RESERVED_MASK) !== 0) throw bad("reserved bits 6–15 must be 0");
  const es = (policy & PolicyBit.ES) !== 0;
  if (mode === "sev-es" && !es) throw bad("an SEV-ES VM needs the ES bit (0x4)");
  if (mode === "sev" && es) throw bad("a plain SEV VM must not set the ES bit (0x4)");
}

/** What one VM's change does. */
export interface ChangeKind {
  /** No field changes. */
  readonly unchanged: boolean;
  /** The audit action: `vm.security.enable`, `vm.security.disable`, `vm.security.downgrade`, `vm.policy.change`. */
  readonly action: string;
  /** Every permission the change needs. */
  readonly permissions: Permission[];
  /** Why it is a downgrade, when it is one (for the audit record and the refusal). */
  readonly weakened: string[];
}

/**
 * Classifies a change from `before` to `after`.
 *
 * @example
 * ```ts
 * classifyChange({ mode: "sev-es", policy: 0x7 }, { mode: "sev", policy: 0x3 });
 * // { action: "vm.security.downgrade", permissions: ["vm.security.downgrade"], weakened: ["SEV-ES → SEV"], … }
 * ```
 */
export function classifyChange(before: Protection, after: Protection): ChangeKind {
  const perms = new Set<Permission>();
  const weakened: string[] = [];
  const up = RANK[after.mode] > RANK[before.mode];
  const down = RANK[after.mode] < RANK[before.mode];
  if (up) perms.add("vm.security.enable");
  if (down) {
    perms.add("vm.security.downgrade");
    weakened.push(`${label(before.mode)} → ${label(after.mode)}`);
  }
  if (after.mode !== "none") {
    const a = decodePolicy(after.policy);
    // Only an encrypted VM had bits to lose; a VM that becomes encrypted is compared with the safe default.
    const b = decodePolicy(before.mode === "none" ? defaultPolicy(after.mode) : before.policy);
    if (!a.nodbg && b.nodbg) {
      perms.add("vm.debug.allow");
      weakened.push("NODBG cleared (the platform could decrypt guest memory)");
    }
    if (before.mode !== "none") {
      for (const bit of PROTECTIVE_BITS) {
        if ((before.policy & PolicyBit[bit]) !== 0 && (after.policy & PolicyBit[bit]) === 0) {
          perms.add("vm.security.downgrade");
          weakened.push(`${bit} cleared`);
        }
      }
      const minBefore = (b.apiMajor << 8) | b.apiMinor;
      const minAfter = (a.apiMajor << 8) | a.apiMinor;
      if (minAfter < minBefore) {
        perms.add("vm.security.downgrade");
        weakened.push(`minimum firmware lowered to ${a.apiMajor}.${a.apiMinor}`);
      }
    }
  }
  const unchanged = before.mode === after.mode && before.policy === after.policy;
  if (!unchanged && perms.size === 0) perms.add("vm.security.policy");
  const action = up
    ? "vm.security.enable"
    : after.mode === "none" && before.mode !== "none"
      ? "vm.security.disable"
      : weakened.length > 0
        ? "vm.security.downgrade"
        : "vm.policy.change";
  return { unchanged, action, permissions: [...perms].sort(), weakened };
}

function label(mode: SecurityMode): string {
  return mode === "sev-es" ? "SEV-ES" : mode === "sev" ? "SEV" : "no encryption";
}
