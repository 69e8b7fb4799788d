/**
 * Test support for the register-leak tests of SEV-ES and SEV-SNP guests (docs/threat-model.md §8 item 1): runs a
 * lab's guest exit by exit, as the host would, and after each exit scans every byte the hypervisor can read — the
 * save area, the VMCB, the GHCB — then all of DRAM once the guest stops, for the scanner's canaries. A canary in the
 * GHCB is allowed only at a field the guest marked valid (it put it there); it is then allowed in DRAM too.
 */

import { SvmExit } from "../../machine/exit-codes.ts";
import { EXPOSABLE_FIELDS, GhcbField, GhcbView } from "../../machine/ghcb.ts";
import type { Machine } from "../../machine/machine.ts";
import { handleExit } from "../kvm/exit-handler.ts";
import type { LaunchedGuest } from "../kvm/launch.ts";
import type { HypervisorView, SaveAreaView } from "./hypervisor-view.ts";
import type { CanaryScanner } from "./test-support.ts";

export interface LeakScan {
  /** Where a canary was seen that the guest did not expose. */
  readonly violations: string[];
  /** Canaries found at GHCB fields the guest marked valid. */
  readonly ghcbExposures: number;
  readonly vmexits: number;
  /** Why the host stopped the guest ("" if it did not within `maxExits`). */
  readonly stopReason: string;
}

export function scanForCanaries(
  lab: { readonly machine: Machine; readonly vm: LaunchedGuest; readonly view: HypervisorView },
  scanner: CanaryScanner,
  maxExits: number,
  onSaveArea?: (save: SaveAreaView) => void,
): LeakScan {
  const violations: string[] = [];
  const allowed = new Set<bigint>();
  let ghcbExposures = 0;
  let vmexits = 0;
  let stopReason = "";
  for (; vmexits < maxExits; vmexits++) {
    const exit = lab.machine.vmrun(lab.vm.vmcb);
    const save = lab.view.saveArea();
    onSaveArea?.(save);
    for (const h of scanner.scan(save.bytes)) violations.push(`VMSA +0x${h.offset.toString(16)}`);
    for (const h of scanner.scan(lab.view.vmcbPage())) violations.push(`VMCB +0x${h.offset.toString(16)}`);
    const ghcb = exit.exitCode === SvmExit.VMGEXIT ? lab.view.ghcb() : undefined;
    if (ghcb) {
      const g = new GhcbView(ghcb.bytes.slice());
      const validAt = new Map<number, bigint>();
      for (const f of EXPOSABLE_FIELDS) if (g.isValid(f)) validAt.set(GhcbField[f], g.get(f));
      for (const h of scanner.scan(ghcb.bytes)) {
        if (validAt.get(h.offset) === h.value) {
          ghcbExposures++;
          allowed.add(h.value);
        } else violations.push(`GHCB +0x${h.offset.toString(16)} (not a valid field)`);
      }
    }
    const handled = handleExit(lab.vm, exit);
    if (handled.outcome.action === "stop") {
      stopReason = handled.outcome.reason;
      break;
    }
  }
  for (const frame of lab.view.memoryImage()) {
    for (const h of scanner.scan(frame.bytes)) {
      if (!allowed.has(h.value)) violations.push(`DRAM 0x${(frame.pa + h.offset).toString(16)}`);
    }
  }
  return { violations, ghcbExposures, vmexits, stopReason };
}
