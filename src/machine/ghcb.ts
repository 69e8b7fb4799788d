/**
 * The GHCB page and the GHCB MSR protocol (docs/sev-interface.md §12.3, §12.4; Linux `struct ghcb`, GHCB spec #56421).
 *
 * The GHCB is a 4 KiB page the SEV-ES guest maps **shared** (C-bit clear): it is the only register state the
 * hypervisor of an SEV-ES guest ever sees, and only the fields the guest marks valid. Its save-area image uses the
 * VMSA offsets; bit n of the 128-bit valid bitmap at 0x3F0 says "the qword at offset 8·n is valid".
 */

export const GHCB_SIZE = 4096;

/** Offsets of the GHCB fields the protocol uses (same as the VMSA for register fields). */
export const GhcbField = {
  cpl: 0x0cb,
  xss: 0x140,
  dr7: 0x160,
  rip: 0x178,
  rsp: 0x1d8,
  rax: 0x1f8,
  rcx: 0x308,
  rdx: 0x310,
  rbx: 0x318,
  rbp: 0x328,
  rsi: 0x330,
  rdi: 0x338,
  r8: 0x340,
  r9: 0x348,
  r10: 0x350,
  r11: 0x358,
  r12: 0x360,
  r13: 0x368,
  r14: 0x370,
  r15: 0x378,
  swExitCode: 0x390,
  swExitInfo1: 0x398,
  swExitInfo2: 0x3a0,
  swScratch: 0x3a8,
  xcr0: 0x3e8,
} as const;

export type GhcbFieldName = keyof typeof GhcbField;

export const GHCB_VALID_BITMAP = 0x3f0;
export const GHCB_X87_STATE_GPA = 0x400;
export const GHCB_SHARED_BUFFER = 0x800;
export const GHCB_SHARED_BUFFER_SIZE = 2032;
export const GHCB_PROTOCOL_VERSION = 0xffa;
export const GHCB_USAGE = 0xffc;
/** ghcb_usage 0: the standard GHCB layout (KVM rejects anything else). */
export const GHCB_DEFAULT_USAGE = 0;

/**
 * The seven fields through which an SEV-ES guest can expose register state to the hypervisor (KVM copies only
 * these, and only when valid — `sev_es_sync_from_ghcb`).
 */
export const EXPOSABLE_FIELDS = ["rax", "rbx", "rcx", "rdx", "rsi", "cpl", "xcr0"] as const;
export type ExposableField = (typeof EXPOSABLE_FIELDS)[number];

/** sw_exit_info_1[31:0] of the hypervisor's answer (§12.3 return convention). */
export const GhcbResponse = { OK: 0, ISSUE_EXCEPTION: 1, MALFORMED_INPUT: 2 } as const;

/** sw_exit_info_2 with a MALFORMED_INPUT answer (Linux `GHCB_ERR_*`). */
export const GhcbError = {
  NOT_REGISTERED: 1,
  INVALID_USAGE: 2,
  INVALID_SCRATCH_AREA: 3,
  MISSING_INPUT: 4,
  INVALID_INPUT: 5,
  INVALID_EVENT: 6,
} as const;

/** The GHCB MSR (MSR 0xC001_0130): a GHCB GPA, or an MSR-protocol request/response in bits 11:0. */
export const MSR_GHCB = 0xc001_0130;
/** MSR_AMD64_SEV (SEV_STATUS): bit 0 SEV active, bit 1 SEV-ES active. Read-only, provided by the CPU. */
export const MSR_SEV_STATUS = 0xc001_0131;

/** GHCB MSR protocol codes (§12.4). */
export const GhcbMsr = {
  SEV_INFO_RESP: 0x001,
  SEV_INFO_REQ: 0x002,
  CPUID_REQ: 0x004,
  CPUID_RESP: 0x005,
  AP_RESET_HOLD_REQ: 0x006,
  AP_RESET_HOLD_RESP: 0x007,
  REG_GPA_REQ: 0x012,
  REG_GPA_RESP: 0x013,
  /** SNP page state change (GHCB 56421, the MSR protocol table): src/machine/page-state-change.ts. */
  PSC_REQ: 0x014,
  PSC_RESP: 0x015,
  HV_FEATURES_REQ: 0x080,
  HV_FEATURES_RESP: 0x081,
  TERM_REQ: 0x100,
} as const;

/**
 * The hypervisor feature bitmap of GHCB version 2 (GHCB 56421, the hypervisor feature request of the MSR protocol,
 * 0x080 / 0x081, payload bits 63:12; Linux `GHCB_HV_FT_*`; docs/sev-interface.md §14.2). An SNP guest refuses a hypervisor without `SNP`, and uses
 * the AP creation event only when `SNP_AP_CREATION` is set.
 */
export const GhcbHvFeature = {
  SNP: 1n << 0n,
  SNP_AP_CREATION: 1n << 1n,
  SNP_RESTRICTED_INJECTION: 1n << 2n,
  SNP_RESTRICTED_INJECTION_TIMER: 1n << 3n,
} as const;

/** What KVM advertises (`GHCB_HV_FT_SUPPORTED` in arch/x86/kvm/svm/sev.c): SNP and SNP AP creation. */
export const KVM_HV_FEATURES = GhcbHvFeature.SNP | GhcbHvFeature.SNP_AP_CREATION;

/** HV features response: the bitmap in bits 63:12 (52 bits), code 0x081 in bits 11:0. */
export function hvFeaturesResponse(features: bigint): bigint {
  return ((features & ((1n << 52n) - 1n)) << 12n) | BigInt(GhcbMsr.HV_FEATURES_RESP);
}

/** GHCB protocol versions KVM advertises (min 1, max 2). */
export const GHCB_PROTOCOL_MIN = 1;
export const GHCB_PROTOCOL_MAX = 2;

/** The valid-bitmap bit of a field: its qword index. */
export function validBit(offset: number): number {
  return offset >> 3;
}

/**
 * A view over one GHCB page (shared memory, or the hypervisor's snapshot of it). Setters mark the field valid,
 * like Linux's `ghcb_set_*`; `get` does not look at the valid bit — callers that must respect it use `isValid`.
 *
 * @example
 * ```ts
 * const g = new GhcbView(new Uint8Array(GHCB_SIZE));
 * g.set("rax", 0x8000001fn); // also sets valid bit 63
 * g.isValid("rax");          // true
 * ```
 */
export class GhcbView {
  readonly #view: DataView;

  constructor(readonly bytes: Uint8Array) {
    if (bytes.length !== GHCB_SIZE) throw new RangeError(`a GHCB is ${GHCB_SIZE} bytes`);
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get(field: GhcbFieldName): bigint {
    const off = GhcbField[field];
    // cpl is the only byte-sized field the protocol carries.
    return field === "cpl" ? BigInt(this.#view.getUint8(off)) : this.#view.getBigUint64(off, true);
  }

  /** Writes the field and sets its valid bit. */
  set(field: GhcbFieldName, value: bigint): void {
    const off = GhcbField[field];
    if (field === "cpl") this.#view.setUint8(off, Number(value & 0xffn));
    else this.#view.setBigUint64(off, BigInt.asUintN(64, value), true);
    this.setValid(field, true);
  }

  isValid(field: GhcbFieldName): boolean {
    const bit = validBit(GhcbField[field]);
    return ((this.bytes[GHCB_VALID_BITMAP + (bit >> 3)]! >> (bit & 7)) & 1) === 1;
  }

  setValid(field: GhcbFieldName, valid: boolean): void {
    const bit = validBit(GhcbField[field]);
    const i = GHCB_VALID_BITMAP + (bit >> 3);
    if (valid) this.bytes[i]! |= 1 << (bit & 7);
    else this.bytes[i]! &= ~(1 << (bit & 7));
  }

  clearValidBitmap(): void {
    this.bytes.fill(0, GHCB_VALID_BITMAP, GHCB_VALID_BITMAP + 16);
  }

  /** Zeroes the save-area image (0x000–0x3FF) and the valid bitmap, as a guest does before building a request. */
  invalidate(): void {
    this.bytes.fill(0, 0, GHCB_VALID_BITMAP + 16);
  }

  get usage(): number {
    return this.#view.getUint32(GHCB_USAGE, true);
  }
  set usage(v: number) {
    this.#view.setUint32(GHCB_USAGE, v >>> 0, true);
  }
  get protocolVersion(): number {
    return this.#view.getUint16(GHCB_PROTOCOL_VERSION, true);
  }
  set protocolVersion(v: number) {
    this.#view.setUint16(GHCB_PROTOCOL_VERSION, v & 0xffff, true);
  }
}

/** Splits a GHCB MSR value into its request code (bits 11:0) and payload. */
export function msrCode(value: bigint): number {
  return Number(value & 0xfffn);
}

/** SEV_INFO response: [63:48] max protocol, [47:32] min protocol, [31:24] C-bit position. */
export function sevInfoResponse(maxProtocol: number, minProtocol: number, cBit: number): bigint {
  return (
    (BigInt(maxProtocol) << 48n) |
    (BigInt(minProtocol) << 32n) |
    (BigInt(cBit) << 24n) |
    BigInt(GhcbMsr.SEV_INFO_RESP)
  );
}

/** Termination request: [15:12] reason set, [23:16] reason code. */
export function terminationRequest(reasonSet: number, reasonCode: number): bigint {
  return (BigInt(reasonCode & 0xff) << 16n) | (BigInt(reasonSet & 0xf) << 12n) | BigInt(GhcbMsr.TERM_REQ);
}
