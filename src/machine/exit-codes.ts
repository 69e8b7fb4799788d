/**
 * SVM #VMEXIT codes and their SEV-ES class, as one table (docs/sev-interface.md §12.5). In an SEV-ES guest an intercepted
 * *non-automatic* exit (NAE) does not leave the guest: the CPU raises #VC (vector 29) inside it with the exit code as
 * error code, and the guest's #VC handler asks the hypervisor through the GHCB. *Automatic* exits (AE) leave the
 * guest directly, with state saved into the encrypted VMSA. Plain SEV and non-SEV guests take every intercept as a
 * direct #VMEXIT with their registers in the (plaintext) save area.
 *
 * The AE list is [unconfirmed] (reconstructed from the APM and KVM, §12.5).
 */

export type ExitClass = "automatic" | "non-automatic";

export interface ExitCodeRow {
  code: number;
  name: string;
  /** How an SEV-ES guest takes this exit. */
  esClass: ExitClass;
}

/** VMRUN itself failed (invalid VMCB/VMSA state): the CPU reports exit code −1 (VMEXIT_INVALID). */
export const VMEXIT_INVALID = -1;

export const SvmExit = {
  READ_DR7: 0x27,
  WRITE_DR7: 0x37,
  EXCP_AC: 0x51,
  MC: 0x52,
  INTR: 0x60,
  NMI: 0x61,
  SMI: 0x62,
  INIT: 0x63,
  VINTR: 0x64,
  RDTSC: 0x6e,
  RDPMC: 0x6f,
  CPUID: 0x72,
  INVD: 0x76,
  PAUSE: 0x77,
  HLT: 0x78,
  IOIO: 0x7b,
  MSR: 0x7c,
  SHUTDOWN: 0x7f,
  VMMCALL: 0x81,
  RDTSCP: 0x87,
  WBINVD: 0x89,
  MONITOR: 0x8a,
  MWAIT: 0x8b,
  NPF: 0x400,
  VMGEXIT: 0x403,
} as const;

export type SvmExitName = keyof typeof SvmExit;

/** The one table: code, name, SEV-ES class. */
export const EXIT_CODES: readonly ExitCodeRow[] = [
  { code: SvmExit.READ_DR7, name: "DR7 read", esClass: "non-automatic" },
  { code: SvmExit.WRITE_DR7, name: "DR7 write", esClass: "non-automatic" },
  { code: SvmExit.EXCP_AC, name: "#AC", esClass: "non-automatic" },
  { code: SvmExit.MC, name: "#MC", esClass: "automatic" },
  { code: SvmExit.INTR, name: "physical interrupt", esClass: "automatic" },
  { code: SvmExit.NMI, name: "NMI", esClass: "automatic" },
  { code: SvmExit.SMI, name: "SMI", esClass: "automatic" },
  { code: SvmExit.INIT, name: "INIT", esClass: "automatic" },
  { code: SvmExit.VINTR, name: "virtual interrupt", esClass: "automatic" },
  { code: SvmExit.RDTSC, name: "RDTSC", esClass: "non-automatic" },
  { code: SvmExit.RDPMC, name: "RDPMC", esClass: "non-automatic" },
  { code: SvmExit.CPUID, name: "CPUID", esClass: "non-automatic" },
  { code: SvmExit.INVD, name: "INVD", esClass: "non-automatic" },
  { code: SvmExit.PAUSE, name: "PAUSE", esClass: "automatic" },
  { code: SvmExit.HLT, name: "HLT", esClass: "automatic" },
  { code: SvmExit.IOIO, name: "IOIO", esClass: "non-automatic" },
  { code: SvmExit.MSR, name: "MSR", esClass: "non-automatic" },
  { code: SvmExit.SHUTDOWN, name: "SHUTDOWN", esClass: "automatic" },
  { code: SvmExit.VMMCALL, name: "VMMCALL", esClass: "non-automatic" },
  { code: SvmExit.RDTSCP, name: "RDTSCP", esClass: "non-automatic" },
  { code: SvmExit.WBINVD, name: "WBINVD", esClass: "non-automatic" },
  { code: SvmExit.MONITOR, name: "MONITOR", esClass: "non-automatic" },
  { code: SvmExit.MWAIT, name: "MWAIT", esClass: "non-automatic" },
  { code: SvmExit.NPF, name: "nested page fault", esClass: "automatic" },
  { code: SvmExit.VMGEXIT, name: "VMGEXIT", esClass: "automatic" },
];

const BY_CODE = new Map(EXIT_CODES.map((r) => [r.code, r]));

/** The row of an exit code, if it is one the emulated CPU produces. */
export function exitCodeRow(code: number): ExitCodeRow | undefined {
  return BY_CODE.get(code);
}

/** A readable name: "CPUID (0x72)", "VMEXIT_INVALID (-1)", or the hex code for an unknown one. */
export function exitCodeName(code: number): string {
  if (code === VMEXIT_INVALID) return "VMEXIT_INVALID (-1)";
  const row = BY_CODE.get(code);
  return row ? `${row.name} (0x${code.toString(16)})` : `exit 0x${code.toString(16)}`;
}

/** True when an SEV-ES guest takes this intercept as #VC rather than as a direct #VMEXIT. */
export function isNonAutomatic(code: number): boolean {
  return BY_CODE.get(code)?.esClass === "non-automatic";
}
