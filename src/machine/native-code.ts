/**
 * Guest kernel code the emulator runs natively. Guest *programs* are written in the tiny ISA (isa.ts), but the
 * guest *kernel* — boot, the #VC handler, exception handlers — is TypeScript (src/guest/kernel), because what the
 * emulator has to get right is its effect on registers, private memory and the GHCB, not its instruction stream.
 *
 * The kernel's text occupies guest-virtual addresses from `NATIVE_CODE_BASE` up (just above the 1 GiB that guest
 * page tables map). When RIP points there the CPU calls `NativeGuestCode.run` instead of fetching an instruction;
 * IDT entries, the initial RIP and return addresses can point there like at any code. All kernel state lives
 * where a real kernel keeps it — registers (saved in the VMSA) and private memory — so a #VMEXIT in the middle of
 * the #VC handler (its VMGEXIT) leaves nothing outside what the hardware protects.
 */
import type { Vmsa } from "../measure/vmsa.ts";

/** First guest-virtual address of natively run kernel text. */
export const NATIVE_CODE_BASE = 0x4000_0000;
export const NATIVE_CODE_LIMIT = 0x8000_0000;

export function isNativeRip(rip: number): boolean {
  return rip >= NATIVE_CODE_BASE && rip < NATIVE_CODE_LIMIT;
}

/** What one native step asks the CPU to do next. */
export type NativeStep =
  /** Continue at `rip` (native or ISA code). */
  | { kind: "jump"; rip: number }
  /** Execute VMGEXIT (SEV-ES: automatic exit 0x403 with the GHCB MSR); after the next VMRUN continue at `resume`. */
  | { kind: "vmgexit"; resume: number }
  /** Execute HLT (an automatic exit when intercepted); continue at `resume`. */
  | { kind: "hlt"; resume: number }
  /**
   * The kernel gives up: it cannot continue and triple-faults (SHUTDOWN). `message` is what it would print on its
   * console, which the emulator hands to the host so a person sees why the VM stopped.
   */
  | { kind: "shutdown"; message: string };

/** The CPU as native kernel code sees it: its own registers and guest-virtual memory, nothing of the host. */
export interface NativeCpu {
  /** RAX … R15 in x86 order (writable). */
  readonly gpr: BigUint64Array;
  /** All other architectural state (RIP is managed by the steps; RSP lives in `gpr[4]`). */
  readonly state: Vmsa;
  /** Guest-virtual memory through the guest's own page tables (C-bit honoured, as for any guest access). */
  readU64(gva: number): bigint;
  writeU64(gva: number, value: bigint): void;
  read(gva: number, length: number): Uint8Array;
  write(gva: number, data: Uint8Array): void;
  /** RDMSR/WRMSR of MSRs the CPU itself provides (the GHCB MSR, SEV_STATUS); others are a host matter. */
  rdmsr(msr: number): bigint;
  wrmsr(msr: number, value: bigint): void;
  /**
   * PVALIDATE and RMPADJUST as the kernel executes them (same operands and results as the instructions, execution.ts):
   * the return code, and for PVALIDATE CF (true = Validated did not change). #UD outside SNP; a failed RMP check is
   * the #VMEXIT(NPF) the instruction raises, after which the kernel step runs again from its start.
   */
  pvalidate(gva: number, pageSize: 0 | 1, validate: boolean): { code: number; cf: boolean };
  rmpadjust(gva: number, pageSize: 0 | 1, attributes: bigint): number;
  /** INVLPG of everything: after the kernel changed a page-table entry (a C-bit, say). */
  invalidateTlb(): void;
  /** Whether this vCPU runs with SEV / SEV-ES active (what MSR SEV_STATUS also reports). */
  readonly sevActive: boolean;
  readonly sevEsActive: boolean;
}

export interface NativeGuestCode {
  /** Runs the kernel routine at `rip` for one step. Must not keep state outside `cpu`. */
  run(rip: number, cpu: NativeCpu): NativeStep;
}

/**
 * The exception frame the CPU writes when it delivers an exception, at `tr.base` (the per-CPU page that stands for
 * the IST stack): vector, error code, RIP, RSP, RFLAGS, each a u64. RSP is then set to `tr.base`.
 */
export const ExceptionFrame = {
  VECTOR: 0x00,
  ERROR_CODE: 0x08,
  RIP: 0x10,
  RSP: 0x18,
  RFLAGS: 0x20,
  SIZE: 0x28,
} as const;

/** IDT entries (16 bytes each, at `idtr.base`): u64 handler RIP, u64 flags (bit 0 present). */
export const IDT_ENTRY_SIZE = 16;

export const Vector = { UD: 6, DF: 8, GP: 13, PF: 14, VC: 29 } as const;
