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
 * | 0x20000–0x27FFF | kernel-provided stack (RSP starts at 0x28000) | private |
 * | 0x100000 | program code, then the program's data areas | per area |
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
} as const;

export const BOOT_MAGIC = 0x3130_544f_4f42_5643n;
