/**
 * The kernel's page state changes through the GHCB, as Linux's `set_memory_decrypted` / `set_memory_encrypted` do
 * under SEV-SNP (torvalds/linux `arch/x86/coco/sev/core.c`: `set_pages_state`, `vmgexit_psc`, `pvalidate_pages`;
 * the protocol in src/machine/page-state-change.ts):
 *
 * - **to shared**: rescind validation (PVALIDATE, validate = 0), ask the hypervisor for SHARED, then clear the
 *   C-bit in the page-table entry;
 * - **to private**: ask for PRIVATE, set the C-bit, then validate (PVALIDATE, validate = 1).
 *
 * A PVALIDATE that fails or changes nothing (CF = 1) ends the VM with "PVALIDATE failed" — a page this kernel never
 * validated cannot be valid, one it rescinded cannot still be — and a hypervisor answer that is an error, goes
 * backwards or changes the request ends it with "page state change failed" (reason set 1, codes 2 and 1). A
 * hypervisor that answers without doing the RMPUPDATE is caught by the hardware instead: the PVALIDATE of a page it
 * did not make private faults (#NPF, RMP), and so does the kernel's first shared write to a page it did not make
 * shared.
 *
 * The request lives in a private kernel page (layout.ts `SNP_PSC_GPA`) — the GPAs, the operation, where to continue,
 * and how far each loop got, so a step restarted after a #NPF goes on where it stopped — and is copied into the
 * GHCB's shared buffer, where the hypervisor records its progress; the kernel re-issues it until cur_entry passes
 * end_entry, as Linux does.
 */
import { GHCB_SHARED_BUFFER, GHCB_SHARED_BUFFER_SIZE } from "../../machine/ghcb.ts";
import { decodeEntry, pageTableIndices } from "../../machine/guest-paging.ts";
import { Reg } from "../../machine/isa.ts";
import type { NativeStep } from "../../machine/native-code.ts";
import { PSC_MAX_ENTRIES, PscDescriptor, PscOp, SNP_PSC_EXIT } from "../../machine/page-state-change.ts";
import { RmpReturn } from "../../machine/rmp.ts";
import { BootInfo, GHCB_GPA, SNP_PSC_GPA } from "../layout.ts";
import { ghcbRequest, readGhcb } from "./ghcb-request.ts";
import type { KernelContext } from "./kernel-context.ts";
import { Routine, type RoutineId, Termination } from "./routines.ts";

const PAGE = 4096;
/** The private copy of the request: u32 op, u32 count, then u64 continuation routine, loop progress, GPAs. */
const Copy = {
  OP: 0x00,
  COUNT: 0x04,
  THEN: 0x08,
  RESCINDED: 0x10,
  VALIDATED: 0x18,
  CUR: 0x20,
  GPAS: 0x40,
} as const;
/** −22 as a u64: EINVAL, what a kernel call answers a bad request with. */
export const EINVAL = (1n << 64n) - 22n;

function u32(k: KernelContext, off: number): number {
  return Number(k.cpu.readU64(SNP_PSC_GPA + off) & 0xffffffffn);
}

/** The page-table entry of `gva`: its address and decoded form, or undefined when the page is not mapped. */
function pte(k: KernelContext, gva: number) {
  const cBit = Number(k.boot(BootInfo.C_BIT));
  const { pd, pt } = pageTableIndices(gva);
  const pde = decodeEntry(k.cpu.readU64(Number(k.cpu.state.cr3) + pd * 8), cBit);
  if (!pde.present) return undefined;
  const at = pde.gpa + pt * 8;
  const raw = k.cpu.readU64(at);
  const e = decodeEntry(raw, cBit);
  return e.present ? { at, raw, e, cBit } : undefined;
}

/** Whether `gva` is mapped private (C = 1); undefined when it is not mapped. */
export function isPrivate(k: KernelContext, gva: number): boolean | undefined {
  return pte(k, gva)?.e.cBit;
}

/** Sets or clears the C-bit of the page at `gva` (then the TLB forgets it). */
export function setCBit(k: KernelContext, gva: number, priv: boolean): void {
  const p = pte(k, gva);
  if (!p) return;
  const bit = 1n << BigInt(p.cBit);
  k.cpu.writeU64(p.at, priv ? p.raw | bit : p.raw & ~bit);
  k.cpu.invalidateTlb();
}

/** A PVALIDATE the kernel insists on: false (and the caller terminates) unless it succeeded and changed the page. */
function pvalidateOk(k: KernelContext, gva: number, validate: boolean): boolean {
  const r = k.cpu.pvalidate(gva, 0, validate);
  return r.code === RmpReturn.SUCCESS && !r.cf;
}

/** Starts a page state change of `gpas` (4 KiB pages, identity-mapped) to `op`; `then` runs when it is done. */
export function pscBegin(
  k: KernelContext,
  op: typeof PscOp.PRIVATE | typeof PscOp.SHARED,
  gpas: readonly number[],
  then: RoutineId,
): NativeStep {
  if (gpas.length === 0) return { kind: "jump", rip: k.at(then) };
  if (gpas.length > PSC_MAX_ENTRIES) throw new RangeError(`at most ${PSC_MAX_ENTRIES} pages per request`);
  const page = new Uint8Array(PAGE);
  const v = new DataView(page.buffer);
  v.setUint32(Copy.OP, op, true);
  v.setUint32(Copy.COUNT, gpas.length, true);
  v.setBigUint64(Copy.THEN, BigInt(then), true);
  gpas.forEach((g, i) => {
    v.setBigUint64(Copy.GPAS + 8 * i, BigInt(g), true);
  });
  k.cpu.write(SNP_PSC_GPA, page);
  return { kind: "jump", rip: k.at(Routine.PSC_ISSUE) };
}

function gpasOf(k: KernelContext): number[] {
  const n = u32(k, Copy.COUNT);
  return Array.from({ length: n }, (_, i) => Number(k.cpu.readU64(SNP_PSC_GPA + Copy.GPAS + 8 * i)));
}

/** PSC_ISSUE: rescind validation of pages going shared, then the first SNP_PSC request. */
export function pscIssue(k: KernelContext): NativeStep {
  const op = u32(k, Copy.OP);
  const gpas = gpasOf(k);
  if (op === PscOp.SHARED) {
    for (let i = Number(k.cpu.readU64(SNP_PSC_GPA + Copy.RESCINDED)); i < gpas.length; i++) {
      if (!pvalidateOk(k, gpas[i]!, false)) return k.terminate(Termination.PVALIDATE);
      k.cpu.writeU64(SNP_PSC_GPA + Copy.RESCINDED, BigInt(i + 1));
    }
  }
  const shared = new Uint8Array(GHCB_SHARED_BUFFER_SIZE);
  PscDescriptor.build(
    shared,
    gpas.map((g) => ({ gfn: g / PAGE, op, pageSize: 0 })),
  );
  k.cpu.writeU64(SNP_PSC_GPA + Copy.CUR, 0n);
  ghcbRequest(k, pscFields(), { shared });
  return k.ghcbExit(Routine.PSC_CONTINUE);
}

function pscFields() {
  return {
    swExitCode: SNP_PSC_EXIT,
    swExitInfo1: 0n,
    swExitInfo2: 0n,
    swScratch: BigInt(GHCB_GPA + GHCB_SHARED_BUFFER),
  };
}

/** PSC_CONTINUE: the hypervisor's answer — re-issue what is left, or finish. */
export function pscContinue(k: KernelContext): NativeStep {
  const gpas = gpasOf(k);
  const g = readGhcb(k);
  if ((g.get("swExitInfo1") & 0xffffffffn) !== 0n || g.get("swExitInfo2") !== 0n) {
    return k.terminate(Termination.PSC);
  }
  const d = new PscDescriptor(
    g.bytes.subarray(GHCB_SHARED_BUFFER, GHCB_SHARED_BUFFER + GHCB_SHARED_BUFFER_SIZE),
  );
  const h = d.header();
  const before = Number(k.cpu.readU64(SNP_PSC_GPA + Copy.CUR));
  // Linux's sanity checks: the reserved word stays 0, end_entry never grows, cur_entry never goes back.
  if (h.reserved !== 0 || h.endEntry > gpas.length - 1 || h.curEntry < before)
    return k.terminate(Termination.PSC);
  if (h.curEntry <= h.endEntry) {
    k.cpu.writeU64(SNP_PSC_GPA + Copy.CUR, BigInt(h.curEntry));
    ghcbRequest(k, pscFields(), { keep: true });
    return k.ghcbExit(Routine.PSC_CONTINUE);
  }
  const op = u32(k, Copy.OP);
  for (const gpa of gpas) setCBit(k, gpa, op === PscOp.PRIVATE);
  if (op === PscOp.PRIVATE) {
    for (let i = Number(k.cpu.readU64(SNP_PSC_GPA + Copy.VALIDATED)); i < gpas.length; i++) {
      if (!pvalidateOk(k, gpas[i]!, true)) return k.terminate(Termination.PVALIDATE);
      k.cpu.writeU64(SNP_PSC_GPA + Copy.VALIDATED, BigInt(i + 1));
    }
  }
  return { kind: "jump", rip: k.at(Number(k.cpu.readU64(SNP_PSC_GPA + Copy.THEN)) as RoutineId) };
}

/**
 * SET_MEMORY_SHARED / SET_MEMORY_PRIVATE, called by a program: RAX = first page, RCX = pages. The pages must be
 * mapped, page aligned, and in the other state; the return address is kept in boot information across the exits.
 */
export function setMemory(k: KernelContext, shared: boolean): NativeStep {
  const gpr = k.cpu.gpr;
  const rsp = gpr[Reg.rsp]!;
  k.setBoot(BootInfo.KAPI_RETURN, k.cpu.readU64(Number(rsp)));
  gpr[Reg.rsp] = rsp + 8n;
  const first = Number(gpr[Reg.rax]! & 0xffff_ffff_ffffn);
  const count = Number(gpr[Reg.rcx]! & 0xffffn);
  const gpas = Array.from({ length: count }, (_, i) => first + i * PAGE);
  const ok =
    first % PAGE === 0 &&
    count >= 1 &&
    count <= PSC_MAX_ENTRIES &&
    k.boot(BootInfo.SNP_BOOT_TABLE) !== 0n &&
    gpas.every((g) => isPrivate(k, g) === shared);
  if (!ok) {
    gpr[Reg.rax] = EINVAL;
    return { kind: "jump", rip: Number(k.boot(BootInfo.KAPI_RETURN)) };
  }
  return pscBegin(k, shared ? PscOp.SHARED : PscOp.PRIVATE, gpas, Routine.KAPI_RETURN);
}

/** KAPI_RETURN: the change is done; RAX ← 0 and back to the caller. */
export function kapiReturn(k: KernelContext): NativeStep {
  k.cpu.gpr[Reg.rax] = 0n;
  return { kind: "jump", rip: Number(k.boot(BootInfo.KAPI_RETURN)) };
}
