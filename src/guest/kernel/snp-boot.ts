/**
 * An SEV-SNP kernel's own boot steps, between the GHCB protocol negotiation and the program (Linux
 * `arch/x86/boot/compressed/sev.c` `sev_enable`, `arch/x86/coco/sev/core.c` `early_set_pages_state`,
 * `snp_register_ghcb_early`, `accept_memory`; the boot table of src/guest/snp-boot-table.ts):
 *
 * 1. **Hypervisor features** (GHCB MSR protocol 0x080 / 0x081): a hypervisor that does not advertise SNP ends the
 *    VM ("SEV-SNP not supported", reason set 0 code 2); the AP creation bit decides how APs start (snp-smp.ts).
 * 2. **The boot GHCB made shared**, before it can be used and so through the MSR protocol (0x014 / 0x015): rescind
 *    its validation, ask for SHARED, clear its C-bit, clear the page. Then it is registered (0x012) as before.
 * 3. **Memory acceptance**: every page of the boot table's accept list — private memory the firmware left
 *    unvalidated, assigned to the guest by the host's RMPUPDATE — is PVALIDATEd and cleared before anything uses it,
 *    as Linux accepts unaccepted memory. A PVALIDATE that fails, or answers CF = 1 (the page was validated already:
 *    someone aliased or replayed it), ends the VM with "PVALIDATE failed" (reason set 1, code 2). A page the kernel
 *    never validated is not usable: its first private access is #VC 0x404 (APM vol. 2 section 15.36.10).
 * 4. **Boot buffers made shared** with one SNP_PSC request through the GHCB (snp-memory.ts): the guest-agent pages
 *    and the APs' GHCBs, then cleared. Then the APs (snp-smp.ts) and the program.
 */
import { GhcbHvFeature, GhcbMsr, MSR_GHCB, msrCode } from "../../machine/ghcb.ts";
import type { NativeStep } from "../../machine/native-code.ts";
import { PscOp, pscMsrRequest, pscMsrResponseError } from "../../machine/page-state-change.ts";
import { RmpReturn } from "../../machine/rmp.ts";
import { BootInfo, GHCB_GPA } from "../layout.ts";
import { decodeSnpBootTable, type SnpBootTable } from "../snp-boot-table.ts";
import type { KernelContext } from "./kernel-context.ts";
import { Routine, Termination } from "./routines.ts";
import { pscBegin, setCBit } from "./snp-memory.ts";

const PAGE = 4096;

export function bootTable(k: KernelContext): SnpBootTable | undefined {
  const gpa = Number(k.boot(BootInfo.SNP_BOOT_TABLE));
  return gpa === 0 ? undefined : decodeSnpBootTable(k.cpu.read(gpa, PAGE));
}

/** Asks for the hypervisor features (after SEV_INFO, on an SNP-active vCPU). */
export function requestHvFeatures(k: KernelContext): NativeStep {
  k.cpu.wrmsr(MSR_GHCB, BigInt(GhcbMsr.HV_FEATURES_REQ));
  return { kind: "vmgexit", resume: k.at(Routine.BOOT_HV_FEATURES) };
}

/** Registers the boot GHCB (MSR protocol 0x012), resuming at BOOT_GHCB_REGISTERED. */
export function registerGhcb(k: KernelContext): NativeStep {
  const gfn = k.boot(BootInfo.GHCB_GPA) >> 12n;
  k.cpu.wrmsr(MSR_GHCB, (gfn << 12n) | BigInt(GhcbMsr.REG_GPA_REQ));
  return { kind: "vmgexit", resume: k.at(Routine.BOOT_GHCB_REGISTERED) };
}

/** BOOT_HV_FEATURES: the features answer; then the boot GHCB made shared when it reached the kernel private. */
export function bootHvFeatures(k: KernelContext): NativeStep {
  const v = k.cpu.rdmsr(MSR_GHCB);
  if (msrCode(v) !== GhcbMsr.HV_FEATURES_RESP) return k.terminate(Termination.GENERAL);
  const features = v >> 12n;
  k.setBoot(BootInfo.HV_FEATURES, features);
  if ((features & GhcbHvFeature.SNP) === 0n) return k.terminate(Termination.SNP_UNSUPPORTED);
  if (!bootTable(k)?.ghcbPrivate) return registerGhcb(k);
  const r = k.cpu.pvalidate(GHCB_GPA, 0, false);
  if (r.code !== RmpReturn.SUCCESS || r.cf) return k.terminate(Termination.PVALIDATE);
  k.cpu.wrmsr(MSR_GHCB, pscMsrRequest(GHCB_GPA / PAGE, PscOp.SHARED));
  return { kind: "vmgexit", resume: k.at(Routine.BOOT_GHCB_SHARED) };
}

/** BOOT_GHCB_SHARED: the MSR-protocol answer; the GHCB's C-bit cleared and the page cleared, then registered. */
export function bootGhcbShared(k: KernelContext): NativeStep {
  const v = k.cpu.rdmsr(MSR_GHCB);
  if (msrCode(v) !== GhcbMsr.PSC_RESP || pscMsrResponseError(v) !== 0n) return k.terminate(Termination.PSC);
  setCBit(k, GHCB_GPA, false);
  k.cpu.write(GHCB_GPA, new Uint8Array(PAGE));
  return registerGhcb(k);
}

/** SNP_ACCEPT: validates and clears the accept list, then makes the boot buffers shared. */
export function acceptMemory(k: KernelContext): NativeStep {
  const table = bootTable(k);
  if (!table) return { kind: "jump", rip: k.at(Routine.BOOT_DONE) };
  const done = Number(k.boot(BootInfo.ACCEPT_DONE));
  let n = 0;
  for (const range of table.accept) {
    for (let p = 0; p < range.pages; p++, n++) {
      if (n < done) continue;
      const gpa = range.gpa + p * PAGE;
      const r = k.cpu.pvalidate(gpa, 0, true);
      if (r.code !== RmpReturn.SUCCESS || r.cf) return k.terminate(Termination.PVALIDATE);
      k.cpu.write(gpa, new Uint8Array(PAGE));
      k.setBoot(BootInfo.ACCEPT_DONE, BigInt(n + 1));
    }
  }
  return pscBegin(k, PscOp.SHARED, table.share, Routine.SNP_BOOT_SHARED);
}

/** SNP_BOOT_SHARED: the boot buffers are shared: clear them (plaintext now), then start the APs. */
export function bootBuffersShared(k: KernelContext): NativeStep {
  for (const gpa of bootTable(k)?.share ?? []) k.cpu.write(gpa, new Uint8Array(PAGE));
  return { kind: "jump", rip: k.at(Routine.SMP_NEXT) };
}
