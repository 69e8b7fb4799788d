/**
 * One emulated EPYC host: CPU model and BIOS `min_sev_asid`, DRAM, the memory controller's key slots (programmed by
 * the Secure Processor), trusted memory, and VMRUN. Pure and deterministic: every random bit (RDRAND) comes from the
 * injected source.
 *
 * VMRUN (docs/sev-interface.md §12, §13) — what makes the three security modes differ:
 * - **none**: guest memory is plaintext; registers are saved in the VMCB save area in plaintext.
 * - **sev**: private pages are encrypted with the key slot of the VMCB's ASID (chosen by VMRUN from the VMCB, as
 *   hardware does); registers are still saved in the VMCB save area in plaintext, readable and writable by the
 *   hypervisor.
 * - **sev-es**: registers live in the VMSA, encrypted with the guest's key at its system physical address. VMRUN
 *   refuses (VMEXIT_INVALID, exit code −1) unless the VMSA ciphertext is exactly what the CPU or the firmware last
 *   wrote (trusted-memory.ts), and at #VMEXIT the CPU re-encrypts it and records it again. Non-automatic intercepts
 *   raise #VC inside the guest instead of exiting. With SEV_FEATURES bit 14 (VMSA register protection, opt-in) a
 *   fresh nonce is mixed into the register fields at every #VMEXIT (vmsa-protection.ts).
 * - **SEV-SNP**: an SEV-ES guest whose VMSA sets SEV_FEATURES bit 0 (SNPActive, APM vol. 2 section 15.36.2), on a
 *   host with a Reverse Map Table (`rmp`, rmp.ts). VMRUN refuses it without an RMP or when the VMSA page is not
 *   assigned to the ASID as a VMSA (Table 15-41); every guest memory access passes the RMP checks (memory-path.ts),
 *   and PVALIDATE / RMPADJUST work. Guests without SNPActive run exactly as before, an RMP or not.
 *
 * @example
 * ```ts
 * const machine = new Machine({ model: cpuModel("milan"), memory: dram, keySlots: sp.keySlots,
 *   vmsaIntegrity: store, rng: seededRandom(1), nativeCode: guestKernels });
 * const exit = machine.vmrun(vmcb); // { exitCode: 0x403, name: "VMGEXIT (0x403)", … }
 * ```
 */
import { forkRandom, type RandomSource } from "../crypto/random.ts";
import { decodeVmsa, encodeVmsa, type Vmsa } from "../measure/vmsa.ts";
import type { MemoryKeySlots } from "../sev/key-slots.ts";
import { type CpuModel, checkMinSevAsid } from "./cpu-models.ts";
import { type AsidPools, asidClass, asidPools, type CpuidLeaf, hostCpuid8000001f } from "./cpuid.ts";
import { PAGE_SIZE, type SystemMemory } from "./dram.ts";
import { Execution, type ExitRequest, type Hardware, type MachineObserver } from "./execution.ts";
import { exitCodeName, VMEXIT_INVALID } from "./exit-codes.ts";
import { firmwareHandoff, type HandoffPage, type HandoffResult } from "./firmware-handoff.ts";
import { GPR_NAMES } from "./isa.ts";
import { MemoryPath } from "./memory-path.ts";
import type { NativeGuestCode } from "./native-code.ts";
import type { Rmp } from "./rmp.ts";
import type { VmsaIntegrityStore } from "./trusted-memory.ts";
import { encodeVmcbControl, SAVE_AREA_SIZE, type Vmcb } from "./vmcb.ts";
import { protectRegisters, unprotectRegisters, wantsRegisterProtection } from "./vmsa-protection.ts";

export interface MachineConfig {
  model: CpuModel;
  /** BIOS setting splitting ES [1, min) and SEV [min, max] ASIDs; defaults to the CPU table's value. */
  minSevAsid?: number;
  memory: SystemMemory & { contains(pa: number, length: number): boolean };
  /** The Secure Processor's key slots, used by ASID only. */
  keySlots: MemoryKeySlots;
  /** Trusted memory shared with the Secure Processor (it records each VMSA at LAUNCH_UPDATE_VMSA). */
  vmsaIntegrity: VmsaIntegrityStore;
  /** RDRAND and any other randomness of the CPU. */
  rng: RandomSource;
  /** Guest kernel text run natively (src/guest/kernel). */
  nativeCode?: NativeGuestCode;
  /** Test and demo instrumentation (ground truth); never given to the hypervisor. */
  observer?: MachineObserver;
  /** Instructions per VMRUN before the host timer interrupt forces an exit (default 1,000,000). */
  instructionBudget?: number;
  /** The Reverse Map Table of an SEV-SNP enabled host (rmp.ts); without it SNP-active guests cannot run. */
  rmp?: Rmp;
}

/** SEV_FEATURES bit 0 (VMSA offset 0x3B0): SNPActive (APM vol. 2 section 15.36.2, Table B-4). */
export const SEV_FEATURE_SNP_ACTIVE = 1n;

/** The result of one VMRUN, as the hypervisor learns it from the VMCB control area. */
export interface VmExit {
  exitCode: number;
  exitInfo1: bigint;
  exitInfo2: bigint;
  /** e.g. "CPUID (0x72)". */
  name: string;
  /** VMEXIT_INVALID only: why VMRUN refused, in words (hardware reports only the code). */
  reason?: string;
  /** SHUTDOWN only: the guest kernel's last words (what its console would show). */
  guestMessage?: string;
}

/** The VMSA fields of RAX … R15, in x86 register order (the ISA's numbering). */
const GPR_FIELDS = GPR_NAMES satisfies readonly (keyof Vmsa)[];

const VENDOR = { ebx: 0x68747541, edx: 0x69746e65, ecx: 0x444d4163 }; // "AuthenticAMD"

export class Machine {
  readonly model: CpuModel;
  readonly minSevAsid: number;
  readonly #c: MachineConfig;
  readonly #hw: Hardware;
  #tsc = 0n;
  /** Nonces for VMSA register protection (vmsa-protection.ts), from their own stream. */
  readonly #nonces: RandomSource;

  constructor(config: MachineConfig) {
    this.model = config.model;
    this.minSevAsid = checkMinSevAsid(config.model, config.minSevAsid ?? config.model.defaultMinSevAsid);
    this.#c = config;
    this.#nonces = forkRandom(config.rng, "vmsa-register-protection");
    // RDRAND draws from the injected source in blocks (one AES-CTR call per 512 values, same stream).
    let pool: BigUint64Array = new BigUint64Array(0);
    let next = 0;
    this.#hw = {
      cpuid: (leaf) => this.#cpuid(leaf),
      rdrand: () => {
        if (next >= pool.length) {
          pool = new BigUint64Array(config.rng.bytes(4096).slice().buffer);
          next = 0;
        }
        return pool[next++]!;
      },
      tsc: () => {
        this.#tsc += 1009n;
        return this.#tsc;
      },
    };
  }

  /**
   * The guest firmware's hand-off to the OS, performed by the CPU inside the guest (firmware-handoff.ts): loads
   * `pages` and sets the BSP's entry state; under SEV-SNP the firmware PVALIDATEs each private page first. Refused,
   * with the reason, when an SEV-ES VMSA fails its integrity check or an SNP page cannot be validated.
   */
  firmwareHandoff(vmcb: Vmcb, pages: readonly HandoffPage[], entry: Partial<Vmsa>): HandoffResult {
    return firmwareHandoff(
      {
        memory: this.#c.memory,
        keySlots: this.#c.keySlots,
        vmsaIntegrity: this.#c.vmsaIntegrity,
        ...(this.#c.rmp ? { rmp: this.#c.rmp } : {}),
      },
      vmcb,
      pages,
      entry,
    );
  }

  /** CPUID 0x8000001F of this host (EDX = its min_sev_asid). */
  cpuid8000001f(): CpuidLeaf {
    return hostCpuid8000001f(this.model, this.minSevAsid);
  }

  /** The ES and SEV ASID pools, and whether SEV-ES is available at all (with the reason when not). */
  asidPools(): AsidPools {
    return asidPools(this.model, this.minSevAsid);
  }

  #cpuid(leaf: number): CpuidLeaf {
    switch (leaf) {
      case 0:
        return { eax: 0x10, ...VENDOR };
      case 1:
        return { eax: this.model.cpuidSignature, ebx: 0, ecx: 0, edx: 0 };
      case 0x8000_0000:
        return { eax: 0x8000_001f, ...VENDOR };
      case 0x8000_001f:
        return this.cpuid8000001f();
      default:
        return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
    }
  }

  /** The VMRUN consistency checks; a reason string when VMRUN must fail with VMEXIT_INVALID. */
  #refusal(vmcb: Vmcb): string | undefined {
    const c = vmcb.control;
    const mem = this.#c.memory;
    if (!mem.contains(vmcb.pa, PAGE_SIZE) || vmcb.pa % PAGE_SIZE !== 0) {
      return `the VMCB at 0x${vmcb.pa.toString(16)} is not a page of system memory`;
    }
    if (c.sevEsEnable && !c.sevEnable) return "SEV-ES is enabled in the VMCB without SEV";
    if (c.sevEsEnable) {
      const pools = this.asidPools();
      if (!pools.sevEs.available) return pools.sevEs.reason;
    }
    if (c.sevEnable) {
      const cls = asidClass(this.model, this.minSevAsid, c.asid);
      if (cls === undefined)
        return `ASID ${c.asid} is not an SEV ASID on this host (1..${this.model.maxAsid})`;
      // [unconfirmed] that the CPU itself checks the class; the firmware's ACTIVATE does (§7.2).
      if (c.sevEsEnable && cls !== "es") {
        return `ASID ${c.asid} is in the plain-SEV pool; SEV-ES guests need ASIDs 1..${this.minSevAsid - 1}`;
      }
      if (!this.#c.keySlots.isProgrammed(c.asid)) {
        return `no memory-encryption key is programmed for ASID ${c.asid} (the guest is not ACTIVATEd)`;
      }
    }
    if (c.sevEsEnable) {
      if (c.vmsaPa % PAGE_SIZE !== 0 || !mem.contains(c.vmsaPa, PAGE_SIZE)) {
        return `the VMSA address 0x${c.vmsaPa.toString(16)} is not a page of system memory`;
      }
      if (!this.#rmpGuardsVmsa(c) && !this.#vmsaUnchanged(vmcb)) return this.#vmsaChanged(vmcb);
    }
    return undefined;
  }

  #vmsaUnchanged(vmcb: Vmcb): boolean {
    const c = vmcb.control;
    return this.#c.vmsaIntegrity.check(c.asid, c.vmsaPa, this.#c.memory.read(c.vmsaPa, PAGE_SIZE));
  }

  #vmsaChanged(vmcb: Vmcb): string {
    return `the VMSA at 0x${vmcb.control.vmsaPa.toString(16)} is not the one the CPU or the firmware last wrote (changed or replayed)`;
  }

  /**
   * Whether the RMP itself guards this VMSA page: assigned to the VMCB's ASID with its VMSA flag (APM vol. 2 section
   * 15.36.12). The hypervisor cannot write such a page (#PF, RMP) nor re-assign it without RMPUPDATE clearing the
   * flag, so an SNP-active guest's VMSA needs no trusted-memory record — and a VMSA the guest built itself for SNP AP
   * creation (GHCB 56421) never has one. Guests that are not SNP-active are still checked against the record.
   */
  #rmpGuardsVmsa(c: Vmcb["control"]): boolean {
    const e = this.#c.rmp?.entry(c.vmsaPa);
    return e?.assigned === true && e.asid === c.asid && e.vmsa;
  }

  /**
   * Runs the vCPU described by `vmcb` until it exits. Never throws for anything a hypervisor can put in the VMCB or
   * in memory: a refused VMRUN is the exit VMEXIT_INVALID with a `reason`.
   */
  vmrun(vmcb: Vmcb): VmExit {
    const c = vmcb.control;
    const refusal = this.#refusal(vmcb);
    if (refusal !== undefined) return invalid(vmcb, refusal);
    const mem = this.#c.memory;
    const slots = this.#c.keySlots;
    const state = this.#loadState(vmcb);
    const snpActive = c.sevEsEnable && (state.sevFeatures & SEV_FEATURE_SNP_ACTIVE) !== 0n;
    if (snpActive) {
      const why = this.#snpRefusal(vmcb);
      if (why !== undefined) return invalid(vmcb, why);
    } else if (c.sevEsEnable && this.#rmpGuardsVmsa(c) && !this.#vmsaUnchanged(vmcb)) {
      return invalid(vmcb, this.#vmsaChanged(vmcb));
    }
    const gpr = new BigUint64Array(16);
    GPR_FIELDS.forEach((f, i) => {
      gpr[i] = state[f];
    });
    const ghcbMsr = { value: c.sevEsEnable ? c.ghcbGpa : 0n };
    const path = new MemoryPath({
      memory: mem,
      keySlots: slots,
      npt: c.npt,
      asid: c.asid,
      sev: c.sevEnable,
      cBit: this.model.cBit,
      cr3: Number(state.cr3 & 0x000f_ffff_ffff_f000n),
      rmp: this.#c.rmp,
      snpActive,
    });
    const exec = new Execution({
      mem: path,
      state,
      gpr,
      control: c,
      ghcbMsr,
      hw: this.#hw,
      native: this.#c.nativeCode,
      observer: this.#c.observer,
      budget: this.#c.instructionBudget ?? 1_000_000,
      rmp: this.#c.rmp,
      snpActive,
    });
    let exit: ExitRequest | undefined;
    const inj = c.eventInj;
    c.eventInj = undefined;
    if (inj) exit = exec.inject(inj.vector, BigInt(inj.errorCode ?? 0));
    exit ??= exec.run();
    path.flush();
    GPR_FIELDS.forEach((f, i) => {
      state[f] = gpr[i]!;
    });
    this.#saveState(vmcb, state);
    if (c.sevEsEnable) c.ghcbGpa = ghcbMsr.value;
    c.exitCode = exit.code;
    c.exitInfo1 = exit.info1;
    c.exitInfo2 = exit.info2;
    c.exitIntInfo = 0n;
    c.nRip = exit.nRip;
    mem.write(vmcb.pa, encodeVmcbControl(c));
    const out: VmExit = {
      exitCode: exit.code,
      exitInfo1: exit.info1,
      exitInfo2: exit.info2,
      name: exitCodeName(exit.code),
    };
    if (exit.guestMessage !== undefined) out.guestMessage = exit.guestMessage;
    return out;
  }

  /**
   * VMRUN's extra checks of an SNP-active guest (APM vol. 2 section 15.36.12, Table 15-41): SEV-SNP enabled (an
   * RMP), and the VMSA page Guest-Owned by the ASID with its VMSA flag set. [unconfirmed] The Reverse-Map and
   * Mutable checks of the table are not applied: KVM records the VMSA at a GPA of its own and the firmware leaves
   * launched pages Immutable (rmp.ts `firmwareHook`).
   */
  #snpRefusal(vmcb: Vmcb): string | undefined {
    const c = vmcb.control;
    const rmp = this.#c.rmp;
    if (!rmp) return "the VMSA asks for SEV-SNP (SEV_FEATURES bit 0) but SEV-SNP is not enabled on this host";
    const e = rmp.entry(c.vmsaPa);
    if (!e.assigned || e.asid !== c.asid || !e.vmsa) {
      return `the VMSA at 0x${c.vmsaPa.toString(16)} is not a VMSA page assigned to ASID ${c.asid} in the RMP`;
    }
    return undefined;
  }

  #nonce(): bigint {
    return new DataView(this.#nonces.bytes(8).slice().buffer).getBigUint64(0, true);
  }

  #loadState(vmcb: Vmcb): Vmsa {
    const c = vmcb.control;
    const mem = this.#c.memory;
    if (c.sevEsEnable) {
      const plain = this.#c.keySlots.decrypt(c.asid, c.vmsaPa, mem.read(c.vmsaPa, PAGE_SIZE));
      if (wantsRegisterProtection(plain)) unprotectRegisters(plain);
      return decodeVmsa(plain);
    }
    const page = new Uint8Array(PAGE_SIZE);
    page.set(mem.read(vmcb.saveAreaPa, SAVE_AREA_SIZE));
    return decodeVmsa(page);
  }

  #saveState(vmcb: Vmcb, state: Vmsa): void {
    const c = vmcb.control;
    const mem = this.#c.memory;
    const page = encodeVmsa(state);
    if (c.sevEsEnable) {
      if (wantsRegisterProtection(page)) protectRegisters(page, this.#nonce());
      const cipher = this.#c.keySlots.encrypt(c.asid, c.vmsaPa, page);
      mem.write(c.vmsaPa, cipher);
      this.#c.vmsaIntegrity.record(c.asid, c.vmsaPa, cipher);
      return;
    }
    mem.write(vmcb.saveAreaPa, page.subarray(0, SAVE_AREA_SIZE));
  }
}

/** The exit of a refused VMRUN: VMEXIT_INVALID, with the reason in words. */
function invalid(vmcb: Vmcb, reason: string): VmExit {
  const c = vmcb.control;
  c.exitCode = VMEXIT_INVALID;
  c.exitInfo1 = 0n;
  c.exitInfo2 = 0n;
  return {
    exitCode: VMEXIT_INVALID,
    exitInfo1: 0n,
    exitInfo2: 0n,
    name: exitCodeName(VMEXIT_INVALID),
    reason,
  };
}
