/**
 * The guest kernels' routine table and termination reasons, shared by the kernel (kernel.ts) and its SEV-SNP parts
 * (snp-boot.ts, snp-memory.ts, snp-smp.ts). Routines are entry points: the CPU runs one per native step
 * (src/machine/native-code.ts), so a routine that issues a VMGEXIT names the routine the vCPU resumes at.
 */
import { NATIVE_CODE_BASE } from "../../machine/native-code.ts";
import { GUEST_OS_PROFILES, type GuestOsProfile } from "../os-profiles.ts";

/** Kernel routines; their addresses are NATIVE_CODE_BASE + profile index · 0x10000 + routine · 0x10. */
export const Routine = {
  BOOT: 0,
  BOOT_SEV_INFO: 1,
  BOOT_GHCB_REGISTERED: 2,
  BOOT_DONE: 3,
  VC_HANDLER: 4,
  VC_COMPLETE: 5,
  GENERIC_EXCEPTION: 6,
  TERMINATED: 7,
  /** Back from printk: clear its registers and enter the program. */
  PROGRAM_START: 8,
  /** The hypervisor callback interrupt (SEV-SNP guests): the guest agent's request (snp-guest.ts). */
  AGENT_CALLBACK: 9,
  /** Back from the SNP guest request exit. */
  AGENT_REPORT_DONE: 10,
  /** SEV-SNP boot (snp-boot.ts): the hypervisor features answer; the boot GHCB made shared; memory acceptance. */
  BOOT_HV_FEATURES: 11,
  BOOT_GHCB_SHARED: 12,
  SNP_ACCEPT: 13,
  /** A page state change through the GHCB (snp-memory.ts): (re)issue, and back from the hypervisor. */
  PSC_ISSUE: 14,
  PSC_CONTINUE: 15,
  /** The boot table's pages are shared now: clear them, then start the APs. */
  SNP_BOOT_SHARED: 16,
  /** SNP AP creation (snp-smp.ts): the BSP starts the next AP; back from the request; the AP's own start. */
  SMP_NEXT: 17,
  SMP_AP_CREATED: 18,
  AP_ENTRY: 19,
  AP_GHCB_REGISTERED: 20,
  AP_IDLE: 21,
  /**
   * Kernel calls a program may make (`call` to the routine's address), Linux's `set_memory_decrypted` /
   * `set_memory_encrypted`: RAX = first page (GVA = GPA), RCX = pages (1 … 253); RAX ← 0, or −22 (EINVAL).
   */
  SET_MEMORY_SHARED: 22,
  SET_MEMORY_PRIVATE: 23,
  /** Back from a kernel call's page state change: return to the caller. */
  KAPI_RETURN: 24,
} as const;
export type RoutineId = (typeof Routine)[keyof typeof Routine];

export const PROFILE_STRIDE = 0x1_0000;
export const ROUTINE_STRIDE = 0x10;

/** Guest-virtual address of a kernel routine for a guest OS profile. */
export function kernelAddress(profile: GuestOsProfile, routine: RoutineId): number {
  const i = GUEST_OS_PROFILES.findIndex((p) => p.id === profile.id);
  if (i < 0) throw new RangeError(`unknown guest OS profile ${profile.id}`);
  return NATIVE_CODE_BASE + i * PROFILE_STRIDE + routine * ROUTINE_STRIDE;
}

/**
 * Termination reasons (GHCB MSR protocol, docs/sev-interface.md §12.4): set 0 general, set 1 Linux-specific
 * (Linux `SEV_TERM_SET_*`, `GHCB_TERM_*`).
 */
export const Termination = {
  GENERAL: { set: 0, code: 0 },
  PROTOCOL_UNSUPPORTED: { set: 0, code: 1 },
  SNP_UNSUPPORTED: { set: 0, code: 2 },
  GHCB_REGISTRATION: { set: 1, code: 0 },
  PSC: { set: 1, code: 1 },
  PVALIDATE: { set: 1, code: 2 },
} as const;
export type TerminationReason = (typeof Termination)[keyof typeof Termination];
