/** Validation and defaults of a VM specification (types.ts), before anything is created. */
import { CiphervisorError } from "../errors.ts";
import { guestOsProfile } from "../guest/os-profiles.ts";
import { PolicyBit } from "../sev/policy.ts";
import { SECURITY_MODES } from "./operation-rules.ts";
import type { LaunchSpec } from "./types.ts";

export const MAX_VCPUS = 64;
export const MAX_MEMORY_MIB = 1024 * 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The safe default policy: NODBG and NOKS, plus ES for SEV-ES (docs/sev-interface.md §6). */
export function defaultPolicy(mode: LaunchSpec["security"]): number {
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
    bad("security", `must be none, sev or sev-es, got '${spec.security}'`);
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
  if (spec.session && spec.security === "none") bad("session", "an ordinary VM has no launch session");
  if (spec.attestation && spec.security === "none") bad("attestation", "an ordinary VM cannot be attested");
  if (spec.directBoot && spec.firmware.kind !== "efi")
    bad("directBoot", "measured direct boot needs EFI firmware");
  return { ...spec, policy, devices: [...spec.devices] };
}
