/**
 * The EPYC generations as one table (docs/sev-interface.md §7.1, §13.1; docs/product-behaviour.md §1). Code, CLI and docs
 * all read this table; nothing else hard-codes a per-generation number.
 */
import { CiphervisorError } from "../errors.ts";

export type Generation = "naples" | "rome" | "milan" | "genoa" | "turin";
export const GENERATIONS: readonly Generation[] = ["naples", "rome", "milan", "genoa", "turin"];

export interface CpuModel {
  generation: Generation;
  /** Marketing family, e.g. "EPYC 7xx2". */
  family: string;
  /**
   * CPUID 0x8000001F ECX: number of encrypted guests at once = the maximum ASID. With `defaultMinSevAsid` it is all
   * an ASID pool split needs, including the SNP split of ciphertext hiding (SNP ASIDs 1..MAX_SNP_ASID below the ES
   * ones; docs/sev-interface.md §7.2).
   */
  maxAsid: number;
  /** C-bit position, CPUID 0x8000001F EBX[5:0]. */
  cBit: number;
  /** Physical-address-bit reduction of the host, EBX[11:6] (guests usually see 1, passed through by QEMU). */
  reducedPhysBits: number;
  /** Whether the part and its firmware support SEV-ES (Naples has the hardware, but SEV-ES software support begins with Rome). */
  sevEs: boolean;
  /** Whether the part and its firmware support SEV-SNP (CPUID 0x8000001F EAX bit 4; Milan and later). */
  snp: boolean;
  /**
   * Whether the SNP firmware offers ciphertext hiding for DRAM (Zen 5 and later): SNP_FEATURE_INFO ECX bit 3 and
   * SNP_PLATFORM_STATUS CIPHERTEXT_HIDING_CAP, which Linux's ccp driver checks (`include/linux/psp-sev.h`
   * SNP_CIPHER_TEXT_HIDING_SUPPORTED) before SNP_INIT_EX sets CIPHERTEXT_HIDING_EN with a MAX_SNP_ASID. No CPUID bit
   * announces it, so this is a fact of the model, not of `cpuid8000001f`.
   */
  ciphertextHiding: boolean;
  /** Memory-encryption tweak mode: XE (fixed linear tweak) on Naples, XEX with per-boot constants later (docs/sev-interface.md §13.1). */
  memoryMode: "xe" | "xex";
  /** Default BIOS `min_sev_asid` (ES ASIDs are [1, min)); 1 means no SEV-ES pool. */
  defaultMinSevAsid: number;
  /** SEV firmware API and build the emulated part reports in PLATFORM_STATUS (representative released firmware). */
  api: { major: number; minor: number; build: number };
  /** CPUID(1).EAX of the host part (family/model/stepping), for the guest-visible signature. */
  cpuidSignature: number;
  /**
   * CPUID Fn8000_001F EAX, EBX and ECX as a real part of this generation reports them (docs/sev-interface.md §7.1). EDX
   * is not a property of the part: it is the BIOS setting `min_sev_asid`. `cpuid.ts` builds the full leaf; a test
   * checks that EBX[5:0], EBX[11:6], ECX and EAX bit 3 agree with `cBit`, `reducedPhysBits`, `maxAsid`, `sevEs`.
   */
  cpuid8000001f: { eax: number; ebx: number; ecx: number };
  /** Where each row comes from. */
  source: string;
}

export const CPU_MODELS: Readonly<Record<Generation, CpuModel>> = {
  naples: {
    generation: "naples",
    family: "EPYC 7xx1 (Zen 1)",
    maxAsid: 15,
    cBit: 47,
    reducedPhysBits: 5,
    sevEs: false,
    snp: false,
    ciphertextHiding: false,
    memoryMode: "xe",
    defaultMinSevAsid: 1,
    api: { major: 0, minor: 17, build: 48 },
    cpuidSignature: 0x00800f12,
    // An EPYC 7551P reports EAX 0x0000000F (SEV-ES bit 3 set: "all EPYC CPUs support SEV-ES in the hardware",
    // AMDESE/AMDSEV#4). ciphervisor's Naples is SEV-only, and KVM derives SEV-ES support from this bit, so the
    // emulated part clears it to stay consistent with `sevEs: false`.
    cpuid8000001f: { eax: 0x00000007, ebx: 0x0000016f, ecx: 15 },
    source:
      "docs/sev-interface.md §7.1 (virtee/sevctl#203, AMDESE/AMDSEV#23); XE mode per Du et al. 2017 / SEVurity; CPUID 8000001F from anrieff/libcpuid tests/amd/zen/epyc-naples.test",
  },
  rome: {
    generation: "rome",
    family: "EPYC 7xx2 (Zen 2)",
    maxAsid: 509,
    cBit: 47,
    reducedPhysBits: 5,
    sevEs: true,
    snp: false,
    ciphertextHiding: false,
    memoryMode: "xex",
    defaultMinSevAsid: 100,
    api: { major: 0, minor: 24, build: 15 },
    cpuidSignature: 0x00830f10,
    cpuid8000001f: { eax: 0x0001000f, ebx: 0x0000016f, ecx: 509 },
    source:
      "docs/sev-interface.md §7.1 (AMDESE/AMDSEV#84: 'SEV supported: 509 ASIDs'); XEX per SEVurity; CPUID 8000001F from anrieff/libcpuid tests/amd/zen2/epyc-rome.test",
  },
  milan: {
    generation: "milan",
    family: "EPYC 7xx3 (Zen 3)",
    maxAsid: 509,
    cBit: 51,
    reducedPhysBits: 5,
    sevEs: true,
    snp: true,
    ciphertextHiding: false,
    memoryMode: "xex",
    defaultMinSevAsid: 100,
    api: { major: 1, minor: 51, build: 3 },
    cpuidSignature: 0x00a00f11,
    cpuid8000001f: { eax: 0x0001fc3f, ebx: 0x00004173, ecx: 509 },
    source:
      "docs/sev-interface.md §7.1 (enarx/enarx#2589; C-bit 51 per rust-osdev/x86_64#603); CPUID 8000001F (EPYC 7713) from anrieff/libcpuid tests/amd/zen3/epyc-milan.test",
  },
  genoa: {
    generation: "genoa",
    family: "EPYC 9xx4 (Zen 4)",
    maxAsid: 1006,
    cBit: 51,
    reducedPhysBits: 6,
    sevEs: true,
    snp: true,
    ciphertextHiding: false,
    memoryMode: "xex",
    defaultMinSevAsid: 200,
    api: { major: 1, minor: 55, build: 21 },
    cpuidSignature: 0x00a10f11,
    cpuid8000001f: { eax: 0x030ffffb, ebx: 0x000041b3, ecx: 1006 },
    source:
      "docs/sev-interface.md §7.1 (AMD on LKML: 1006 SEV ASIDs on Genoa and later); CPUID 8000001F (EPYC 9124) from anrieff/libcpuid tests/amd/zen4/epyc-genoa.test",
  },
  turin: {
    generation: "turin",
    family: "EPYC 9xx5 (Zen 5)",
    maxAsid: 1006,
    cBit: 51,
    reducedPhysBits: 6,
    sevEs: true,
    snp: true,
    ciphertextHiding: true,
    memoryMode: "xex",
    defaultMinSevAsid: 200,
    api: { major: 1, minor: 55, build: 40 },
    // CPUID(1).EAX of an EPYC 9655: family 0xF + 0x0B = 0x1A, model 0x02, stepping 1.
    cpuidSignature: 0x00b00f21,
    // The libcpuid dump's EDX is 1 (that BIOS left no SEV-ES pool); EDX is the BIOS setting, so the default above
    // is Genoa's, which leaves room for SEV-ES and, with ciphertext hiding, SNP ASIDs.
    cpuid8000001f: { eax: 0xcffffffb, ebx: 0x000041b3, ecx: 1006 },
    source:
      "CPUID 1 and 8000001F (EPYC 9655) from anrieff/libcpuid tests/amd/zen5/epyc-turin.test; ciphertext hiding per Linux include/linux/psp-sev.h (SNP_FEATURE_INFO ECX bit 3) and drivers/crypto/ccp/sev-dev.c; SNP TCB layout per docs/sev-interface.md §14",
  },
};

export function cpuModel(generation: string): CpuModel {
  const m = (CPU_MODELS as Record<string, CpuModel | undefined>)[generation];
  if (!m) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `unknown CPU generation '${generation}' (expected one of ${GENERATIONS.join(", ")})`,
    );
  }
  return m;
}

/**
 * Validates a BIOS `min_sev_asid` for a model: 1 ≤ min ≤ maxAsid + 1 (min = 1: no ES pool; min = max + 1: no
 * plain-SEV pool). Naples exposes no SEV-ES, so its only valid value is 1.
 */
export function checkMinSevAsid(model: CpuModel, minSevAsid: number): number {
  if (!Number.isInteger(minSevAsid) || minSevAsid < 1 || minSevAsid > model.maxAsid + 1) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `min_sev_asid ${minSevAsid} is outside 1..${model.maxAsid + 1} for ${model.generation}`,
    );
  }
  if (!model.sevEs && minSevAsid !== 1) {
    throw new CiphervisorError("INVALID_INPUT", `${model.generation} has no SEV-ES: min_sev_asid must be 1`);
  }
  return minSevAsid;
}
