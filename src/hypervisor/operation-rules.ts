/**
 * What each security mode still allows: ONE table, mode × operation → allowed, or refused with a stable code and
 * a reason a person understands. The hypervisor enforces it, the control plane and API answer 409 from it, the CLI's
 * `--what-if` and the docs print it (docs/product-behaviour.md §4; vSphere 7U1's SEV-ES limits, Nova's
 * `OperationNotSupportedForSEV`, KubeVirt's `SEVNotLiveMigratable`, QEMU's "SEV: Migration is not implemented").
 *
 * Why each refusal exists: every refused operation needs the hypervisor to read or rewrite guest memory or
 * register state while the guest lives — which SEV (memory) and SEV-ES (memory and registers) exist to prevent.
 */
import { CiphervisorError, type ErrorCode } from "../errors.ts";
import { PolicyBit } from "../sev/policy.ts";
import { SnpPolicyBit } from "../sev/snp/policy.ts";
import { SECURITY_MODES, type SecurityMode } from "../vocabulary.ts";

export { SECURITY_MODES, type SecurityMode };

export const OPERATIONS = [
  "power-on",
  "power-off",
  "reset",
  "reconfigure-powered-off",
  "live-migrate",
  "cold-migrate",
  "memory-snapshot",
  "disk-snapshot",
  "suspend",
  "resume",
  "hot-add-device",
  "hot-add-cpu",
  "hot-add-memory",
  "fault-tolerance",
  "hot-clone",
  "instant-clone",
  "cold-clone",
  "memory-dump",
] as const;
export type Operation = (typeof OPERATIONS)[number];

/** Stable refusal codes (error codes of their own: the API's problem `code`, the CLI's JSON `code`). */
export type RefusalCode = Extract<
  ErrorCode,
  | "LIVE_MIGRATION_UNSUPPORTED"
  | "MEMORY_SNAPSHOT_UNSUPPORTED"
  | "SUSPEND_UNSUPPORTED"
  | "HOT_ADD_UNSUPPORTED"
  | "FAULT_TOLERANCE_UNSUPPORTED"
  | "HOT_CLONE_UNSUPPORTED"
  | "MEMORY_DUMP_UNSUPPORTED"
>;

export type Rule = { allowed: true } | { allowed: false; code: RefusalCode; reason: string };

const ok: Rule = { allowed: true };

const refuse = (code: RefusalCode, reason: string): Rule => ({ allowed: false, code, reason });

const MEM = "its memory is encrypted with a key only the AMD Secure Processor holds";
const REGS = "its memory and CPU register state are encrypted with a key only the AMD Secure Processor holds";
const SNP =
  "its memory and CPU register state are encrypted with a key only the AMD Secure Processor holds, and the Reverse Map Table stops the hypervisor writing or remapping them";
/**
 * SNP can migrate only through a migration agent the guest trusts (policy MIGRATE_MA; SNP ABI 56860 section 4.9),
 * which no deployment runs: QEMU, KVM and vSphere 9 refuse SNP live migration.
 */
const SNP_NO_MIGRATION_AGENT = `SEV-SNP live migration needs a migration agent (policy MIGRATE_MA) that no deployment runs, and ${SNP}`;

function encrypted(why: string, liveMigrationWhy = why): Record<Operation, Rule> {
  return {
    "power-on": ok,
    "power-off": ok,
    reset: ok,
    "reconfigure-powered-off": ok,
    "live-migrate": refuse(
      "LIVE_MIGRATION_UNSUPPORTED",
      `live migration (vMotion) copies running memory and registers, but ${liveMigrationWhy}; power it off and cold-migrate instead`,
    ),
    "cold-migrate": ok,
    "memory-snapshot": refuse(
      "MEMORY_SNAPSHOT_UNSUPPORTED",
      `a memory snapshot saves guest memory in a form the hypervisor can read back, but ${why}; take a disk-only snapshot`,
    ),
    "disk-snapshot": ok,
    suspend: refuse("SUSPEND_UNSUPPORTED", `suspend writes guest memory and registers to disk, but ${why}`),
    resume: refuse(
      "SUSPEND_UNSUPPORTED",
      `resume restores a suspended image, which an encrypted VM cannot have (${why})`,
    ),
    "hot-add-device": refuse(
      "HOT_ADD_UNSUPPORTED",
      `hot-adding a device needs the hypervisor to change guest memory and state while it runs, but ${why}; power it off to reconfigure`,
    ),
    "hot-add-cpu": refuse(
      "HOT_ADD_UNSUPPORTED",
      `a hot-added vCPU needs a measured initial state created at launch, and ${why}; power it off to reconfigure`,
    ),
    "hot-add-memory": refuse(
      "HOT_ADD_UNSUPPORTED",
      `hot-added memory is not part of the launch measurement and ${why}; power it off to reconfigure`,
    ),
    "fault-tolerance": refuse(
      "FAULT_TOLERANCE_UNSUPPORTED",
      `Fault Tolerance mirrors running memory and registers to a secondary host, but ${why}`,
    ),
    "hot-clone": refuse(
      "HOT_CLONE_UNSUPPORTED",
      `cloning a running VM copies its live memory and registers, but ${why}`,
    ),
    "instant-clone": refuse(
      "HOT_CLONE_UNSUPPORTED",
      `an instant clone shares the running parent's memory, but ${why}`,
    ),
    "cold-clone": ok,
    // Overridden per policy: allowed when the guest policy permits debug (NODBG clear), see ruleFor().
    "memory-dump": refuse(
      "MEMORY_DUMP_UNSUPPORTED",
      `a memory dump needs the firmware's DBG_DECRYPT, which this VM's policy forbids (NODBG, or SNP's DEBUG clear), and ${why}`,
    ),
  };
}

/** The table. Ordinary VMs keep everything. */
export const OPERATION_RULES: Readonly<Record<SecurityMode, Readonly<Record<Operation, Rule>>>> = {
  none: Object.fromEntries(OPERATIONS.map((o) => [o, ok])) as Record<Operation, Rule>,
  sev: encrypted(MEM),
  "sev-es": encrypted(REGS),
  "sev-snp": encrypted(SNP, SNP_NO_MIGRATION_AGENT),
};

/**
 * Whether a guest policy lets the firmware decrypt guest memory for debugging: SEV/SEV-ES policy NODBG (bit 0)
 * clear (docs/sev-interface.md §6); SNP policy DEBUG (bit 19) set — its bit 0 is ABI_MINOR (docs/sev-interface.md §14).
 */
export function policyAllowsDebug(mode: SecurityMode, policy: number): boolean {
  if (mode === "none") return false;
  if (mode === "sev-snp") return (BigInt(policy) & SnpPolicyBit.DEBUG) !== 0n;
  return (policy & PolicyBit.NODBG) === 0;
}

/**
 * The rule for one VM. `debugAllowed` is `policyAllowsDebug` of its policy: then a memory dump goes through
 * DBG_DECRYPT and is allowed (docs/product-behaviour.md §4; docs/sev-interface.md §6).
 */
export function ruleFor(mode: SecurityMode, operation: Operation, debugAllowed = false): Rule {
  if (operation === "memory-dump" && mode !== "none" && debugAllowed) return ok;
  return OPERATION_RULES[mode][operation];
}

/** Throws the table's refusal code (LIVE_MIGRATION_UNSUPPORTED, …) with its reason when the rule refuses. */
export function assertAllowed(
  vm: string,
  mode: SecurityMode,
  operation: Operation,
  debugAllowed = false,
): void {
  const rule = ruleFor(mode, operation, debugAllowed);
  if (!rule.allowed) {
    throw new CiphervisorError(
      rule.code,
      `${operation} refused for ${mode.toUpperCase()} VM '${vm}': ${rule.reason}`,
      { details: { vm, mode, operation } },
    );
  }
}

/** KubeVirt's `LiveMigratable=False` reasons per mode (SNP's named the same way). */
const NOT_LIVE_MIGRATABLE: Partial<Record<SecurityMode, string>> = {
  sev: "SEVNotLiveMigratable",
  "sev-es": "SEVESNotLiveMigratable",
  "sev-snp": "SEVSNPNotLiveMigratable",
};

/** A migratability condition as KubeVirt reports it (`LiveMigratable=False`, reason). */
export function liveMigratable(mode: SecurityMode): { status: boolean; reason?: string } {
  const r = OPERATION_RULES[mode]["live-migrate"];
  return r.allowed
    ? { status: true }
    : { status: false, reason: NOT_LIVE_MIGRATABLE[mode] ?? "SEVNotLiveMigratable" };
}
