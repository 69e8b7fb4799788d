/**
 * The SEV-SNP Reverse Map Table (APM vol. 2 section 15.36.3–15.36.10; docs/sev-interface.md §14): one entry per
 * 4 KiB system-physical page saying who owns it — the hypervisor, a guest (by ASID, at one GPA) or the Secure
 * Processor — and whether the guest has validated it. It is what gives SNP guests memory integrity: the hypervisor
 * can no longer write a guest's pages (replay, block moves) nor point a guest's GPA at another frame unnoticed
 * (SEVered).
 *
 * Sparse: entries exist only for pages that were ever assigned; every other covered page is hypervisor-owned, as
 * after the RMP's initialisation (section 15.36.4), and pages at or above `end` are not covered at all (permanently
 * hypervisor-owned).
 *
 * API (stable; the hypervisor's SNP launch builds on it):
 * - `entry(spa)` — a copy of the page's entry (all-zero = hypervisor-owned);
 * - `rmpupdate(spa, { assigned, asid, gpa, pageSize, immutable })` — the host's RMPUPDATE: assign a 4 KiB or 2 MiB
 *   page to (ASID, GPA) or return it to the hypervisor; always clears Validated; an RMP return code;
 * - `pvalidate(spa, { asid, gpa, pageSize, validate })` — the guest's PVALIDATE on the frame its GPA maps to: a
 *   return code and CF (CF = 1: Validated did not change), or a #NPF the instruction raises instead;
 * - `rmpadjust(spa, { asid, gpa, pageSize, targetVmpl, perms, vmsa })` — the guest's RMPADJUST (at VMPL0 here);
 * - `hostWriteFault(pa, length)` / `checkHostWrite(pa, length)` — the host's data-write check (#PF, RMP bit);
 * - `guestAccess(spa, {...})` — the checks of a guest access after its nested translation (Table 15-39);
 * - `firmwareHook()` — the `SnpRmpHook` SNP_LAUNCH_UPDATE calls (SNP ABI 56860 section 8.17).
 *
 * @example
 * ```ts
 * const rmp = new Rmp();
 * rmp.rmpupdate(0x800000, { assigned: true, asid: 1, gpa: 0x1000 }); // RmpReturn.SUCCESS
 * rmp.pvalidate(0x800000, { asid: 1, gpa: 0x1000, validate: true }); // { kind: "done", code: 0, cf: false }
 * rmp.hostWriteFault(0x800000, 8);                                    // 0x8000_0003n: #PF P|W|RMP
 * ```
 */
import { CiphervisorError } from "../errors.ts";
import type { SnpLaunchPage, SnpRmpHook } from "../sev/snp/firmware-state.ts";
import { SevStatus } from "../sev/status.ts";
import { PAGE_SIZE } from "./dram.ts";

/** RMP Page_Size (Table 15-34) and the page-size operand of PVALIDATE / RMPADJUST (RCX / RDX). */
export const RmpPageSize = { PAGE_4K: 0, PAGE_2M: 1 } as const;
export type RmpPageSizeValue = (typeof RmpPageSize)[keyof typeof RmpPageSize];

export const LARGE_PAGE_SIZE = 0x200000;
const PAGES_PER_LARGE = LARGE_PAGE_SIZE / PAGE_SIZE;

/** Return codes (RAX) of RMPUPDATE, PVALIDATE and RMPADJUST (APM vol. 3, the instructions' pages). */
export const RmpReturn = {
  SUCCESS: 0,
  FAIL_INPUT: 1,
  FAIL_PERMISSION: 2,
  FAIL_INUSE: 3,
  FAIL_OVERLAP: 4,
  FAIL_SIZEMISMATCH: 6,
} as const;
export type RmpReturnName = keyof typeof RmpReturn;
export type RmpReturnCode = (typeof RmpReturn)[RmpReturnName];

type RmpInstruction = "RMPUPDATE" | "PVALIDATE" | "RMPADJUST";

/** The one table of return codes: which instruction answers it, and when (as modelled here). */
export const RMP_RETURN_CODES: readonly {
  name: RmpReturnName;
  instructions: readonly RmpInstruction[];
  when: string;
}[] = [
  { name: "SUCCESS", instructions: ["RMPUPDATE", "PVALIDATE", "RMPADJUST"], when: "done" },
  {
    name: "FAIL_INPUT",
    instructions: ["RMPUPDATE", "PVALIDATE", "RMPADJUST"],
    when: "a misaligned address, a page beyond the RMP, a reserved operand value, an assigned page with ASID 0",
  },
  {
    name: "FAIL_PERMISSION",
    instructions: ["RMPUPDATE", "RMPADJUST"],
    when: "RMPUPDATE of an Immutable page; RMPADJUST of the caller's own or a higher VMPL, or beyond its own rights",
  },
  {
    name: "FAIL_INUSE",
    instructions: ["RMPUPDATE"],
    when: "the entry is in use by another processor (never here: one vCPU runs at a time)",
  },
  {
    name: "FAIL_OVERLAP",
    instructions: ["RMPUPDATE"],
    when: "a 4 KiB update inside an assigned 2 MiB page, or a 2 MiB update over an assigned 4 KiB page",
  },
  {
    name: "FAIL_SIZEMISMATCH",
    instructions: ["PVALIDATE", "RMPADJUST"],
    when: "a 2 MiB request on a page the RMP holds as 4 KiB (the guest retries per 4 KiB page)",
  },
];

/** VMPL permission mask bits (Table 15-36). */
export const VmplPerm = { READ: 1, WRITE: 2, EXECUTE_USER: 4, EXECUTE_SUPERVISOR: 8, SSS: 0x10 } as const;
export const VMPL_ALL = 0x1f;
/** VMPLs modelled (CPUID Fn8000_001F EBX[15:12] on Milan and Genoa). */
export const VMPL_COUNT = 4;

/**
 * RMPADJUST's attribute operand, RDX (APM vol. 3, RMPADJUST; Linux `rmpadjust()`, `RMPADJUST_VMSA_PAGE_BIT`):
 * [7:0] target VMPL, [15:8] the permission mask to give it, [16] VMSA. Linux marks a page its new AP's VMSA with
 * `1 | VMSA` — target VMPL1, no permissions — because RMPADJUST must target a lower-privileged VMPL than its own.
 */
export const RMPADJUST_VMSA_PAGE_BIT = 1n << 16n;

export function rmpadjustAttributes(a: { targetVmpl: number; perms: number; vmsa?: boolean }): bigint {
  return (
    BigInt(a.targetVmpl & 0xff) | (BigInt(a.perms & 0xff) << 8n) | (a.vmsa ? RMPADJUST_VMSA_PAGE_BIT : 0n)
  );
}

export function decodeRmpadjustAttributes(v: bigint): { targetVmpl: number; perms: number; vmsa: boolean } {
  return {
    targetVmpl: Number(v & 0xffn),
    perms: Number((v >> 8n) & 0xffn),
    vmsa: (v & RMPADJUST_VMSA_PAGE_BIT) !== 0n,
  };
}

/** Page-fault error code bit 31 (#PF of the host; EXITINFO1 of #VMEXIT(NPF)): an RMP check failed. */
export const PF_RMP = 1n << 31n;
/** EXITINFO1 of #VMEXIT(NPF): bit 34 the access had an effective C-bit of 1, 35 size mismatch, 36 VMPL check. */
export const NPF_ENC = 1n << 34n;
export const NPF_SIZEM = 1n << 35n;
export const NPF_VMPL = 1n << 36n;
/** #VC error code of a private access to an assigned page that is not Validated (APM vol. 2 section 15.36.10). */
export const VC_PAGE_NOT_VALIDATED = 0x404;

/** One RMP entry (Table 15-34). `gpa` is the 4 KiB page's own GPA, also inside a 2 MiB page. */
export interface RmpEntry {
  assigned: boolean;
  pageSize: RmpPageSizeValue;
  immutable: boolean;
  gpa: number;
  asid: number;
  vmsa: boolean;
  validated: boolean;
  /** Permission masks of VMPL0 … VMPL3 (VMPL0 has all rights while assigned). */
  vmplPerms: [number, number, number, number];
}

export interface RmpUpdateInput {
  assigned: boolean;
  asid?: number;
  /** GPA of the (4 KiB or 2 MiB) page; 0 when returning it to the hypervisor. */
  gpa?: number;
  pageSize?: RmpPageSizeValue;
  immutable?: boolean;
}

/** Who runs PVALIDATE / RMPADJUST, on which GPA (the frame is where its nested translation led). */
export interface RmpGuestOperand {
  asid: number;
  gpa: number;
  pageSize?: RmpPageSizeValue;
}

/** An RMP instruction's outcome: a return code (and CF for PVALIDATE), or the #VMEXIT(NPF) it raised instead. */
export type RmpInstructionResult =
  | { kind: "done"; code: RmpReturnCode; cf: boolean }
  | { kind: "npf"; errorBits: bigint; reason: string };

/** The RMP checks of one guest access (Table 15-39), in priority order: #NPF before #VC before VMPL. */
export type RmpAccessResult =
  | { ok: true }
  | { ok: false; fault: "npf"; errorBits: bigint; reason: string }
  | { ok: false; fault: "vc"; errorCode: typeof VC_PAGE_NOT_VALIDATED };

export interface RmpGuestAccess {
  asid: number;
  gpa: number;
  /** SNP-active guest (VMSA SEV_FEATURES bit 0); other guests only need hypervisor-owned pages for writes. */
  snpActive: boolean;
  /** The access's effective C-bit (always 1 for fetches and page-table walks). */
  private: boolean;
  write: boolean;
  vmpl?: number;
}

const HYPERVISOR_OWNED: Readonly<RmpEntry> = Object.freeze({
  assigned: false,
  pageSize: 0,
  immutable: false,
  gpa: 0,
  asid: 0,
  vmsa: false,
  validated: false,
  vmplPerms: [0, 0, 0, 0] as [number, number, number, number],
});

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

const done = (code: RmpReturnCode, cf = false): RmpInstructionResult => ({ kind: "done", code, cf });

export class Rmp {
  readonly #entries = new Map<number, RmpEntry>();
  /** First system physical address the RMP does not cover. */
  readonly end: number;

  constructor(opts: { end?: number } = {}) {
    this.end = opts.end ?? Number.MAX_SAFE_INTEGER;
  }

  #covered(spa: number, size = PAGE_SIZE): boolean {
    return Number.isSafeInteger(spa) && spa >= 0 && spa + size <= this.end;
  }

  #get(spa: number): Readonly<RmpEntry> {
    return this.#entries.get(Math.floor(spa / PAGE_SIZE)) ?? HYPERVISOR_OWNED;
  }

  /** A copy of the entry of the page holding `spa` (hypervisor-owned when never assigned or not covered). */
  entry(spa: number): RmpEntry {
    const e = this.#get(spa);
    return { ...e, vmplPerms: [...e.vmplPerms] };
  }

  /** System physical addresses of every assigned page, ascending. */
  assignedPages(): number[] {
    return [...this.#entries.keys()].sort((a, b) => a - b).map((f) => f * PAGE_SIZE);
  }

  /** The entries a page of `size` at `spa` spans (4 KiB frame numbers). */
  #frames(spa: number, pageSize: RmpPageSizeValue): number[] {
    const n = pageSize === RmpPageSize.PAGE_2M ? PAGES_PER_LARGE : 1;
    const first = spa / PAGE_SIZE;
    return Array.from({ length: n }, (_, i) => first + i);
  }

  /**
   * RMPUPDATE (APM vol. 2 section 15.36.5): the host sets Assigned, ASID, GPA, Page_Size and Immutable of a page.
   * Validated is always cleared and VMPL0 gets every right while assigned (section 15.36.7). An Immutable page
   * cannot be changed (FAIL_PERMISSION): only the Secure Processor can release it.
   */
  rmpupdate(spa: number, input: RmpUpdateInput): RmpReturnCode {
    const pageSize = input.pageSize ?? RmpPageSize.PAGE_4K;
    const size = pageSize === RmpPageSize.PAGE_2M ? LARGE_PAGE_SIZE : PAGE_SIZE;
    const asid = input.assigned ? (input.asid ?? 0) : 0;
    const gpa = input.assigned ? (input.gpa ?? 0) : 0;
    const immutable = input.assigned && (input.immutable ?? false);
    if (pageSize !== RmpPageSize.PAGE_4K && pageSize !== RmpPageSize.PAGE_2M) return RmpReturn.FAIL_INPUT;
    if (!this.#covered(spa, size) || spa % size !== 0) return RmpReturn.FAIL_INPUT;
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % size !== 0) return RmpReturn.FAIL_INPUT;
    if (!Number.isInteger(asid) || asid < 0 || (input.assigned && asid === 0 && !immutable)) {
      return RmpReturn.FAIL_INPUT;
    }
    const frames = this.#frames(spa, pageSize);
    const current = frames.map((f) => this.#entries.get(f));
    if (current.some((e) => e?.immutable)) return RmpReturn.FAIL_PERMISSION;
    if (pageSize === RmpPageSize.PAGE_4K) {
      if (current[0]?.assigned && current[0].pageSize === RmpPageSize.PAGE_2M) return RmpReturn.FAIL_OVERLAP;
    } else if (current.some((e) => e?.assigned && e.pageSize === RmpPageSize.PAGE_4K)) {
      return RmpReturn.FAIL_OVERLAP;
    }
    frames.forEach((f, i) => {
      if (!input.assigned) {
        this.#entries.delete(f);
        return;
      }
      this.#entries.set(f, {
        assigned: true,
        pageSize,
        immutable,
        gpa: gpa + i * PAGE_SIZE,
        asid,
        vmsa: false,
        validated: false,
        vmplPerms: [VMPL_ALL, 0, 0, 0],
      });
    });
    return RmpReturn.SUCCESS;
  }

  /** The Guest-Owned, Reverse-Map and Page-Size checks of an RMP instruction on a 4 KiB nested mapping. */
  #guestInstructionCheck(spa: number, op: RmpGuestOperand): RmpInstructionResult | RmpEntry[] {
    const pageSize = op.pageSize ?? RmpPageSize.PAGE_4K;
    if (pageSize !== RmpPageSize.PAGE_4K && pageSize !== RmpPageSize.PAGE_2M)
      return done(RmpReturn.FAIL_INPUT);
    const size = pageSize === RmpPageSize.PAGE_2M ? LARGE_PAGE_SIZE : PAGE_SIZE;
    if (op.gpa % size !== 0 || spa % PAGE_SIZE !== 0) return done(RmpReturn.FAIL_INPUT);
    const e = this.#get(spa);
    if (!this.#covered(spa) || !e.assigned || e.asid !== op.asid || e.gpa !== op.gpa) {
      return {
        kind: "npf",
        errorBits: PF_RMP | NPF_ENC,
        reason: `the page at ${hex(spa)} is not assigned to ASID ${op.asid} at GPA ${hex(op.gpa)}`,
      };
    }
    if (pageSize === RmpPageSize.PAGE_4K) {
      if (e.pageSize === RmpPageSize.PAGE_2M) {
        return {
          kind: "npf",
          errorBits: PF_RMP | NPF_ENC | NPF_SIZEM,
          reason: "a 4 KiB request on a 2 MiB RMP page",
        };
      }
      return [this.#entries.get(spa / PAGE_SIZE)!];
    }
    // 2 MiB: the first frame must start a 2 MiB RMP page of this guest; Table 15-40.
    if (e.pageSize !== RmpPageSize.PAGE_2M || spa % LARGE_PAGE_SIZE !== 0) {
      return done(RmpReturn.FAIL_SIZEMISMATCH);
    }
    return this.#frames(spa, RmpPageSize.PAGE_2M).map((f) => this.#entries.get(f)!);
  }

  /**
   * PVALIDATE (APM vol. 2 section 15.36.6): sets (`validate`) or clears Validated of the page the guest's GPA maps
   * to. CF = 1 and SUCCESS when Validated did not change — how a guest notices it was asked to validate a page
   * twice (a remap or a double mapping).
   */
  pvalidate(spa: number, op: RmpGuestOperand & { validate: boolean }): RmpInstructionResult {
    const r = this.#guestInstructionCheck(spa, op);
    if (!Array.isArray(r)) return r;
    if (r.every((e) => e.validated === op.validate)) return done(RmpReturn.SUCCESS, true);
    for (const e of r) e.validated = op.validate;
    return done(RmpReturn.SUCCESS);
  }

  /**
   * RMPADJUST (APM vol. 2 section 15.36.7): a guest at `currentVmpl` sets the permission mask of a numerically
   * higher VMPL (and, at VMPL0, the VMSA flag). It cannot grant what it does not have.
   */
  rmpadjust(
    spa: number,
    op: RmpGuestOperand & { targetVmpl: number; perms: number; vmsa?: boolean },
    currentVmpl = 0,
  ): RmpInstructionResult {
    if (!Number.isInteger(op.targetVmpl) || op.targetVmpl < 0 || op.targetVmpl >= VMPL_COUNT)
      return done(RmpReturn.FAIL_INPUT);
    if (!Number.isInteger(op.perms) || op.perms < 0 || op.perms > 0xff || (op.perms & ~VMPL_ALL) !== 0)
      return done(RmpReturn.FAIL_INPUT);
    const r = this.#guestInstructionCheck(spa, op);
    if (!Array.isArray(r)) return r;
    if (op.targetVmpl <= currentVmpl) return done(RmpReturn.FAIL_PERMISSION);
    if (op.vmsa && currentVmpl !== 0) return done(RmpReturn.FAIL_PERMISSION);
    if (r.some((e) => (op.perms & ~e.vmplPerms[currentVmpl]!) !== 0)) return done(RmpReturn.FAIL_PERMISSION);
    for (const e of r) {
      e.vmplPerms[op.targetVmpl] = op.perms;
      if (op.vmsa !== undefined && currentVmpl === 0) e.vmsa = op.vmsa;
    }
    return done(RmpReturn.SUCCESS);
  }

  /**
   * The host's data-write check (Table 15-39, first row): every page written must be hypervisor-owned. Returns the
   * #PF error code (P | W | RMP) of the first page that is not, or undefined. Host reads are never checked: they
   * return whatever DRAM holds (ciphertext of a guest's private page).
   */
  hostWriteFault(pa: number, length: number): bigint | undefined {
    if (length <= 0) return undefined;
    const last = Math.floor((pa + length - 1) / PAGE_SIZE);
    for (let f = Math.floor(pa / PAGE_SIZE); f <= last; f++) {
      if (this.#entries.get(f)?.assigned) return PF_RMP | 3n;
    }
    return undefined;
  }

  /** `hostWriteFault` as the host sees it: a page fault, here an RMP_VIOLATION error; nothing is written. */
  checkHostWrite(pa: number, length: number): void {
    const code = this.hostWriteFault(pa, length);
    if (code === undefined) return;
    let f = Math.floor(pa / PAGE_SIZE);
    while (!this.#entries.get(f)?.assigned) f++;
    const e = this.#entries.get(f)!;
    const owner = e.asid === 0 ? "the Secure Processor" : `ASID ${e.asid}`;
    throw new CiphervisorError(
      "RMP_VIOLATION",
      `#PF (error code 0x${code.toString(16)}, RMP): the hypervisor wrote the page at ${hex(f * PAGE_SIZE)}, which the RMP assigns to ${owner}`,
      { details: { pa: f * PAGE_SIZE, errorCode: `0x${code.toString(16)}` } },
    );
  }

  /**
   * The RMP checks of one guest access after its nested translation reached `spa` (Table 15-39). SNP-active,
   * C = 1 (and every fetch and page-table access): Guest-Owned, Reverse-Map and Page-Size fail as #VMEXIT(NPF) with
   * the RMP bit; then Validated as #VC PAGE_NOT_VALIDATED; then the VMPL mask as #VMEXIT(NPF) with the VMPL bit.
   * SNP-active C = 0 writes, and every write of other guests, need a hypervisor-owned page.
   *
   * [unconfirmed] Table 15-39 also lists a Mutable check for private accesses; it is not applied to guest-owned
   * pages here, since SNP_LAUNCH_UPDATE leaves launched pages Immutable (`firmwareHook`).
   */
  guestAccess(spa: number, a: RmpGuestAccess): RmpAccessResult {
    const e = this.#covered(spa) ? this.#get(spa) : HYPERVISOR_OWNED;
    const kind = a.write ? 3n : 1n;
    if (!a.snpActive || !a.private) {
      if (a.write && e.assigned) {
        return {
          ok: false,
          fault: "npf",
          errorBits: PF_RMP | kind,
          reason: `a shared write to the page at ${hex(spa)}, which is not hypervisor-owned`,
        };
      }
      return { ok: true };
    }
    const gpaPage = a.gpa - (a.gpa % PAGE_SIZE);
    if (!e.assigned || e.asid !== a.asid || e.gpa !== gpaPage) {
      const what = !e.assigned
        ? "hypervisor-owned"
        : e.asid !== a.asid
          ? `assigned to ASID ${e.asid}`
          : `assigned at GPA ${hex(e.gpa)}`;
      return {
        ok: false,
        fault: "npf",
        errorBits: PF_RMP | NPF_ENC | kind,
        reason: `GPA ${hex(gpaPage)} reached the page at ${hex(spa)}, which is ${what}`,
      };
    }
    if (e.pageSize !== RmpPageSize.PAGE_4K) {
      return {
        ok: false,
        fault: "npf",
        errorBits: PF_RMP | NPF_ENC | kind,
        reason: `the page at ${hex(spa)} is a 2 MiB RMP page behind a 4 KiB nested mapping`,
      };
    }
    if (!e.validated) return { ok: false, fault: "vc", errorCode: VC_PAGE_NOT_VALIDATED };
    const need = a.write ? VmplPerm.WRITE : VmplPerm.READ;
    if ((e.vmplPerms[a.vmpl ?? 0]! & need) === 0) {
      return {
        ok: false,
        fault: "npf",
        errorBits: PF_RMP | NPF_ENC | NPF_VMPL | kind,
        reason: `VMPL${a.vmpl ?? 0} may not ${a.write ? "write" : "read"} the page at ${hex(spa)}`,
      };
    }
    return { ok: true };
  }

  /**
   * The hook SNP_LAUNCH_UPDATE calls (SNP ABI 56860 section 8.17; `SnpRmpHook` in src/sev/snp/firmware-state.ts):
   * the page must be assigned to the guest's ASID at the command's page size, and not yet validated; the firmware
   * then marks it Validated and Immutable (and a VMSA page as VMSA) and measures it at the entry's GPA.
   */
  firmwareHook(): SnpRmpHook {
    return {
      launchUpdate: (page: SnpLaunchPage) => {
        const pageSize = page.size === LARGE_PAGE_SIZE ? RmpPageSize.PAGE_2M : RmpPageSize.PAGE_4K;
        const frames = this.#frames(page.pa, pageSize);
        const entries = frames.map((f) => this.#entries.get(f));
        for (const e of entries) {
          if (!e?.assigned) return { status: SevStatus.INVALID_PAGE_STATE };
          if (e.asid !== page.asid) return { status: SevStatus.INVALID_PAGE_OWNER };
          if (e.pageSize !== pageSize) return { status: SevStatus.INVALID_PAGE_SIZE };
          if (e.immutable || e.validated) return { status: SevStatus.INVALID_PAGE_STATE };
        }
        const list = entries as RmpEntry[];
        for (const e of list) {
          e.validated = true;
          e.immutable = true;
          if (page.pageType === "VMSA") e.vmsa = true;
        }
        return { gpa: BigInt(list[0]!.gpa) };
      },
    };
  }

  /**
   * The Secure Processor's half of SNP_PAGE_RECLAIM (SNP ABI 56860; src/sev/snp/handlers/page-reclaim.ts, which
   * decides whether the page may go): an Assigned, Immutable page of `pageSize` moves to the Reclaim state —
   * still Assigned (the host cannot write it yet), ASID 0, neither Immutable nor Validated — so the host's RMPUPDATE
   * can return it to the hypervisor. RMPUPDATE cannot do this itself: Immutable is what it refuses. False, and nothing
   * changes, for a page that is not Assigned and Immutable at that size.
   */
  firmwareReclaim(spa: number, pageSize: RmpPageSizeValue = RmpPageSize.PAGE_4K): boolean {
    const size = pageSize === RmpPageSize.PAGE_2M ? LARGE_PAGE_SIZE : PAGE_SIZE;
    if (!this.#covered(spa, size) || spa % size !== 0) return false;
    const entries = this.#frames(spa, pageSize).map((f) => this.#entries.get(f));
    if (entries.some((e) => !e?.assigned || !e.immutable || e.pageSize !== pageSize)) return false;
    for (const e of entries as RmpEntry[]) {
      Object.assign(e, { asid: 0, gpa: 0, immutable: false, validated: false, vmsa: false });
      e.vmplPerms = [0, 0, 0, 0];
    }
    return true;
  }
}
