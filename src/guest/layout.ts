/**
 * Guest-physical layout of an emulated guest (guest-virtual = guest-physical: the kernel identity-maps). Fixed
 * addresses keep the kernel model small; programs get everything from 1 MiB up.
 *
 * | GPA | what | C-bit |
 * |---|---|---|
 * | 0x0000 | not mapped (null page) | – |
 * | 0x1000 | IDT: 256 × {u64 handler, u64 flags} | private |
 * | 0x2000 | per-CPU page: exception frame @0 (the "IST stack"), boot info @0x100 | private |
 * | 0x3000 | page directory (CR3) | private |
 * | 0x4000–0xFFFF | page tables, one per 2 MiB of guest-virtual space (24 MiB at most) | private |
 * | 0x10000 | GHCB (SEV-ES kernels) | **shared** |
 * | 0x11000 | kernel log: boot messages waiting to be printed (efi_secret kernels) | private |
 * | 0x12000 | kernel text: `printk`, in the ISA, so each byte leaves through a real OUT exit | private |
 * | 0x13000 | guest-agent mailbox (SEV-SNP kernels: the host's attestation-report requests, agent-mailbox.ts) | **shared** |
 * | 0x14000 | SNP guest request message page (SEV-SNP kernels) | **shared** |
 * | 0x15000 | SNP guest response message page (SEV-SNP kernels) | **shared** |
 * | 0x16000 | SNP boot table: memory to accept, pages to share, APs to start (snp-boot-table.ts) | private |
 * | 0x17000 | SNP page state change: the kernel's private copy of its request (kernel/snp-memory.ts) | private |
 * | 0x20000–0x27FFF | kernel-provided stack (RSP starts at 0x28000) | private |
 * | 0x30000–0xEFFFF | SEV-SNP APs, 3 pages each from APIC ID 1: VMSA, GHCB, per-CPU page | private (GHCB made shared) |
 * | 0x100000 | program code, then the program's data areas | per area |
 *
 * Under SEV-SNP the GHCB and the guest-agent pages reach the kernel private, as the rest of its memory: the kernel
 * makes them shared at boot with page state changes, as Linux does with its boot GHCB and its driver buffers.
 */

export const IDT_GPA = 0x1000;
export const PERCPU_GPA = 0x2000;
export const BOOT_INFO_GPA = PERCPU_GPA + 0x100;
export const PAGE_DIRECTORY_GPA = 0x3000;
export const PAGE_TABLES_GPA = 0x4000;
export const MAX_PAGE_TABLES = 12;
export const GHCB_GPA = 0x10000;
export const KLOG_GPA = 0x11000;
export const KLOG_SIZE = 4096;
export const PRINTK_GPA = 0x12000;
export const AGENT_MAILBOX_GPA = 0x13000;
export const SNP_REQUEST_GPA = 0x14000;
export const SNP_RESPONSE_GPA = 0x15000;
export const SNP_BOOT_TABLE_GPA = 0x16000;
export const SNP_PSC_GPA = 0x17000;
/** The APs' pages: VMSA, GHCB, per-CPU page, for APIC IDs 1, 2, … (63 at most: 64 vCPUs). */
export const AP_PAGES_GPA = 0x30000;
export const AP_PAGES_PER_CPU = 3;
export const MAX_APS = 63;

/** The three pages of the AP with this APIC ID (≥ 1). */
export function apPages(apicId: number): { vmsa: number; ghcb: number; percpu: number } {
  const base = AP_PAGES_GPA + (apicId - 1) * AP_PAGES_PER_CPU * 4096;
  return { vmsa: base, ghcb: base + 4096, percpu: base + 2 * 4096 };
}
export const STACK_GPA = 0x20000;
export const STACK_PAGES = 8;
export const STACK_TOP = STACK_GPA + STACK_PAGES * 4096;
export const CODE_BASE = 0x100000;
/** Guest-virtual space the page tables can cover. */
export const GUEST_SPACE_LIMIT = MAX_PAGE_TABLES * (1 << 21);

/** Boot information the kernel keeps in its per-CPU page (private memory). */
export const BootInfo = {
  /** "CVBOOT01" little-endian: lets a kernel notice that it reads its own memory as ciphertext. */
  MAGIC: 0x00,
  ENTRY: 0x08,
  GHCB_GVA: 0x10,
  GHCB_GPA: 0x18,
  /** GHCB protocol version negotiated at boot (0 until then). */
  PROTOCOL: 0x20,
  /** The kernel's cached DR7 (Linux answers DR7 reads from its per-CPU copy). */
  DR7: 0x28,
  /** Where the firmware's SEV secret area is (0 when the firmware has none), and its size. */
  SECRET_GPA: 0x30,
  SECRET_SIZE: 0x38,
  /** SEV-SNP: where the firmware's secrets page is (0 without SNP), as OVMF tells Linux (its CC blob). */
  SNP_SECRETS_GPA: 0x40,
  /** SEV-SNP: MSG_SEQNO of the last response received under VMPCK0 (the next request carries this + 1). */
  SNP_MSG_SEQNO: 0x48,
  /** SEV-SNP: where the boot table is (0: nothing to accept, share or start — the kernel skips those steps). */
  SNP_BOOT_TABLE: 0x50,
  /** SEV-SNP: the hypervisor's feature bitmap (GHCB MSR protocol 0x081). */
  HV_FEATURES: 0x58,
  /** The C-bit position, from the SEV_INFO response (what the kernel sets and clears in its page tables). */
  C_BIT: 0x60,
  /** SEV-SNP: pages of the boot table's accept list validated so far (a restarted step continues there). */
  ACCEPT_DONE: 0x68,
  /** SEV-SNP: the APIC ID of the next AP to start; bitmaps of the APs that came online and that failed. */
  SMP_NEXT: 0x70,
  SMP_ONLINE: 0x78,
  SMP_FAILED: 0x80,
  /** Where a program's call into the kernel (set_memory_shared / _private) returns. */
  KAPI_RETURN: 0x88,
} as const;

export const BOOT_MAGIC = 0x3130_544f_4f42_5643n;
