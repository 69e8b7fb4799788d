/**
 * Starting an SEV-SNP guest's APs with SNP AP creation (GHCB 56421, "SNP AP Creation"; torvalds/linux
 * `arch/x86/coco/sev/core.c` `wakeup_cpu_via_vmgexit`, `snp_set_vmsa`, `snp_cleanup_vmsa`; the protocol in
 * src/machine/ap-creation.ts), as Linux does when the hypervisor advertises the feature:
 *
 * 1. The BSP writes the AP's VMSA into a private page of its own — its control registers, segments and page tables,
 *    RIP at the AP entry routine, RSP and TR at the AP's per-CPU page, RDI the APIC ID, RSI the AP's GHCB, and
 *    SEV_FEATURES = SEV_STATUS >> 2 (what the BSP itself runs with) — then makes the page a VMSA with RMPADJUST
 *    (target VMPL1, no permissions, the VMSA bit: only VMPL0 can set it, APM vol. 2 section 15.36.7).
 * 2. It asks for CREATE through the GHCB: SW_EXITINFO1 = APIC ID << 32 | CREATE, SW_EXITINFO2 = the VMSA's GPA,
 *    RAX = SEV_FEATURES. A refusal (SW_EXITINFO1 ≠ 0) leaves that CPU down: the BSP takes the VMSA bit back and goes on.
 * 3. The AP starts there: it registers its own GHCB (MSR protocol 0x012) — made shared at boot (snp-boot.ts) —
 *    marks itself online in the kernel's boot information, and idles.
 *
 * Without the feature the kernel starts no AP: Linux would fall back to the SEV-ES AP jump table and the APs'
 * launched VMSAs, which start in OVMF's AP reset code (not emulated). The boot messages say how many CPUs came up,
 * in Linux's words.
 */
import { ApCreationRequest, apCreationExitInfo1, SNP_AP_CREATION_EXIT } from "../../machine/ap-creation.ts";
import { GhcbHvFeature, GhcbMsr, MSR_GHCB, MSR_SEV_STATUS, msrCode } from "../../machine/ghcb.ts";
import { Reg } from "../../machine/isa.ts";
import type { NativeStep } from "../../machine/native-code.ts";
import { RmpReturn, rmpadjustAttributes } from "../../machine/rmp.ts";
import { encodeVmsa } from "../../measure/vmsa.ts";
import { apPages, BootInfo } from "../layout.ts";
import { ghcbRequest, readGhcb } from "./ghcb-request.ts";
import type { KernelContext } from "./kernel-context.ts";
import { Routine, Termination } from "./routines.ts";
import { bootTable } from "./snp-boot.ts";

const PAGE = 4096;
/** RMPADJUST attributes: the page becomes a VMSA (target VMPL1, no rights), or stops being one. */
const MAKE_VMSA = rmpadjustAttributes({ targetVmpl: 1, perms: 0, vmsa: true });
const CLEAR_VMSA = rmpadjustAttributes({ targetVmpl: 1, perms: 0, vmsa: false });

function apCount(k: KernelContext): number {
  return bootTable(k)?.apCount ?? 0;
}

/** The AP's first register state: the BSP's own modes and tables, the AP's entry, stack and per-CPU page. */
function apVmsa(k: KernelContext, apicId: number): Uint8Array {
  const s = k.cpu.state;
  const { percpu, ghcb } = apPages(apicId);
  return encodeVmsa({
    es: s.es,
    cs: s.cs,
    ss: s.ss,
    ds: s.ds,
    fs: s.fs,
    gs: s.gs,
    gdtr: s.gdtr,
    ldtr: s.ldtr,
    idtr: s.idtr,
    tr: { ...s.tr, base: BigInt(percpu) },
    cr0: s.cr0,
    cr3: s.cr3,
    cr4: s.cr4,
    efer: s.efer,
    rflags: 0x2n,
    dr7: 0x400n,
    dr6: 0xffff0ff0n,
    gPat: s.gPat,
    xcr0: 0x1n,
    vmpl: 0,
    rip: BigInt(k.at(Routine.AP_ENTRY)),
    rsp: BigInt(percpu + PAGE),
    rdi: BigInt(apicId),
    rsi: BigInt(ghcb),
    sevFeatures: k.cpu.rdmsr(MSR_SEV_STATUS) >> 2n,
  });
}

function failed(k: KernelContext, apicId: number): void {
  k.setBoot(BootInfo.SMP_FAILED, k.boot(BootInfo.SMP_FAILED) | (1n << BigInt(apicId)));
}

/** SMP_NEXT: starts the next AP, or goes on to the program when there is none (or no AP creation). */
export function smpNext(k: KernelContext): NativeStep {
  const next = Math.max(1, Number(k.boot(BootInfo.SMP_NEXT)));
  const canCreate = (k.boot(BootInfo.HV_FEATURES) & GhcbHvFeature.SNP_AP_CREATION) !== 0n;
  if (!canCreate || next > apCount(k)) return { kind: "jump", rip: k.at(Routine.BOOT_DONE) };
  k.setBoot(BootInfo.SMP_NEXT, BigInt(next));
  const { vmsa } = apPages(next);
  k.cpu.write(vmsa, apVmsa(k, next));
  if (k.cpu.rmpadjust(vmsa, 0, MAKE_VMSA) !== RmpReturn.SUCCESS) {
    failed(k, next);
    k.setBoot(BootInfo.SMP_NEXT, BigInt(next + 1));
    return { kind: "jump", rip: k.at(Routine.SMP_NEXT) };
  }
  ghcbRequest(k, {
    rax: k.cpu.rdmsr(MSR_SEV_STATUS) >> 2n,
    swExitCode: SNP_AP_CREATION_EXIT,
    swExitInfo1: apCreationExitInfo1(next, ApCreationRequest.CREATE),
    swExitInfo2: BigInt(vmsa),
  });
  return k.ghcbExit(Routine.SMP_AP_CREATED);
}

/** SMP_AP_CREATED: the hypervisor's answer; on a refusal the page stops being a VMSA. Then the next AP. */
export function smpApCreated(k: KernelContext): NativeStep {
  const apicId = Number(k.boot(BootInfo.SMP_NEXT));
  const g = readGhcb(k);
  if (!g.isValid("swExitInfo1") || (g.get("swExitInfo1") & 0xffffffffn) !== 0n) {
    k.cpu.rmpadjust(apPages(apicId).vmsa, 0, CLEAR_VMSA);
    failed(k, apicId);
  }
  k.setBoot(BootInfo.SMP_NEXT, BigInt(apicId + 1));
  return { kind: "jump", rip: k.at(Routine.SMP_NEXT) };
}

/** AP_ENTRY: the AP's first instruction. It registers its GHCB (RSI). */
export function apEntry(k: KernelContext): NativeStep {
  const gfn = k.cpu.gpr[Reg.rsi]! >> 12n;
  k.cpu.wrmsr(MSR_GHCB, (gfn << 12n) | BigInt(GhcbMsr.REG_GPA_REQ));
  return { kind: "vmgexit", resume: k.at(Routine.AP_GHCB_REGISTERED) };
}

/** AP_GHCB_REGISTERED: online — its bit in the boot information, its GHCB in the GHCB MSR — then idle. */
export function apGhcbRegistered(k: KernelContext): NativeStep {
  const ghcb = k.cpu.gpr[Reg.rsi]!;
  const v = k.cpu.rdmsr(MSR_GHCB);
  if (msrCode(v) !== GhcbMsr.REG_GPA_RESP || v >> 12n !== ghcb >> 12n) {
    return k.terminate(Termination.GHCB_REGISTRATION);
  }
  const apicId = k.cpu.gpr[Reg.rdi]!;
  k.setBoot(BootInfo.SMP_ONLINE, k.boot(BootInfo.SMP_ONLINE) | (1n << apicId));
  k.cpu.wrmsr(MSR_GHCB, ghcb);
  return { kind: "hlt", resume: k.at(Routine.AP_IDLE) };
}

/** Linux's boot lines about the CPUs (`smpboot: …`, `smp: Brought up …`), when the guest has APs. */
export function smpMessages(k: KernelContext): string[] {
  const aps = apCount(k);
  if (aps === 0) return [];
  const lines: string[] = [];
  const failedMask = k.boot(BootInfo.SMP_FAILED);
  for (let i = 1; i <= aps; i++) {
    if ((failedMask >> BigInt(i)) & 1n) lines.push(`smpboot: do_boot_cpu failed(-22) to wakeup CPU#${i}`);
  }
  let cpus = 1;
  for (let m = k.boot(BootInfo.SMP_ONLINE); m !== 0n; m >>= 1n) cpus += Number(m & 1n);
  lines.push(`smp: Brought up 1 node, ${cpus} CPU${cpus === 1 ? "" : "s"}`);
  return lines;
}
