/** Validation and defaults of a VM specification (types.ts), before anything is created. */
import { CiphervisorError } from "../errors.ts";
import { guestOsProfile } from "../guest/os-profiles.ts";
import { PolicyBit } from "../sev/policy.ts";
import { ID_AUTH_SIZE, ID_BLOCK_SIZE } from "../sev/snp/id-block.ts";
import { SnpPolicyBit } from "../sev/snp/policy.ts";
import { SECURITY_MODES } from "./operation-rules.ts";
import type { LaunchSpec } from "./types.ts";

export const MAX_VCPUS = 64;
export const MAX_MEMORY_MIB = 1024 * 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** SEV-SNP's default: QEMU's `sev-snp-guest` policy 0x30000 (SMT allowed, bit 17 set; docs/sev-interface.md §14). */
export const DEFAULT_SNP_POLICY = 0x30000;
/** SNP policy bits 63:26 are reserved (SNP ABI 56860, the guest policy structure). */
const SNP_POLICY_MAX = 2 ** 26 - 1;

/**
 * The safe default policy: NODBG and NOKS, plus ES for SEV-ES (docs/sev-interface.md §6); 0x30000 for SEV-SNP (no
 * DEBUG, §14).
 */
export function defaultPolicy(mode: LaunchSpec["security"]): number {
  if (mode === "sev-snp") return DEFAULT_SNP_POLICY;
  const base = PolicyBit.NODBG | PolicyBit.NOKS;
  return mode === "sev-es" ? base | PolicyBit.ES : base;
}

/** The policy a VM launches with. */
export function effectivePolicy(spec: LaunchSpec): number {
  return spec.policy ?? defaultPolicy(spec.security);
}

function bad(field: string, message: string): never {
  throw new CiphervisorError("INVALID_INPUT", `${field}: ${message}`, { details: { field } });
}

/** Throws INVALID_INPUT naming the field for a malformed spec. Returns the spec with its policy made explicit. */
export function validateVmSpec(spec: LaunchSpec): LaunchSpec {
  if (!NAME.test(spec.name)) bad("name", `'${spec.name}' must be 1–63 letters, digits, '.', '_' or '-'`);
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > MAX_VCPUS) {
    bad("vcpus", `must be 1..${MAX_VCPUS}, got ${spec.vcpus}`);
  }
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 16 || spec.memoryMiB > MAX_MEMORY_MIB) {
    bad("memoryMiB", `must be 16..${MAX_MEMORY_MIB}, got ${spec.memoryMiB}`);
  }
  if (!Number.isInteger(spec.hardwareVersion) || spec.hardwareVersion < 4 || spec.hardwareVersion > 99) {
    bad("hardwareVersion", `must be 4..99, got ${spec.hardwareVersion}`);
  }
  if (!SECURITY_MODES.includes(spec.security))
    bad("security", `must be ${SECURITY_MODES.join(", ")}, got '${spec.security}'`);
  guestOsProfile(spec.guestOs);
  if (spec.firmware.kind === "efi" && spec.firmware.image) {
    const n = spec.firmware.image.length;
    if (n === 0 || n % 16 !== 0 || n > 64 * 1024 * 1024) {
      bad(
        "firmware.image",
        `a firmware image must be a non-empty multiple of 16 bytes up to 64 MiB, got ${n}`,
      );
    }
  }
  const policy = effectivePolicy(spec);
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff) bad("policy", "must be a u32");
  if (spec.security === "sev-es" && (policy & PolicyBit.ES) === 0) {
    bad("policy", "an SEV-ES VM needs the ES bit (0x4) in its policy");
  }
  if (spec.security === "sev" && (policy & PolicyBit.ES) !== 0) {
    bad("policy", "a plain SEV VM must not set the ES bit (0x4)");
  }
  if (spec.security === "sev-snp") validateSnp(spec, policy);
  else if (spec.snp) bad("snp", "SEV-SNP launch options need security 'sev-snp'");
  if (spec.session && spec.security === "none") bad("session", "an ordinary VM has no launch session");
  if (spec.attestation && spec.security === "none") bad("attestation", "an ordinary VM cannot be attested");
  if (spec.directBoot && spec.firmware.kind !== "efi")
    bad("directBoot", "measured direct boot needs EFI firmware");
  return { ...spec, policy, devices: [...spec.devices] };
}

/** The SEV-SNP rules: the policy's reserved bits, and QEMU's checks of host-data, id-block, id-auth, author-key. */
function validateSnp(spec: LaunchSpec, policy: number): void {
  if (policy > SNP_POLICY_MAX) bad("policy", "SEV-SNP policy bits 63:26 are reserved and must be zero");
  if ((BigInt(policy) & SnpPolicyBit.RESERVED_MBO) === 0n) {
    bad("policy", "an SEV-SNP policy must set bit 17 (0x20000), which is reserved and must be one");
  }
  if (spec.session)
    bad("session", "SEV-SNP has no SEV launch session (GODH); the guest attests with reports");
  if (spec.attestation) {
    bad(
      "attestation",
      "an SEV-SNP launch does not pause for LAUNCH_MEASURE: the guest owner verifies an attestation report",
    );
  }
  const o = spec.snp;
  if (!o) return;
  if (o.hostData !== undefined && o.hostData.length !== 32) {
    bad("snp.hostData", `host data is 32 bytes, got ${o.hostData.length}`);
  }
  if (o.idBlock !== undefined && o.idBlock.length !== ID_BLOCK_SIZE) {
    bad("snp.idBlock", `an ID block is ${ID_BLOCK_SIZE} bytes, got ${o.idBlock.length}`);
  }
  if (o.idAuth !== undefined && o.idAuth.length !== ID_AUTH_SIZE) {
    bad("snp.idAuth", `the ID authentication information is ${ID_AUTH_SIZE} bytes, got ${o.idAuth.length}`);
  }
  if ((o.idBlock === undefined) !== (o.idAuth === undefined)) {
    bad("snp.idAuth", "an ID block and its ID authentication information go together");
  }
  if (o.authorKeyEnabled && o.idBlock === undefined) {
    bad("snp.authorKeyEnabled", "the author key signs the ID key, so it needs an ID block");
  }
}
