/**
 * Guest vCPU models and their CPUID(1).EAX signatures. QEMU/KVM put that signature in RDX of the reset-state VMSA, so
 * the SEV-ES launch digest depends on the guest CPU model (docs/sev-interface.md §12.2, §15 pitfall 12).
 *
 * `signature = (ext_family << 20) | (ext_model << 16) | (base_family << 8) | (model_low << 4) | stepping`, where a
 * family above 0xF is written as base 0xF plus an extended family of `family − 0xF` (AMD CPUID specification #25481,
 * "CPUID Fn0000_0001_EAX").
 */
import { CiphervisorError } from "../errors.ts";

/** The CPUID(1).EAX signature of a family/model/stepping triple (§12.2). */
export function cpuSignature(family: number, model: number, stepping: number): number {
  for (const [name, v, max] of [
    ["family", family, 0xff + 0xf],
    ["model", model, 0xff],
    ["stepping", stepping, 0xf],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max) {
      throw new CiphervisorError("INVALID_INPUT", `CPU ${name} must be an integer in 0..${max}, got ${v}`);
    }
  }
  const baseFamily = Math.min(family, 0xf);
  const extFamily = Math.max(family - 0xf, 0);
  return (
    ((extFamily << 20) | ((model >> 4) << 16) | (baseFamily << 8) | ((model & 0xf) << 4) | stepping) >>> 0
  );
}

export interface VcpuType {
  family: number;
  model: number;
  stepping: number;
}

/**
 * QEMU's built-in EPYC CPU models (`builtin_x86_defs`) with their family/model/stepping, as tabulated by
 * virtee/sev-snp-measure `sevsnpmeasure/vcpu_types.py`. Versioned aliases keep the base model's identity.
 */
export const QEMU_VCPU_TYPES: Readonly<Record<string, VcpuType>> = {
  EPYC: { family: 23, model: 1, stepping: 2 },
  "EPYC-v1": { family: 23, model: 1, stepping: 2 },
  "EPYC-v2": { family: 23, model: 1, stepping: 2 },
  "EPYC-IBPB": { family: 23, model: 1, stepping: 2 },
  "EPYC-v3": { family: 23, model: 1, stepping: 2 },
  "EPYC-v4": { family: 23, model: 1, stepping: 2 },
  "EPYC-Rome": { family: 23, model: 49, stepping: 0 },
  "EPYC-Rome-v1": { family: 23, model: 49, stepping: 0 },
  "EPYC-Rome-v2": { family: 23, model: 49, stepping: 0 },
  "EPYC-Rome-v3": { family: 23, model: 49, stepping: 0 },
  "EPYC-Milan": { family: 25, model: 1, stepping: 1 },
  "EPYC-Milan-v1": { family: 25, model: 1, stepping: 1 },
  "EPYC-Milan-v2": { family: 25, model: 1, stepping: 1 },
  "EPYC-Genoa": { family: 25, model: 17, stepping: 0 },
  "EPYC-Genoa-v1": { family: 25, model: 17, stepping: 0 },
  "EPYC-Turin": { family: 26, model: 0, stepping: 0 },
};

/**
 * The signature of a QEMU CPU model name (case-sensitive, as QEMU spells it).
 * @example `vcpuSignatureOf("EPYC-v4") === 0x00800f12`
 * @throws CiphervisorError INVALID_INPUT for an unknown name, listing the known ones.
 */
export function vcpuSignatureOf(name: string): number {
  const t = Object.hasOwn(QEMU_VCPU_TYPES, name) ? QEMU_VCPU_TYPES[name] : undefined;
  if (!t) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `unknown vCPU type '${name}'; known: ${Object.keys(QEMU_VCPU_TYPES).join(", ")} (or give the signature)`,
    );
  }
  return cpuSignature(t.family, t.model, t.stepping);
}
