/**
 * The SEV-ES VMSA page (VM save area) codec and the reset-state VMSA that QEMU/KVM measure, docs/sev-interface.md §12.1
 * and §12.2.
 *
 * The page is 4 KiB; the architectural save area is its first 0x670 bytes (Linux `struct sev_es_save_area`) and the
 * rest is zero. Segment records are 16 bytes: u16 selector, u16 attrib, u32 limit, u64 base.
 *
 * | offset | field | offset | field |
 * |--------|-------|--------|-------|
 * | 0x000–0x090 | es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr (segments) | 0x0A0–0x0B8 | pl0..pl3_ssp |
 * | 0x0C0 | u_cet | 0x0CA / 0x0CB | vmpl (u8) / cpl (u8) |
 * | 0x0D0 | efer | 0x140 | xss |
 * | 0x148 / 0x150 / 0x158 | cr4 / cr3 / cr0 | 0x160 / 0x168 | dr7 / dr6 |
 * | 0x170 / 0x178 | rflags / rip | 0x180–0x1B8 | dr0–dr3, dr0–dr3 address masks |
 * | 0x1D8 | rsp | 0x1E0 / 0x1E8 / 0x1F0 | s_cet / ssp / isst_addr |
 * | 0x1F8 | rax | 0x200–0x238 | star, lstar, cstar, sfmask, kernel_gs_base, sysenter_cs/esp/eip |
 * | 0x240 | cr2 | 0x268 / 0x270 | g_pat / dbgctl |
 * | 0x278–0x290 | br_from, br_to, last_excp_from, last_excp_to | 0x2E8 / 0x2EC | pkru (u32) / tsc_aux (u32) |
 * | 0x2F0 / 0x2F8 | tsc_scale / tsc_offset | 0x308 / 0x310 / 0x318 | rcx / rdx / rbx (0x320 reserved: no RSP here) |
 * | 0x328 / 0x330 / 0x338 | rbp / rsi / rdi | 0x340–0x378 | r8–r15 |
 * | 0x390–0x3A8 | guest_exit_info_1/2, guest_exit_int_info, guest_nrip | 0x3B0 | sev_features |
 * | 0x3B8–0x3E0 | vintr_ctrl, guest_exit_code, virtual_tom, tlb_id, pcpu_id, event_inj | 0x3E8 | xcr0 |
 * | 0x400 | x87_dp | 0x408 | mxcsr (u32) |
 * | 0x40C–0x416 | x87_ftw, fsw, fcw, fop, ds, cs (u16) | 0x418 | x87_rip |
 * | 0x420 | fpreg_x87[80] | 0x470 / 0x570 | fpreg_xmm[256] / fpreg_ymm[256] |
 *
 * {@link encodeVmsa} / {@link decodeVmsa} cover every named field, so the machine and hypervisor layers can use them
 * for live vCPU save areas; {@link buildResetVmsa} builds the reset state on top.
 */
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter } from "../lib/bytes.ts";

export const VMSA_PAGE_SIZE = 4096;
/** Size of the architectural save area; the page is zero beyond it. */
export const VMSA_SAVE_AREA_SIZE = 0x670;

/** A VMCB segment record. */
export interface VmcbSegment {
  selector: number;
  attrib: number;
  limit: number;
  base: bigint;
}

/** Every named field of the VMSA. 64-bit fields are bigint (register values use all 64 bits). */
export interface Vmsa {
  es: VmcbSegment;
  cs: VmcbSegment;
  ss: VmcbSegment;
  ds: VmcbSegment;
  fs: VmcbSegment;
  gs: VmcbSegment;
  gdtr: VmcbSegment;
  ldtr: VmcbSegment;
  idtr: VmcbSegment;
  tr: VmcbSegment;
  pl0Ssp: bigint;
  pl1Ssp: bigint;
  pl2Ssp: bigint;
  pl3Ssp: bigint;
  uCet: bigint;
  vmpl: number;
  cpl: number;
  efer: bigint;
  xss: bigint;
  cr4: bigint;
  cr3: bigint;
  cr0: bigint;
  dr7: bigint;
  dr6: bigint;
  rflags: bigint;
  rip: bigint;
  dr0: bigint;
  dr1: bigint;
  dr2: bigint;
  dr3: bigint;
  dr0AddrMask: bigint;
  dr1AddrMask: bigint;
  dr2AddrMask: bigint;
  dr3AddrMask: bigint;
  rsp: bigint;
  sCet: bigint;
  ssp: bigint;
  isstAddr: bigint;
  rax: bigint;
  star: bigint;
  lstar: bigint;
  cstar: bigint;
  sfmask: bigint;
  kernelGsBase: bigint;
  sysenterCs: bigint;
  sysenterEsp: bigint;
  sysenterEip: bigint;
  cr2: bigint;
  gPat: bigint;
  dbgctl: bigint;
  brFrom: bigint;
  brTo: bigint;
  lastExcpFrom: bigint;
  lastExcpTo: bigint;
  pkru: number;
  tscAux: number;
  tscScale: bigint;
  tscOffset: bigint;
  rcx: bigint;
  rdx: bigint;
  rbx: bigint;
  rbp: bigint;
  rsi: bigint;
  rdi: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  guestExitInfo1: bigint;
  guestExitInfo2: bigint;
  guestExitIntInfo: bigint;
  guestNrip: bigint;
  sevFeatures: bigint;
  vintrCtrl: bigint;
  guestExitCode: bigint;
  virtualTom: bigint;
  tlbId: bigint;
  pcpuId: bigint;
  eventInj: bigint;
  xcr0: bigint;
  x87Dp: bigint;
  mxcsr: number;
  x87Ftw: number;
  x87Fsw: number;
  x87Fcw: number;
  x87Fop: number;
  x87Ds: number;
  x87Cs: number;
  x87Rip: bigint;
  /** 8 × 8 low bytes, then 8 × 2 high bytes (80 bytes). */
  fpregX87: Uint8Array;
  fpregXmm: Uint8Array;
  fpregYmm: Uint8Array;
}

type FieldKind = "segment" | "u8" | "u16" | "u32" | "u64" | { bytes: number };
/** The kinds a field of type T may have, so the layout table below cannot disagree with {@link Vmsa}. */
type KindFor<T> = T extends bigint
  ? "u64"
  : T extends VmcbSegment
    ? "segment"
    : T extends Uint8Array
      ? { bytes: number }
      : "u8" | "u16" | "u32";
export interface VmsaFieldSpec<K extends FieldKind = FieldKind> {
  offset: number;
  kind: K;
}

/** The §12.1 layout: one row per field. Exported so other layers can show or diff VMSAs by offset. */
export const VMSA_LAYOUT: { readonly [F in keyof Vmsa]: VmsaFieldSpec<KindFor<Vmsa[F]>> } = {
  es: { offset: 0x000, kind: "segment" },
  cs: { offset: 0x010, kind: "segment" },
  ss: { offset: 0x020, kind: "segment" },
  ds: { offset: 0x030, kind: "segment" },
  fs: { offset: 0x040, kind: "segment" },
  gs: { offset: 0x050, kind: "segment" },
  gdtr: { offset: 0x060, kind: "segment" },
  ldtr: { offset: 0x070, kind: "segment" },
  idtr: { offset: 0x080, kind: "segment" },
  tr: { offset: 0x090, kind: "segment" },
  pl0Ssp: { offset: 0x0a0, kind: "u64" },
  pl1Ssp: { offset: 0x0a8, kind: "u64" },
  pl2Ssp: { offset: 0x0b0, kind: "u64" },
  pl3Ssp: { offset: 0x0b8, kind: "u64" },
  uCet: { offset: 0x0c0, kind: "u64" },
  vmpl: { offset: 0x0ca, kind: "u8" },
  cpl: { offset: 0x0cb, kind: "u8" },
  efer: { offset: 0x0d0, kind: "u64" },
  xss: { offset: 0x140, kind: "u64" },
  cr4: { offset: 0x148, kind: "u64" },
  cr3: { offset: 0x150, kind: "u64" },
  cr0: { offset: 0x158, kind: "u64" },
  dr7: { offset: 0x160, kind: "u64" },
  dr6: { offset: 0x168, kind: "u64" },
  rflags: { offset: 0x170, kind: "u64" },
  rip: { offset: 0x178, kind: "u64" },
  dr0: { offset: 0x180, kind: "u64" },
  dr1: { offset: 0x188, kind: "u64" },
  dr2: { offset: 0x190, kind: "u64" },
  dr3: { offset: 0x198, kind: "u64" },
  dr0AddrMask: { offset: 0x1a0, kind: "u64" },
  dr1AddrMask: { offset: 0x1a8, kind: "u64" },
  dr2AddrMask: { offset: 0x1b0, kind: "u64" },
  dr3AddrMask: { offset: 0x1b8, kind: "u64" },
  rsp: { offset: 0x1d8, kind: "u64" },
  sCet: { offset: 0x1e0, kind: "u64" },
  ssp: { offset: 0x1e8, kind: "u64" },
  isstAddr: { offset: 0x1f0, kind: "u64" },
  rax: { offset: 0x1f8, kind: "u64" },
  star: { offset: 0x200, kind: "u64" },
  lstar: { offset: 0x208, kind: "u64" },
  cstar: { offset: 0x210, kind: "u64" },
  sfmask: { offset: 0x218, kind: "u64" },
  kernelGsBase: { offset: 0x220, kind: "u64" },
  sysenterCs: { offset: 0x228, kind: "u64" },
  sysenterEsp: { offset: 0x230, kind: "u64" },
  sysenterEip: { offset: 0x238, kind: "u64" },
  cr2: { offset: 0x240, kind: "u64" },
  gPat: { offset: 0x268, kind: "u64" },
  dbgctl: { offset: 0x270, kind: "u64" },
  brFrom: { offset: 0x278, kind: "u64" },
  brTo: { offset: 0x280, kind: "u64" },
  lastExcpFrom: { offset: 0x288, kind: "u64" },
  lastExcpTo: { offset: 0x290, kind: "u64" },
  pkru: { offset: 0x2e8, kind: "u32" },
  tscAux: { offset: 0x2ec, kind: "u32" },
  tscScale: { offset: 0x2f0, kind: "u64" },
  tscOffset: { offset: 0x2f8, kind: "u64" },
  rcx: { offset: 0x308, kind: "u64" },
  rdx: { offset: 0x310, kind: "u64" },
  rbx: { offset: 0x318, kind: "u64" },
  rbp: { offset: 0x328, kind: "u64" },
  rsi: { offset: 0x330, kind: "u64" },
  rdi: { offset: 0x338, kind: "u64" },
  r8: { offset: 0x340, kind: "u64" },
  r9: { offset: 0x348, kind: "u64" },
  r10: { offset: 0x350, kind: "u64" },
  r11: { offset: 0x358, kind: "u64" },
  r12: { offset: 0x360, kind: "u64" },
  r13: { offset: 0x368, kind: "u64" },
  r14: { offset: 0x370, kind: "u64" },
  r15: { offset: 0x378, kind: "u64" },
  guestExitInfo1: { offset: 0x390, kind: "u64" },
  guestExitInfo2: { offset: 0x398, kind: "u64" },
  guestExitIntInfo: { offset: 0x3a0, kind: "u64" },
  guestNrip: { offset: 0x3a8, kind: "u64" },
  sevFeatures: { offset: 0x3b0, kind: "u64" },
  vintrCtrl: { offset: 0x3b8, kind: "u64" },
  guestExitCode: { offset: 0x3c0, kind: "u64" },
  virtualTom: { offset: 0x3c8, kind: "u64" },
  tlbId: { offset: 0x3d0, kind: "u64" },
  pcpuId: { offset: 0x3d8, kind: "u64" },
  eventInj: { offset: 0x3e0, kind: "u64" },
  xcr0: { offset: 0x3e8, kind: "u64" },
  x87Dp: { offset: 0x400, kind: "u64" },
  mxcsr: { offset: 0x408, kind: "u32" },
  x87Ftw: { offset: 0x40c, kind: "u16" },
  x87Fsw: { offset: 0x40e, kind: "u16" },
  x87Fcw: { offset: 0x410, kind: "u16" },
  x87Fop: { offset: 0x412, kind: "u16" },
  x87Ds: { offset: 0x414, kind: "u16" },
  x87Cs: { offset: 0x416, kind: "u16" },
  x87Rip: { offset: 0x418, kind: "u64" },
  fpregX87: { offset: 0x420, kind: { bytes: 80 } },
  fpregXmm: { offset: 0x470, kind: { bytes: 256 } },
  fpregYmm: { offset: 0x570, kind: { bytes: 256 } },
};

const FIELD_NAMES = Object.keys(VMSA_LAYOUT) as (keyof Vmsa)[];

function badField(name: string, why: string): CiphervisorError {
  return new CiphervisorError("INVALID_INPUT", `VMSA field ${name}: ${why}`);
}

function checkInt(name: string, v: unknown, bits: 8 | 16 | 32): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw badField(name, `must be a u${bits}, got ${String(v)}`);
  }
  return v;
}

function checkU64(name: string, v: unknown): bigint {
  if (typeof v !== "bigint" || v < 0n || v >= 1n << 64n) {
    throw badField(name, `must be a u64 bigint, got ${String(v)}`);
  }
  return v;
}

function writeSegment(w: ByteWriter, offset: number, name: string, v: unknown): void {
  if (typeof v !== "object" || v === null || v instanceof Uint8Array)
    throw badField(name, "must be a segment");
  const s = v as Partial<VmcbSegment>;
  w.u16(offset, checkInt(`${name}.selector`, s.selector, 16))
    .u16(offset + 2, checkInt(`${name}.attrib`, s.attrib, 16))
    .u32(offset + 4, checkInt(`${name}.limit`, s.limit, 32))
    .u64(offset + 8, checkU64(`${name}.base`, s.base));
}

/**
 * Encodes a 4096-byte VMSA page. Fields left out are zero, as are the reserved bytes and everything past 0x670.
 *
 * @example
 * ```ts
 * const page = encodeVmsa({ rip: 0xfff0n, rflags: 0x2n, cs: { selector: 0xf000, attrib: 0x9b, limit: 0xffff, base: 0xffff0000n } });
 * ```
 * @throws CiphervisorError INVALID_INPUT when a value does not fit its field.
 */
export function encodeVmsa(fields: Partial<Vmsa>): Uint8Array {
  const w = new ByteWriter(VMSA_PAGE_SIZE);
  for (const name of FIELD_NAMES) {
    const v = fields[name];
    if (v === undefined) continue;
    const { offset, kind }: VmsaFieldSpec = VMSA_LAYOUT[name];
    if (kind === "segment") writeSegment(w, offset, name, v);
    else if (kind === "u8") w.u8(offset, checkInt(name, v, 8));
    else if (kind === "u16") w.u16(offset, checkInt(name, v, 16));
    else if (kind === "u32") w.u32(offset, checkInt(name, v, 32));
    else if (kind === "u64") w.u64(offset, checkU64(name, v));
    else {
      if (!(v instanceof Uint8Array) || v.length !== kind.bytes) {
        throw badField(name, `must be ${kind.bytes} bytes`);
      }
      w.set(offset, v);
    }
  }
  return w.bytes;
}

/**
 * Decodes every named field of a 4096-byte VMSA page. Reserved bytes are not interpreted (the firmware may keep data
 * there, e.g. the register-protection nonce at 0x300).
 * @throws CiphervisorError MALFORMED when the page is not 4096 bytes.
 */
export function decodeVmsa(page: Uint8Array): Vmsa {
  if (page.length !== VMSA_PAGE_SIZE) {
    throw new CiphervisorError("MALFORMED", `a VMSA page is ${VMSA_PAGE_SIZE} bytes, got ${page.length}`);
  }
  const r = new ByteReader(page, "VMSA page");
  const out: Record<string, VmcbSegment | bigint | number | Uint8Array> = {};
  for (const name of FIELD_NAMES) {
    const { offset, kind }: VmsaFieldSpec = VMSA_LAYOUT[name];
    if (kind === "segment") {
      out[name] = {
        selector: r.u16(offset),
        attrib: r.u16(offset + 2),
        limit: r.u32(offset + 4),
        base: r.u64(offset + 8),
      };
    } else if (kind === "u8") out[name] = r.u8(offset);
    else if (kind === "u16") out[name] = r.u16(offset);
    else if (kind === "u32") out[name] = r.u32(offset);
    else if (kind === "u64") out[name] = r.u64(offset);
    else out[name] = r.slice(offset, kind.bytes);
  }
  // Every key of VMSA_LAYOUT was filled with the type its kind decodes to (checked by KindFor above).
  return out as unknown as Vmsa;
}

// ---------------------------------------------------------------------------------------------------------------
// Reset state (§12.2)

/** The BSP starts at the architectural reset vector. */
export const BSP_RESET_EIP = 0xfffffff0;

/**
 * How a host stack initialises a vCPU before LAUNCH_UPDATE_VMSA (§8.5, §12.2, docs/sev-interface.md §15 pitfall 12):
 * - `qemu`: QEMU with KVM_SEV_INIT2, which also copies x87/SSE state (mxcsr 0x1F80, fcw 0x037F).
 * - `qemu-legacy`: QEMU with KVM_SEV_ES_INIT, which leaves mxcsr and fcw 0 ("to avoid breaking older measurements").
 * - `ec2`, `gce`: the other VMMs virtee/sev-snp-measure models [source].
 */
export type VmmProfile = "qemu" | "qemu-legacy" | "ec2" | "gce";
export const VMM_PROFILES: readonly VmmProfile[] = ["qemu", "qemu-legacy", "ec2", "gce"];

/**
 * The profiles a QEMU/KVM host can have, i.e. how its QEMU creates SEV and SEV-ES VMs (§8.5): `qemu-legacy` is the
 * legacy KVM_SEV_INIT / KVM_SEV_ES_INIT path that QEMU's default `sev-guest` (legacy-vm-type=auto) takes, `qemu`
 * is KVM_SEV_INIT2 (legacy-vm-type=off), which also measures the x87/SSE reset state.
 */
export type HostVmmProfile = Extract<VmmProfile, "qemu" | "qemu-legacy">;
export const HOST_VMM_PROFILES = ["qemu-legacy", "qemu"] as const satisfies readonly HostVmmProfile[];
/** What a host is when nothing says otherwise: QEMU's default `sev-guest`, the legacy init path. */
export const DEFAULT_HOST_VMM_PROFILE: HostVmmProfile = "qemu-legacy";

interface VmmProfileSpec {
  bspCsAttrib: number;
  apCsAttrib: number;
  ssAttrib: number;
  trAttrib: number;
  gPat: bigint;
  /** RDX at reset: the guest CPU signature, or a fixed value the VMM uses regardless of the model. */
  rdx: "vcpu-signature" | number;
  mxcsr: number;
  fcw: number;
  source: string;
}

/** One table for the per-VMM differences; everything else in the reset state is common. */
export const VMM_PROFILE_SPECS: Readonly<Record<VmmProfile, VmmProfileSpec>> = {
  qemu: {
    bspCsAttrib: 0x9b,
    apCsAttrib: 0x9b,
    ssAttrib: 0x93,
    trAttrib: 0x8b,
    gPat: 0x0007040600070406n,
    rdx: "vcpu-signature",
    mxcsr: 0x1f80,
    fcw: 0x037f,
    source: "§12.2 INIT2; virtee/sev-snp-measure and virtee/sev QEMU profile",
  },
  "qemu-legacy": {
    bspCsAttrib: 0x9b,
    apCsAttrib: 0x9b,
    ssAttrib: 0x93,
    trAttrib: 0x8b,
    gPat: 0x0007040600070406n,
    rdx: "vcpu-signature",
    mxcsr: 0,
    fcw: 0,
    source: "§12.2 ES_INIT; reproduces virtee/sevctl tests/data/vmsa{0,1}.bin",
  },
  ec2: {
    bspCsAttrib: 0x9a,
    apCsAttrib: 0x9b,
    ssAttrib: 0x92,
    trAttrib: 0x83,
    gPat: 0x0007040600070406n,
    rdx: 0x600,
    mxcsr: 0,
    fcw: 0,
    source: "§12.2 [source] virtee/sev-snp-measure EC2 profile",
  },
  gce: {
    bspCsAttrib: 0x9b,
    apCsAttrib: 0x9b,
    ssAttrib: 0x93,
    trAttrib: 0x8b,
    gPat: 0x00070106n,
    rdx: 0x600,
    mxcsr: 0,
    fcw: 0,
    source: "§12.2 [source] virtee/sev-snp-measure GCE profile",
  },
};

export interface ResetVmsaOptions {
  /** Reset EIP: {@link BSP_RESET_EIP} for vCPU 0, the OVMF SEV-ES reset block EIP for the others. */
  eip: number;
  profile: VmmProfile;
  /** CPUID(1).EAX of the guest vCPU model; required by the QEMU profiles (it lands in RDX). */
  vcpuSignature?: number | undefined;
  /** SEV features (0 for plain SEV-ES in the public vectors; DebugSwap is 0x20). */
  sevFeatures?: bigint | undefined;
}

/** The reset-state field values of one vCPU (§12.2). */
export function resetVmsaFields(o: ResetVmsaOptions): Partial<Vmsa> {
  const spec = VMM_PROFILE_SPECS[o.profile];
  if (!Number.isInteger(o.eip) || o.eip < 0 || o.eip > 0xffffffff) {
    throw new CiphervisorError("INVALID_INPUT", `a reset EIP is a u32, got ${o.eip}`);
  }
  let rdx: number;
  if (spec.rdx === "vcpu-signature") {
    if (o.vcpuSignature === undefined) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `the ${o.profile} VMM profile puts the guest CPU signature in RDX: give a vCPU type or signature`,
      );
    }
    rdx = checkInt("vcpuSignature", o.vcpuSignature, 32);
  } else {
    rdx = spec.rdx;
  }
  const seg = (selector: number, attrib: number, base = 0n): VmcbSegment => ({
    selector,
    attrib,
    limit: 0xffff,
    base,
  });
  const data = 0x93;
  const isBsp = o.eip === BSP_RESET_EIP;
  return {
    // Real-mode reset: CS:IP = 0xF000:(EIP & 0xFFFF) with the hidden base carrying the high EIP bits.
    es: seg(0, data),
    cs: seg(0xf000, isBsp ? spec.bspCsAttrib : spec.apCsAttrib, BigInt((o.eip & 0xffff0000) >>> 0)),
    ss: seg(0, spec.ssAttrib),
    ds: seg(0, data),
    fs: seg(0, data),
    gs: seg(0, data),
    gdtr: seg(0, 0),
    ldtr: seg(0, 0x82),
    idtr: seg(0, 0),
    tr: seg(0, spec.trAttrib),
    efer: 0x1000n, // KVM sets EFER.SVME
    cr4: 0x40n, // KVM sets CR4.MCE
    cr0: 0x10n,
    dr7: 0x400n,
    dr6: 0xffff0ff0n,
    rflags: 0x2n,
    rip: BigInt(o.eip & 0xffff),
    gPat: spec.gPat,
    rdx: BigInt(rdx),
    sevFeatures: o.sevFeatures ?? 0n,
    xcr0: 0x1n,
    mxcsr: spec.mxcsr,
    x87Fcw: spec.fcw,
  };
}

/**
 * The 4096-byte reset-state VMSA page of one vCPU, as the host measures it with LAUNCH_UPDATE_VMSA (§12.2).
 *
 * @example
 * ```ts
 * const bsp = buildResetVmsa({ eip: BSP_RESET_EIP, profile: "qemu", vcpuSignature: vcpuSignatureOf("EPYC-v4") });
 * ```
 */
export function buildResetVmsa(o: ResetVmsaOptions): Uint8Array {
  return encodeVmsa(resetVmsaFields(o));
}

export interface ResetVmsaPagesOptions {
  vcpus: number;
  /** The OVMF SEV-ES AP reset EIP (footer table); needed when vcpus > 1. */
  apResetEip?: number | undefined;
  profile: VmmProfile;
  vcpuSignature?: number | undefined;
  sevFeatures?: bigint | undefined;
}

/** The VMSA pages of vCPUs 0..n−1 in measurement order: the BSP page, then the AP page n−1 times. */
export function resetVmsaPages(o: ResetVmsaPagesOptions): Uint8Array[] {
  if (!Number.isInteger(o.vcpus) || o.vcpus < 1 || o.vcpus > 4096) {
    throw new CiphervisorError("INVALID_INPUT", `the vCPU count must be 1..4096, got ${o.vcpus}`);
  }
  const common = { profile: o.profile, vcpuSignature: o.vcpuSignature, sevFeatures: o.sevFeatures };
  const pages = [buildResetVmsa({ ...common, eip: BSP_RESET_EIP })];
  if (o.vcpus > 1) {
    if (o.apResetEip === undefined) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        "more than one SEV-ES vCPU needs the firmware's AP reset EIP",
      );
    }
    const ap = buildResetVmsa({ ...common, eip: o.apResetEip });
    for (let i = 1; i < o.vcpus; i++) pages.push(ap);
  }
  return pages;
}
