/**
 * What a security change is, and which permission it needs (docs/threat-model.md §5.2–5.3): turning protection on,
 * changing the policy without weakening it, weakening it (a downgrade), and allowing debug are four different
 * things, held by different roles. A change is classified per VM, because the same request ("set SEV") turns
 * protection on for an ordinary VM and weakens an SEV-ES one.
 */
import { CiphervisorError } from "../errors.ts";
import { defaultPolicy } from "../hypervisor/vm-spec.ts";
import { decodePolicy, POLICY_RESERVED_MASK, PolicyBit } from "../sev/policy.ts";
import { decodeSnpPolicy, SnpPolicyBit } from "../sev/snp/policy.ts";
import type { SecurityMode } from "./inventory/types.ts";
import type { Permission } from "./rbac.ts";

/** A VM's protection: its mode and the 32-bit guest policy bound at launch (0 for ordinary VMs). */
export interface Protection {
  readonly mode: SecurityMode;
  readonly policy: number;
}

const RANK: Readonly<Record<SecurityMode, number>> = { none: 0, sev: 1, "sev-es": 2, "sev-snp": 3 };

/**
 * The protective facts of a policy, one list per policy format: each names a bit and the value that protects. An
 * SEV/SEV-ES policy (docs/sev-interface.md §6) protects with NOKS, NOSEND, DOMAIN and SEV set; an SNP policy
 * (docs/sev-interface.md §14) with SMT, MIGRATE_MA and CXL_ALLOW clear and SINGLE_SOCKET, RAPL_DIS,
 * CIPHERTEXT_HIDING, MEM_AES_256_XTS and PAGE_SWAP_DISABLE set. Debug is separate (its own permission).
 */
interface PolicyFacts {
  readonly family: "sev" | "snp";
  readonly debug: boolean;
  /** ABI_MAJOR.ABI_MINOR as one number, for "the minimum firmware was lowered". */
  readonly minAbi: number;
  readonly minAbiText: string;
  readonly protects: ReadonlyMap<string, boolean>;
}

const SEV_PROTECTIVE_BITS: readonly (keyof typeof PolicyBit)[] = ["NOKS", "NOSEND", "DOMAIN", "SEV"];
const SNP_PROTECTIVE: readonly { bit: keyof typeof SnpPolicyBit; protectsWhen: boolean }[] = [
  { bit: "SMT", protectsWhen: false },
  { bit: "MIGRATE_MA", protectsWhen: false },
  { bit: "CXL_ALLOW", protectsWhen: false },
  { bit: "SINGLE_SOCKET", protectsWhen: true },
  { bit: "RAPL_DIS", protectsWhen: true },
  { bit: "CIPHERTEXT_HIDING", protectsWhen: true },
  { bit: "MEM_AES_256_XTS", protectsWhen: true },
  { bit: "PAGE_SWAP_DISABLE", protectsWhen: true },
];

function policyFacts(mode: Exclude<SecurityMode, "none">, policy: number): PolicyFacts {
  if (mode === "sev-snp") {
    const p = decodeSnpPolicy(BigInt(policy));
    const protects = new Map<string, boolean>();
    for (const { bit, protectsWhen } of SNP_PROTECTIVE) {
      const set = (BigInt(policy) & SnpPolicyBit[bit]) !== 0n;
      protects.set(`${bit} ${protectsWhen ? "cleared" : "set"}`, set === protectsWhen);
    }
    return {
      family: "snp",
      debug: p.debug,
      minAbi: (p.abiMajor << 8) | p.abiMinor,
      minAbiText: `${p.abiMajor}.${p.abiMinor}`,
      protects,
    };
  }
  const p = decodePolicy(policy);
  const protects = new Map<string, boolean>();
  for (const bit of SEV_PROTECTIVE_BITS) protects.set(`${bit} cleared`, (policy & PolicyBit[bit]) !== 0);
  return {
    family: "sev",
    debug: !p.nodbg,
    minAbi: (p.apiMajor << 8) | p.apiMinor,
    minAbiText: `${p.apiMajor}.${p.apiMinor}`,
    protects,
  };
}

/**
 * The policy a request ends with: the given one, the VM's current one when only the mode stays, or the safe
 * default for the new mode (NODBG | NOKS, plus ES; QEMU's 0x30000 for SNP). Ordinary VMs have policy 0.
 */
export function resolvePolicy(before: Protection, mode: SecurityMode, policy: number | undefined): number {
  if (mode === "none") return 0;
  if (policy !== undefined) return policy;
  if (mode === before.mode && before.policy !== 0) return before.policy;
  return defaultPolicy(mode);
}

/**
 * INVALID_INPUT when `policy` does not fit `mode`: for SEV and SEV-ES the ES bit must match and reserved bits 6–15
 * be clear; for SNP the must-be-one bit 17 must be set and bits 26–31 clear.
 */
export function validatePolicy(mode: SecurityMode, policy: number, field = "policy"): void {
  const bad = (message: string) =>
    new CiphervisorError("INVALID_INPUT", `${field}: ${message}`, { details: { field } });
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff)
    throw bad("must be a 32-bit unsigned integer");
  if (mode === "none") {
    if (policy !== 0) throw bad("an ordinary VM has no guest policy; omit it or pass 0");
    return;
  }
  if (mode === "sev-snp") {
    const p = decodeSnpPolicy(BigInt(policy));
    if (!p.reservedMbo) throw bad("an SEV-SNP policy must set bit 17 (reserved, must be one), e.g. 0x30000");
    if (p.reserved !== 0n) throw bad("SEV-SNP policy bits 26–31 are reserved and must be 0");
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
  readonly permissions: readonly Permission[];
  /** Why it is a downgrade, when it is one (for the audit record and the refusal). */
  readonly weakened: readonly string[];
}

/**
 * Verdicts by (before, after), frozen: a bulk change asks the same few questions for thousands of VMs, and each
 * answer decodes two policies.
 */
const classified = new Map<string, ChangeKind>();

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
  const key = `${before.mode}:${before.policy}>${after.mode}:${after.policy}`;
  let kind = classified.get(key);
  if (!kind) {
    if (classified.size >= 1024) classified.clear();
    const k = classify(before, after);
    Object.freeze(k.permissions);
    Object.freeze(k.weakened);
    kind = Object.freeze(k);
    classified.set(key, kind);
  }
  return kind;
}

function classify(
  before: Protection,
  after: Protection,
): { unchanged: boolean; action: string; permissions: Permission[]; weakened: string[] } {
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
    const a = policyFacts(after.mode, after.policy);
    // Only an encrypted VM had bits to lose; a VM that becomes encrypted is compared with the safe default.
    const b =
      before.mode === "none"
        ? policyFacts(after.mode, defaultPolicy(after.mode))
        : policyFacts(before.mode, before.policy);
    if (a.debug && !b.debug) {
      perms.add("vm.debug.allow");
      weakened.push(
        after.mode === "sev-snp"
          ? "DEBUG set (the platform could decrypt guest memory)"
          : "NODBG cleared (the platform could decrypt guest memory)",
      );
    }
    // Bits compare only within one policy format; between formats the mode's rank decides.
    if (before.mode !== "none" && a.family === b.family) {
      for (const [what, protectedBefore] of b.protects) {
        if (protectedBefore && a.protects.get(what) === false) {
          perms.add("vm.security.downgrade");
          weakened.push(what);
        }
      }
      if (a.minAbi < b.minAbi) {
        perms.add("vm.security.downgrade");
        weakened.push(`minimum firmware lowered to ${a.minAbiText}`);
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

const LABEL: Readonly<Record<SecurityMode, string>> = {
  none: "no encryption",
  sev: "SEV",
  "sev-es": "SEV-ES",
  "sev-snp": "SEV-SNP",
};

function label(mode: SecurityMode): string {
  return LABEL[mode];
}
