/**
 * SNP Page State Change, both ways GHCB version 2 offers it (GHCB 56421, "SNP Page State Change"; Linux
 * `arch/x86/include/asm/sev-common.h`; docs/sev-interface.md §12.4, §14.2):
 *
 * - **MSR protocol** (0x014 request / 0x015 response): one 4 KiB page per request, for a guest without a usable GHCB
 *   yet (Linux converts its boot GHCB this way). Request: [55:52] operation (1 private, 2 shared), [51:12] GFN.
 *   Response: [63:32] error, 0 = done.
 * - **NAE event SNP_PSC** (SW_EXITCODE 0x8000_0010, SW_SCRATCH = GPA of the descriptor, which GHCB version 2
 *   requires inside the GHCB's shared buffer): a header {u16 cur_entry, u16 end_entry, u32 reserved} and up to 253
 *   entries (2032 bytes = the shared buffer), each a u64: [11:0] cur_page, [51:12] GFN, [55:52] operation (1 private,
 *   2 shared, 3 PSMASH, 4 UNSMASH), [56] page size (0 = 4 KiB, 1 = 2 MiB). The hypervisor advances cur_entry and each
 *   entry's cur_page as it goes and may return before end_entry; the guest re-issues the request until cur_entry >
 *   end_entry. SW_EXITINFO2 is the result: 0, or one of `PscError`.
 *
 * The guest must rescind validation (PVALIDATE) before asking for shared, and validate after private: the
 * hypervisor's RMPUPDATE always leaves a page unvalidated (APM vol. 2 section 15.36.5).
 */
import { GhcbMsr } from "./ghcb.ts";

/** SW_EXITCODE of the SNP Page State Change NAE event. */
export const SNP_PSC_EXIT = 0x8000_0010n;

/** Page operations (the MSR protocol uses only PRIVATE and SHARED). */
export const PscOp = { PRIVATE: 1, SHARED: 2, PSMASH: 3, UNSMASH: 4 } as const;
export type PscOpValue = (typeof PscOp)[keyof typeof PscOp];

/** Entries the GHCB's 2032-byte shared buffer holds after the 8-byte header (Linux `VMGEXIT_PSC_MAX_COUNT`). */
export const PSC_MAX_ENTRIES = 253;
export const PSC_HEADER_SIZE = 8;
export const PSC_ENTRY_SIZE = 8;

/** SW_EXITINFO2 of a failed NAE request (Linux `VMGEXIT_PSC_ERROR_*`, as KVM answers them). */
export const PscError = {
  /** end_entry beyond the buffer. */
  INVALID_HDR: (1n << 32n) | 1n,
  /** cur_page beyond the page, a 2 MiB entry whose GFN is not 2 MiB aligned, or an undefined operation. */
  INVALID_ENTRY: (1n << 32n) | 2n,
  /** The hypervisor could not change the page (KVM's generic error). */
  GENERIC: 0x100n << 32n,
} as const;

/** The MSR-protocol response KVM gives a request it cannot serve: bit 63 set (`GHCB_MSR_PSC_RESP_ERROR`). */
export const PSC_MSR_RESP_ERROR = (1n << 63n) | BigInt(GhcbMsr.PSC_RESP);

const GFN_MASK = (1n << 40n) - 1n;

/** GHCB MSR value of a page state change request for one 4 KiB page. */
export function pscMsrRequest(gfn: number, op: PscOpValue): bigint {
  return (BigInt(op & 0xf) << 52n) | ((BigInt(gfn) & GFN_MASK) << 12n) | BigInt(GhcbMsr.PSC_REQ);
}

export function decodePscMsrRequest(v: bigint): { gfn: number; op: number } {
  return { gfn: Number((v >> 12n) & GFN_MASK), op: Number((v >> 52n) & 0xfn) };
}

/** GHCB MSR value of a response: `error` in bits 63:32 (0 = done). */
export function pscMsrResponse(error: number): bigint {
  return (BigInt(error >>> 0) << 32n) | BigInt(GhcbMsr.PSC_RESP);
}

/** The error of a response (bits 63:32). */
export function pscMsrResponseError(v: bigint): bigint {
  return v >> 32n;
}

export interface PscHeader {
  curEntry: number;
  endEntry: number;
  reserved: number;
}

export interface PscEntry {
  /** Pages of this entry already done (0 … 1 or 512). */
  curPage: number;
  gfn: number;
  op: number;
  /** 0 = 4 KiB, 1 = 2 MiB. */
  pageSize: 0 | 1;
}

export function encodePscEntry(e: PscEntry): bigint {
  return (
    BigInt(e.curPage & 0xfff) |
    ((BigInt(e.gfn) & GFN_MASK) << 12n) |
    (BigInt(e.op & 0xf) << 52n) |
    (BigInt(e.pageSize & 1) << 56n)
  );
}

export function decodePscEntry(v: bigint): PscEntry {
  return {
    curPage: Number(v & 0xfffn),
    gfn: Number((v >> 12n) & GFN_MASK),
    op: Number((v >> 52n) & 0xfn),
    pageSize: Number((v >> 56n) & 1n) as 0 | 1,
  };
}

/** Pages an entry covers. */
export function pscEntryPages(e: PscEntry): number {
  return e.pageSize === 1 ? 512 : 1;
}

/**
 * A view of a PSC descriptor in place (the GHCB's shared buffer, or the guest's private copy): both sides read and
 * advance the same bytes.
 */
export class PscDescriptor {
  readonly #v: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Entries this buffer has room for. */
  get capacity(): number {
    return Math.min(PSC_MAX_ENTRIES, Math.floor((this.bytes.length - PSC_HEADER_SIZE) / PSC_ENTRY_SIZE));
  }

  header(): PscHeader {
    return {
      curEntry: this.#v.getUint16(0, true),
      endEntry: this.#v.getUint16(2, true),
      reserved: this.#v.getUint32(4, true),
    };
  }

  setHeader(h: { curEntry: number; endEntry: number; reserved?: number }): void {
    this.#v.setUint16(0, h.curEntry, true);
    this.#v.setUint16(2, h.endEntry, true);
    this.#v.setUint32(4, h.reserved ?? 0, true);
  }

  /** Advances cur_entry only (what the hypervisor writes as it completes entries). */
  setCurEntry(n: number): void {
    this.#v.setUint16(0, n, true);
  }

  entry(i: number): PscEntry {
    return decodePscEntry(this.#v.getBigUint64(PSC_HEADER_SIZE + i * PSC_ENTRY_SIZE, true));
  }

  setEntry(i: number, e: PscEntry): void {
    this.#v.setBigUint64(PSC_HEADER_SIZE + i * PSC_ENTRY_SIZE, encodePscEntry(e), true);
  }

  /** Writes a fresh request: cur_entry 0, end_entry = last index, every cur_page 0. */
  static build(bytes: Uint8Array, entries: readonly Omit<PscEntry, "curPage">[]): PscDescriptor {
    const d = new PscDescriptor(bytes);
    if (entries.length === 0 || entries.length > d.capacity) {
      throw new RangeError(`a PSC descriptor holds 1..${d.capacity} entries, got ${entries.length}`);
    }
    bytes.fill(0, 0, PSC_HEADER_SIZE + entries.length * PSC_ENTRY_SIZE);
    d.setHeader({ curEntry: 0, endEntry: entries.length - 1 });
    entries.forEach((e, i) => {
      d.setEntry(i, { ...e, curPage: 0 });
    });
    return d;
  }
}
