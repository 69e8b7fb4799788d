/**
 * CPUID Fn8000_001F and the ASID pools it implies (docs/sev-interface.md §7.1, §7.2). Everything here is derived from
 * the CPU table (`cpu-models.ts`) and the BIOS setting `min_sev_asid`; nothing is hard-coded per generation.
 */
import { type CpuModel, checkMinSevAsid } from "./cpu-models.ts";

export interface CpuidLeaf {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** EAX feature bits of Fn8000_001F (§7.1; bits above 5 are [unconfirmed] and passed through as the part reports). */
export const SEV_FEATURE_BITS = {
  SME: 1 << 0,
  SEV: 1 << 1,
  VM_PAGE_FLUSH_MSR: 1 << 2,
  SEV_ES: 1 << 3,
  SEV_SNP: 1 << 4,
  VMPL: 1 << 5,
} as const;

/**
 * CPUID 0x8000001F as the host part reports it: EAX features, EBX C-bit / reduction / VMPL count, ECX the maximum
 * ASID, EDX the BIOS `min_sev_asid`.
 *
 * @example
 * ```ts
 * hostCpuid8000001f(cpuModel("milan"), 100); // { eax: 0x1fc3f, ebx: 0x4173, ecx: 509, edx: 100 }
 * ```
 */
export function hostCpuid8000001f(model: CpuModel, minSevAsid: number = model.defaultMinSevAsid): CpuidLeaf {
  const min = checkMinSevAsid(model, minSevAsid);
  const { eax, ebx, ecx } = model.cpuid8000001f;
  return { eax, ebx, ecx, edx: min };
}

/** An inclusive ASID range; empty when `count` is 0 (then first > last). */
export interface AsidRange {
  first: number;
  last: number;
  count: number;
}

export interface AsidPools {
  /** SEV-ES guests: ASIDs 1 … min_sev_asid − 1 (§7.2, docs/sev-interface.md §15 pitfall 13: the *low* range). */
  es: AsidRange;
  /** Plain-SEV guests: min_sev_asid … max_sev_asid. */
  sev: AsidRange;
  /** Whether this host can run SEV-ES guests at all, and if not, why, in words a person can act on. */
  sevEs: { available: true } | { available: false; reason: string };
}

/**
 * The ES and SEV ASID pools of a host. KVM counts `SEV ASIDs = max − min + 1` and `SEV-ES ASIDs = min − 1`; with
 * min_sev_asid = 1 there is no ES pool and KVM disables SEV-ES (§7.2).
 *
 * @example
 * ```ts
 * asidPools(cpuModel("rome"), 1).sevEs; // { available: false, reason: "min_sev_asid = 1: …" }
 * ```
 */
export function asidPools(model: CpuModel, minSevAsid: number = model.defaultMinSevAsid): AsidPools {
  const min = checkMinSevAsid(model, minSevAsid);
  const es: AsidRange = { first: 1, last: min - 1, count: min - 1 };
  const sev: AsidRange = { first: min, last: model.maxAsid, count: model.maxAsid - min + 1 };
  let sevEs: AsidPools["sevEs"] = { available: true };
  if (!model.sevEs) {
    sevEs = {
      available: false,
      reason: `${model.generation} (${model.family}) does not support SEV-ES: only plain SEV with ${model.maxAsid} ASIDs`,
    };
  } else if (es.count === 0) {
    sevEs = {
      available: false,
      reason:
        "min_sev_asid = 1: the BIOS left no SEV-ES ASIDs (SEV-ES guests need ASIDs 1..min_sev_asid-1); raise the BIOS 'SEV-ES ASID space limit' to enable SEV-ES",
    };
  }
  return { es, sev, sevEs };
}

/** Which pool an ASID belongs to on this host, or undefined when it is 0 (the host) or above max_sev_asid. */
export function asidClass(model: CpuModel, minSevAsid: number, asid: number): "es" | "sev" | undefined {
  if (!Number.isInteger(asid) || asid < 1 || asid > model.maxAsid) return undefined;
  return asid < minSevAsid ? "es" : "sev";
}
