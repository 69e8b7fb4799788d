/**
 * Builds a bootable guest image from an assembled program and a guest OS profile: every guest page with its
 * contents, which pages the launch encrypts, the kernel's page tables (C-bit per page), IDT, boot information, and
 * the initial register state (layout.ts). What the host does with it — frames, NPT, LAUNCH_UPDATE_DATA/VMSA — is the
 * host's part (src/hypervisor/kvm/launch.ts).
 *
 * The page tables are what the guest kernel would build at boot: C = 1 on private pages only when the kernel can
 * (an SEV-capable kernel running with SEV active); shared areas and the GHCB always C = 0. Independently, under
 * SEV every page of the boot image except the shared ones is encrypted at launch, as OVMF's and the kernel's pages
 * are — so a kernel that cannot set the C-bit reads its own image as ciphertext.
 */
import { CiphervisorError } from "../errors.ts";
import type { CpuModel } from "../machine/cpu-models.ts";
import { ENTRIES_PER_TABLE, makeEntry } from "../machine/guest-paging.ts";
import { IDT_ENTRY_SIZE, Vector } from "../machine/native-code.ts";
import type { SecurityMode } from "../machine/vmcb.ts";
import type { VmcbSegment, Vmsa } from "../measure/vmsa.ts";
import { AGENT_VECTOR } from "./agent-mailbox.ts";
import type { GuestProgram } from "./assembler.ts";
import { kernelAddress, Routine } from "./kernel/kernel.ts";
import { printkProgram } from "./kernel/printk.ts";
import {
  AGENT_MAILBOX_GPA,
  apPages,
  BOOT_INFO_GPA,
  BOOT_MAGIC,
  BootInfo,
  CODE_BASE,
  GHCB_GPA,
  GUEST_SPACE_LIMIT,
  IDT_GPA,
  KLOG_GPA,
  MAX_APS,
  MAX_PAGE_TABLES,
  PAGE_DIRECTORY_GPA,
  PAGE_TABLES_GPA,
  PERCPU_GPA,
  PRINTK_GPA,
  SNP_BOOT_TABLE_GPA,
  SNP_PSC_GPA,
  SNP_REQUEST_GPA,
  SNP_RESPONSE_GPA,
  STACK_GPA,
  STACK_PAGES,
  STACK_TOP,
} from "./layout.ts";
import type { GuestOsProfile } from "./os-profiles.ts";
import { encodeSnpBootTable } from "./snp-boot-table.ts";

const PAGE = 4096;

export interface GuestPage {
  gpa: number;
  data: Uint8Array;
  /** Encrypted (and measured) by LAUNCH_UPDATE_DATA under SEV/SEV-ES; false for shared pages. */
  launchEncrypted: boolean;
  /** The C-bit the kernel's page tables give this page. */
  cBit: boolean;
  what: string;
  /**
   * Mapped by the kernel but loaded by someone else: the firmware's areas (e.g. the SEV secret area, written by
   * LAUNCH_SECRET). The host must not overwrite their contents.
   */
  preserve?: boolean;
  /**
   * SEV-SNP: private memory the firmware leaves unaccepted — the host assigns it to the guest in the RMP, nobody
   * loads it, and the kernel PVALIDATEs it at boot (its boot table's accept list).
   */
  unaccepted?: boolean;
}

export interface GuestImage {
  profile: GuestOsProfile;
  mode: SecurityMode;
  /** Every guest page, in GPA order. */
  pages: GuestPage[];
  /** Register state at the first VMRUN (the VMSA for SEV-ES, the VMCB save area otherwise). */
  initialState: Partial<Vmsa>;
  program: GuestProgram;
  ghcbGpa: number | undefined;
}

const seg = (selector: number, attrib: number, base = 0n, limit = 0xffffffff): VmcbSegment => ({
  selector,
  attrib,
  limit,
  base,
});

/** A region the firmware owns and the kernel maps (OVMF's SEV secret area, say), private like the firmware's pages. */
export interface FirmwareArea {
  gpa: number;
  size: number;
  what: string;
  /** The SEV secret area (OVMF's SEV_SECRET_AREA): the kernel's efi_secret driver reads it at boot. */
  secret?: boolean;
  /** The SEV-SNP secrets page: the kernel's SNP guest driver reads its VMPCK0 there. */
  snpSecrets?: boolean;
}

export function buildGuestImage(
  program: GuestProgram,
  opts: {
    profile: GuestOsProfile;
    mode: SecurityMode;
    model: CpuModel;
    firmwareAreas?: readonly FirmwareArea[];
    /** vCPUs of the VM: an SEV-SNP kernel starts the APs itself (SNP AP creation) and gets their pages. */
    vcpus?: number;
  },
): GuestImage {
  const { profile, mode, model } = opts;
  if (program.base !== CODE_BASE) {
    throw new CiphervisorError("INVALID_INPUT", `programs must be assembled at 0x${CODE_BASE.toString(16)}`);
  }
  const sev = mode !== "none";
  const kernelSetsCBit = sev && profile.sev;
  const pages = new Map<number, GuestPage>();
  const add = (gpa: number, what: string, shared: boolean, data: Uint8Array = new Uint8Array(PAGE)) => {
    if (pages.has(gpa))
      throw new CiphervisorError("INVALID_INPUT", `guest page 0x${gpa.toString(16)} is used twice`);
    pages.set(gpa, { gpa, data, launchEncrypted: sev && !shared, cBit: kernelSetsCBit && !shared, what });
  };

  // Program code and data areas.
  const codePages = Math.ceil(Math.max(program.code.length, 1) / PAGE);
  for (let i = 0; i < codePages; i++) {
    const page = new Uint8Array(PAGE);
    page.set(program.code.subarray(i * PAGE, (i + 1) * PAGE));
    add(CODE_BASE + i * PAGE, "code", false, page);
  }
  // SEV-SNP: the kernel accepts the program's private data areas itself, makes its shared buffers shared itself
  // and starts its APs itself (snp-boot-table.ts).
  const snpBoot = mode === "sev-snp" && profile.sevSnp;
  const accept: { gpa: number; pages: number }[] = [];
  const share: number[] = [];
  for (const r of program.regions) {
    for (let o = 0; o < r.size; o += PAGE)
      add(r.gva + o, `${r.shared ? "shared" : "private"} ${r.name}`, r.shared);
    if (snpBoot && !r.shared) {
      const n = Math.ceil(r.size / PAGE);
      for (let o = 0; o < n * PAGE; o += PAGE) pages.get(r.gva + o)!.unaccepted = true;
      accept.push({ gpa: r.gva, pages: n });
    }
  }
  const top = Math.max(...[...pages.keys()].map((g) => g + PAGE));
  if (top > GUEST_SPACE_LIMIT) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `the program needs ${top} bytes of guest memory; the kernel maps at most ${GUEST_SPACE_LIMIT}`,
    );
  }

  // Kernel pages.
  for (let i = 0; i < STACK_PAGES; i++) add(STACK_GPA + i * PAGE, "stack", false);
  const hasGhcb = sev && profile.sevEs;
  // Under SNP the GHCB reaches the kernel private; it converts it through the MSR protocol before first use.
  if (hasGhcb) add(GHCB_GPA, "GHCB", !snpBoot);
  // An SNP guest's guest agent and message pages (agent-mailbox.ts), shared with the hypervisor.
  const snpSecrets = opts.firmwareAreas?.find((a) => a.snpSecrets);
  const snpAgent = snpBoot && snpSecrets !== undefined;
  if (snpAgent) {
    for (const [gpa, what] of [
      [AGENT_MAILBOX_GPA, "guest-agent mailbox"],
      [SNP_REQUEST_GPA, "SNP guest request page"],
      [SNP_RESPONSE_GPA, "SNP guest response page"],
    ] as const) {
      add(gpa, what, false);
      share.push(gpa);
    }
  }
  const apCount = snpBoot ? Math.min(Math.max((opts.vcpus ?? 1) - 1, 0), MAX_APS) : 0;
  for (let id = 1; id <= apCount; id++) {
    const ap = apPages(id);
    add(ap.vmsa, `AP ${id} VMSA`, false);
    add(ap.ghcb, `AP ${id} GHCB`, false);
    add(ap.percpu, `AP ${id} per-CPU`, false);
    share.push(ap.ghcb);
  }
  if (snpBoot) {
    add(
      SNP_BOOT_TABLE_GPA,
      "SNP boot table",
      false,
      encodeSnpBootTable({ ghcbPrivate: hasGhcb, accept, share, apCount }),
    );
    add(SNP_PSC_GPA, "SNP page state change request", false);
  }

  const idt = new DataView(new ArrayBuffer(PAGE));
  for (let v = 0; v < 32; v++) {
    const routine = v === Vector.VC && profile.sevEs ? Routine.VC_HANDLER : Routine.GENERIC_EXCEPTION;
    idt.setBigUint64(v * IDT_ENTRY_SIZE, BigInt(kernelAddress(profile, routine)), true);
    idt.setBigUint64(v * IDT_ENTRY_SIZE + 8, 1n, true);
  }
  if (snpAgent) {
    idt.setBigUint64(
      AGENT_VECTOR * IDT_ENTRY_SIZE,
      BigInt(kernelAddress(profile, Routine.AGENT_CALLBACK)),
      true,
    );
    idt.setBigUint64(AGENT_VECTOR * IDT_ENTRY_SIZE + 8, 1n, true);
  }
  add(IDT_GPA, "IDT", false, new Uint8Array(idt.buffer));

  const percpu = new DataView(new ArrayBuffer(PAGE));
  const boot = BOOT_INFO_GPA - PERCPU_GPA;
  percpu.setBigUint64(boot + BootInfo.MAGIC, BOOT_MAGIC, true);
  percpu.setBigUint64(boot + BootInfo.ENTRY, BigInt(program.entry), true);
  percpu.setBigUint64(boot + BootInfo.GHCB_GVA, BigInt(hasGhcb ? GHCB_GPA : 0), true);
  percpu.setBigUint64(boot + BootInfo.GHCB_GPA, BigInt(hasGhcb ? GHCB_GPA : 0), true);
  percpu.setBigUint64(boot + BootInfo.DR7, 0x400n, true);
  if (snpAgent) percpu.setBigUint64(boot + BootInfo.SNP_SECRETS_GPA, BigInt(snpSecrets.gpa), true);
  if (snpBoot) percpu.setBigUint64(boot + BootInfo.SNP_BOOT_TABLE, BigInt(SNP_BOOT_TABLE_GPA), true);
  const secret = opts.firmwareAreas?.find((a) => a.secret && a.size > 0);
  const efiSecret = secret !== undefined && profile.efiSecret;
  if (efiSecret) {
    percpu.setBigUint64(boot + BootInfo.SECRET_GPA, BigInt(secret.gpa), true);
    percpu.setBigUint64(boot + BootInfo.SECRET_SIZE, BigInt(secret.size), true);
  }
  if (efiSecret || apCount > 0) {
    // Where its boot messages wait, and the printk that writes them out through real OUT exits.
    add(KLOG_GPA, "kernel log", false);
    const printk = new Uint8Array(PAGE);
    printk.set(printkProgram().code);
    add(PRINTK_GPA, "kernel text (printk)", false, printk);
  }
  add(PERCPU_GPA, "per-CPU", false, new Uint8Array(percpu.buffer));

  // Firmware areas (e.g. the secret area the Linux efi_secret driver maps): mapped, never overwritten.
  for (const a of opts.firmwareAreas ?? []) {
    for (let gpa = a.gpa - (a.gpa % PAGE); gpa < a.gpa + a.size; gpa += PAGE) {
      if (pages.has(gpa)) continue;
      add(gpa, a.what, false);
      pages.get(gpa)!.preserve = true;
    }
  }

  // Page tables: identity map of every page above, C-bit as decided; then the tables themselves.
  const mapped = [...pages.values()];
  const tables = new Map<number, DataView>();
  for (const p of mapped) {
    const pd = Math.floor(p.gpa / (1 << 21));
    if (pd >= MAX_PAGE_TABLES)
      throw new CiphervisorError("INVALID_INPUT", "guest page beyond the mapped space");
    let t = tables.get(pd);
    if (!t) {
      t = new DataView(new ArrayBuffer(PAGE));
      tables.set(pd, t);
    }
    const i = Math.floor(p.gpa / PAGE) % ENTRIES_PER_TABLE;
    t.setBigUint64(i * 8, makeEntry(p.gpa, { cBit: model.cBit, private: p.cBit }), true);
  }
  // An SNP kernel edits its own page tables (the C-bit of each page it converts), so it maps them too.
  if (snpBoot) {
    const low = tables.get(0)!;
    for (const gpa of [PAGE_DIRECTORY_GPA, ...[...tables.keys()].map((pd) => PAGE_TABLES_GPA + pd * PAGE)]) {
      low.setBigUint64((gpa / PAGE) * 8, makeEntry(gpa, { cBit: model.cBit, private: true }), true);
    }
  }
  const dir = new DataView(new ArrayBuffer(PAGE));
  for (const [pd, t] of tables) {
    const gpa = PAGE_TABLES_GPA + pd * PAGE;
    dir.setBigUint64(pd * 8, makeEntry(gpa, { cBit: model.cBit, private: kernelSetsCBit }), true);
    add(gpa, "page table", false, new Uint8Array(t.buffer));
  }
  add(PAGE_DIRECTORY_GPA, "page directory", false, new Uint8Array(dir.buffer));

  const initialState: Partial<Vmsa> = {
    cs: seg(0x10, 0x029b),
    ss: seg(0x18, 0x0c93),
    ds: seg(0x18, 0x0c93),
    es: seg(0x18, 0x0c93),
    fs: seg(0x18, 0x0c93),
    gs: seg(0x18, 0x0c93),
    gdtr: seg(0, 0, 0n, 0xffff),
    ldtr: seg(0, 0x82, 0n, 0xffff),
    idtr: seg(0, 0, BigInt(IDT_GPA), PAGE - 1),
    tr: seg(0x28, 0x8b, BigInt(PERCPU_GPA), PAGE - 1),
    cr0: 0x8000_0011n,
    cr3: BigInt(PAGE_DIRECTORY_GPA),
    cr4: 0x0004_0020n,
    efer: 0x1d00n,
    rflags: 0x2n,
    rip: BigInt(kernelAddress(profile, Routine.BOOT)),
    rsp: BigInt(STACK_TOP),
    dr7: 0x400n,
    dr6: 0xffff0ff0n,
    gPat: 0x0007040600070406n,
    xcr0: 0x1n,
    rdx: BigInt(model.cpuidSignature),
  };

  return {
    profile,
    mode,
    pages: [...pages.values()].sort((a, b) => a.gpa - b.gpa),
    initialState,
    program,
    ghcbGpa: hasGhcb ? GHCB_GPA : undefined,
  };
}
