/**
 * What one kernel step offers the kernel's parts (snp-boot.ts, snp-memory.ts, snp-smp.ts, snp-guest.ts): the CPU,
 * the boot information in private memory, its routines' addresses, and the ways a step ends. Everything a routine
 * keeps across a VMGEXIT is in there — registers, boot information, private kernel pages — never in TypeScript.
 */
import type { NativeCpu, NativeStep } from "../../machine/native-code.ts";
import type { GuestOsProfile } from "../os-profiles.ts";
import type { RoutineId, TerminationReason } from "./routines.ts";

export interface KernelContext {
  readonly profile: GuestOsProfile;
  readonly cpu: NativeCpu;
  boot(field: number): bigint;
  setBoot(field: number, v: bigint): void;
  /** The address of one of this kernel's routines. */
  at(routine: RoutineId): number;
  /** Ends the VM: the GHCB MSR protocol termination request, then a halt loop. */
  terminate(reason: TerminationReason): NativeStep;
  /** VMGEXIT through the kernel's GHCB (the GHCB MSR set to its GPA), resuming at `resume`. */
  ghcbExit(resume: RoutineId): NativeStep;
}
