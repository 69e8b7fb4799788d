/**
 * The non-automatic exits (NAE) an SEV-ES guest reports through the GHCB, and what the hypervisor requires and
 * returns for each — one table, read by the host's VMGEXIT validation and by the tests (docs/sev-interface.md §12.3,
 * §12.5; torvalds/linux `arch/x86/kvm/svm/sev.c` `sev_es_validate_vmgexit`, `sev_es_sync_to_ghcb`).
 *
 * What a *guest kernel* copies into the GHCB for each exit is the guest's business and lives with the guest
 * (src/guest/kernel); the hypervisor can only check presence, never where a value came from.
 */
import { SvmExit } from "./exit-codes.ts";
import type { GhcbFieldName, GhcbView } from "./ghcb.ts";

/** IOIO exit_info_1 bits (AMD APM vol. 2, "IOIO intercept"). */
export const Ioio = {
  TYPE_IN: 1 << 0,
  STRING: 1 << 2,
  REP: 1 << 3,
  SZ8: 1 << 4,
  SZ16: 1 << 5,
  SZ32: 1 << 6,
  A64: 1 << 9,
  PORT_SHIFT: 16,
} as const;

/** exit_info_1 of an IN/OUT of `size` bytes on `port` (non-string, 64-bit addressing). */
export function ioioExitInfo(port: number, size: 1 | 2 | 4, isIn: boolean): bigint {
  const sz = size === 1 ? Ioio.SZ8 : size === 2 ? Ioio.SZ16 : Ioio.SZ32;
  return (
    BigInt(((port & 0xffff) << Ioio.PORT_SHIFT) | sz | Ioio.A64 | (isIn ? Ioio.TYPE_IN : 0)) & 0xffffffffn
  );
}

/** Size in bytes of an IOIO access, from exit_info_1 (0 when no size bit is set: malformed). */
export function ioioSize(info1: bigint): 0 | 1 | 2 | 4 {
  const v = Number(info1 & 0x70n);
  return v === Ioio.SZ8 ? 1 : v === Ioio.SZ16 ? 2 : v === Ioio.SZ32 ? 4 : 0;
}

export interface NaeExitRow {
  code: number;
  name: string;
  /**
   * GHCB fields KVM requires before it emulates, beyond sw_exit_code / sw_exit_info_1 / sw_exit_info_2 (which every
   * exit requires). Computed from the *snapshot* only, so a guest cannot change the decision afterwards.
   */
  required(snapshot: GhcbView): GhcbFieldName[];
}

const none = (): GhcbFieldName[] => [];

/** Every NAE the emulated hypervisor accepts through the GHCB (≥ 10, as docs/threat-model.md §8 item 2 asks). */
export const NAE_EXITS: readonly NaeExitRow[] = [
  {
    code: SvmExit.CPUID,
    name: "CPUID",
    // Leaf 0xD (XSAVE sizes) depends on XCR0, so KVM needs it only then.
    required: (g) => (g.get("rax") === 0xdn ? ["rax", "rcx", "xcr0"] : ["rax", "rcx"]),
  },
  {
    code: SvmExit.IOIO,
    name: "IOIO",
    required: (g) => {
      const info1 = g.get("swExitInfo1");
      if (info1 & BigInt(Ioio.STRING)) return ["swScratch"];
      return info1 & BigInt(Ioio.TYPE_IN) ? [] : ["rax"];
    },
  },
  {
    code: SvmExit.MSR,
    name: "MSR",
    required: (g) => (g.get("swExitInfo1") ? ["rcx", "rax", "rdx"] : ["rcx"]),
  },
  { code: SvmExit.VMMCALL, name: "VMMCALL", required: () => ["rax", "cpl"] },
  { code: SvmExit.RDTSC, name: "RDTSC", required: none },
  { code: SvmExit.RDTSCP, name: "RDTSCP", required: none },
  { code: SvmExit.RDPMC, name: "RDPMC", required: () => ["rcx"] },
  { code: SvmExit.READ_DR7, name: "DR7 read", required: none },
  { code: SvmExit.WRITE_DR7, name: "DR7 write", required: () => ["rax"] },
  { code: SvmExit.WBINVD, name: "WBINVD", required: none },
  { code: SvmExit.INVD, name: "INVD", required: none },
  { code: SvmExit.MONITOR, name: "MONITOR", required: () => ["rax", "rcx", "rdx"] },
  { code: SvmExit.MWAIT, name: "MWAIT", required: () => ["rax", "rcx"] },
];

const BY_CODE = new Map(NAE_EXITS.map((r) => [r.code, r]));

export function naeExit(code: number): NaeExitRow | undefined {
  return BY_CODE.get(code);
}

/**
 * What KVM copies back to the GHCB after emulating: RAX, RBX, RCX, RDX, always, each with its valid bit — "it's the
 * guest's responsibility to not consume random data" (`sev_es_sync_to_ghcb`). Because KVM zeroed its copy and filled
 * in only valid inputs, these are the guest's own exposed values, emulation results, or zero.
 */
export const GHCB_RETURNED_FIELDS = ["rax", "rbx", "rcx", "rdx"] as const;
