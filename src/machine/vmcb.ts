/**
 * The VMCB: one 4 KiB page of hypervisor memory per vCPU, control area at 0x000, save area at 0x400 (AMD APM vol. 2;
 * docs/sev-interface.md §12.1). The hypervisor owns it and can read and write every byte.
 *
 * - Plain SEV and non-SEV guests: the CPU stores the guest's register state in the save area **in plaintext** at
 *   every #VMEXIT and loads it from there at VMRUN, so the hypervisor reads and edits guest registers at will.
 * - SEV-ES guests: the save area holds only host state; guest state lives in the VMSA page that `vmsaPa` points at,
 *   encrypted with the guest's key and integrity-checked at VMRUN.
 *
 * Modelling notes. The typed `control` fields are authoritative; at #VMEXIT the CPU mirrors them into the page at the
 * APM offsets so the page reads like a real VMCB. The save area uses the §12.1 (VMSA) layout and includes every GPR:
 * on real hardware the VMCB save area carries only RAX/RSP/RIP/RFLAGS/CRs/segments and the other GPRs stay in the
 * physical registers, where the hypervisor (KVM `svm_vcpu_run`) saves them into its own memory — plaintext either
 * way, which is the property that matters.
 */

import type { SecurityMode } from "../vocabulary.ts";
import { SvmExit } from "./exit-codes.ts";
import type { NestedPageTable } from "./nested-page-table.ts";

export const VMCB_SAVE_AREA_OFFSET = 0x400;
/** The §12.1 save area size: 0x400 + 0x670 still fits the page. */
export const SAVE_AREA_SIZE = 0x670;

export type { SecurityMode };

/** An event the hypervisor asks the CPU to deliver at the next VMRUN (VMCB EVENTINJ, 0xA8). */
export interface EventInjection {
  vector: number;
  /** 0 = external interrupt (INTR), 3 = exception. */
  type: 0 | 3;
  errorCode?: number;
}

export interface VmcbControl {
  /** Exit codes of the instructions that are intercepted (CPUID, HLT, IOIO, MSR, …). */
  intercepts: Set<number>;
  /** MSRs the MSR permission map lets through when MSR accesses are intercepted. */
  msrPassthrough: Set<number>;
  /** 0x58: the ASID; VMRUN selects the memory-encryption key slot from it (CrossLine works because of this). */
  asid: number;
  /** 0x90 bit 1. */
  sevEnable: boolean;
  /** 0x90 bit 2. */
  sevEsEnable: boolean;
  /** 0xB0 nCR3: the nested page table. */
  npt: NestedPageTable;
  /** 0x108: system physical address of the encrypted VMSA (SEV-ES and SEV-SNP). */
  vmsaPa: number;
  /** 0xA0: the guest's GHCB MSR value at VMGEXIT; the hypervisor's MSR-protocol answer on the way back. */
  ghcbGpa: bigint;
  /** 0xA8. Consumed by VMRUN. */
  eventInj: EventInjection | undefined;
  /** 0x70–0x88 and 0xC8: written by the CPU at #VMEXIT. */
  exitCode: number;
  exitInfo1: bigint;
  exitInfo2: bigint;
  exitIntInfo: bigint;
  /** Next RIP (non-SEV-ES only: the hypervisor cannot use it for an SEV-ES guest). */
  nRip: bigint;
}

/** What KVM intercepts for a typical guest; under SEV-ES the non-automatic ones arrive as #VC (see exit-codes.ts). */
export const DEFAULT_INTERCEPTS: readonly number[] = [
  SvmExit.CPUID,
  SvmExit.HLT,
  SvmExit.IOIO,
  SvmExit.MSR,
  SvmExit.VMMCALL,
  SvmExit.RDPMC,
  SvmExit.WBINVD,
  SvmExit.INVD,
  SvmExit.MONITOR,
  SvmExit.MWAIT,
  SvmExit.WRITE_DR7,
  SvmExit.READ_DR7,
  SvmExit.SHUTDOWN,
];

export class Vmcb {
  readonly control: VmcbControl;

  /**
   * @param pa host-physical address of this VMCB's page (hypervisor memory)
   */
  constructor(
    readonly pa: number,
    opts: {
      asid: number;
      mode: SecurityMode;
      npt: NestedPageTable;
      vmsaPa?: number;
      intercepts?: Iterable<number>;
    },
  ) {
    // An SEV-SNP guest runs as an SEV-ES guest (SEV and SEV-ES enabled); SNP itself is the VMSA's SNPActive.
    const es = opts.mode === "sev-es" || opts.mode === "sev-snp";
    if (es && opts.vmsaPa === undefined) {
      throw new RangeError("an SEV-ES VMCB needs the VMSA's physical address (vmsaPa)");
    }
    this.control = {
      intercepts: new Set(opts.intercepts ?? DEFAULT_INTERCEPTS),
      msrPassthrough: new Set(),
      asid: opts.asid,
      sevEnable: opts.mode !== "none",
      sevEsEnable: es,
      npt: opts.npt,
      vmsaPa: opts.vmsaPa ?? 0,
      ghcbGpa: 0n,
      eventInj: undefined,
      exitCode: 0,
      exitInfo1: 0n,
      exitInfo2: 0n,
      exitIntInfo: 0n,
      nRip: 0n,
    };
  }

  get mode(): SecurityMode {
    return this.control.sevEsEnable ? "sev-es" : this.control.sevEnable ? "sev" : "none";
  }

  /** Host-physical address of the save area inside this VMCB page. */
  get saveAreaPa(): number {
    return this.pa + VMCB_SAVE_AREA_OFFSET;
  }
}

/** Intercept bits of the VMCB words at 0x0C and 0x10 (APM vol. 2, appendix B). */
const INTERCEPT_BITS: ReadonlyArray<[number, number, number]> = [
  [SvmExit.INTR, 0x0c, 0],
  [SvmExit.NMI, 0x0c, 1],
  [SvmExit.RDTSC, 0x0c, 14],
  [SvmExit.RDPMC, 0x0c, 15],
  [SvmExit.CPUID, 0x0c, 18],
  [SvmExit.INVD, 0x0c, 22],
  [SvmExit.PAUSE, 0x0c, 23],
  [SvmExit.HLT, 0x0c, 24],
  [SvmExit.IOIO, 0x0c, 27],
  [SvmExit.MSR, 0x0c, 28],
  [SvmExit.SHUTDOWN, 0x0c, 31],
  [SvmExit.VMMCALL, 0x10, 1],
  [SvmExit.RDTSCP, 0x10, 7],
  [SvmExit.WBINVD, 0x10, 9],
  [SvmExit.MONITOR, 0x10, 10],
  [SvmExit.MWAIT, 0x10, 11],
];

/** The control area as bytes at the APM offsets (what the CPU mirrors into the VMCB page at #VMEXIT). */
export function encodeVmcbControl(c: VmcbControl): Uint8Array {
  const out = new Uint8Array(VMCB_SAVE_AREA_OFFSET);
  const v = new DataView(out.buffer);
  for (const [code, off, bit] of INTERCEPT_BITS) {
    if (c.intercepts.has(code)) v.setUint32(off, (v.getUint32(off, true) | (1 << bit)) >>> 0, true);
  }
  // DR7 read/write intercepts: DR read bits 0–15 and write bits 16–31 of the word at 0x04.
  if (c.intercepts.has(SvmExit.READ_DR7)) v.setUint32(0x04, v.getUint32(0x04, true) | (1 << 7), true);
  if (c.intercepts.has(SvmExit.WRITE_DR7))
    v.setUint32(0x04, (v.getUint32(0x04, true) | (1 << 23)) >>> 0, true);
  v.setUint32(0x58, c.asid >>> 0, true);
  v.setBigInt64(0x70, BigInt(c.exitCode), true);
  v.setBigUint64(0x78, BigInt.asUintN(64, c.exitInfo1), true);
  v.setBigUint64(0x80, BigInt.asUintN(64, c.exitInfo2), true);
  v.setBigUint64(0x88, BigInt.asUintN(64, c.exitIntInfo), true);
  v.setBigUint64(0x90, 1n | (c.sevEnable ? 2n : 0n) | (c.sevEsEnable ? 4n : 0n), true);
  v.setBigUint64(0xa0, BigInt.asUintN(64, c.ghcbGpa), true);
  if (c.eventInj) {
    const e = c.eventInj;
    const inj =
      BigInt(e.vector & 0xff) |
      (BigInt(e.type) << 8n) |
      (e.errorCode === undefined ? 0n : (1n << 11n) | (BigInt(e.errorCode >>> 0) << 32n)) |
      (1n << 31n);
    v.setBigUint64(0xa8, inj, true);
  }
  v.setBigUint64(0xc8, BigInt.asUintN(64, c.nRip), true);
  v.setBigUint64(0x108, BigInt(c.vmsaPa), true);
  return out;
}
