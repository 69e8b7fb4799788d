/**
 * Reference launch of a guest image on one emulated host, in the order KVM/QEMU use (docs/architecture.md §3.2 "Power on an SEV-ES
 * VM"; docs/sev-interface.md §8): place every guest page in a host frame and map it in the NPT, LAUNCH_START → ACTIVATE →
 * LAUNCH_UPDATE_DATA of every private page (the firmware encrypts it in place at its system physical address) →
 * the initial register state: LAUNCH_UPDATE_VMSA for SEV-ES (encrypted, measured, recorded in trusted memory), the
 * plaintext VMCB save area otherwise → LAUNCH_MEASURE → LAUNCH_FINISH.
 *
 * The firmware is reached through `LaunchFirmware`, which the Secure Processor's `SevClient` implements; the
 * machine layer never imports the firmware.
 */
import type { GuestImage } from "../../guest/image.ts";
import { PAGE_SIZE, type SystemMemory } from "../../machine/dram.ts";
import type { Machine } from "../../machine/machine.ts";
import { NestedPageTable } from "../../machine/nested-page-table.ts";
import { SAVE_AREA_SIZE, Vmcb } from "../../machine/vmcb.ts";
import { encodeVmsa } from "../../measure/vmsa.ts";
import type { FramePool } from "../frames.ts";
import { HostDevices } from "./devices.ts";
import type { HostVm } from "./exit-handler.ts";

/** The launch commands, as `SevClient` offers them. */
export interface LaunchFirmware {
  launchStart(opts: { policy: number }): { handle: number };
  activate(handle: number, asid: number): void;
  launchUpdateData(handle: number, pa: number, length: number): void;
  launchUpdateVmsa(handle: number, pa: number): void;
  launchMeasure(handle: number): Uint8Array;
  launchFinish(handle: number): void;
}

/** Guest policy bits used here (docs/sev-interface.md §6): NODBG and ES. */
export const POLICY_NODBG = 0x1;
export const POLICY_ES = 0x4;

export interface LaunchedGuest extends HostVm {
  machine: Machine;
  asid: number;
  /** Firmware guest handle (SEV and SEV-ES). */
  handle: number | undefined;
  /** MEASURE ‖ MNONCE from LAUNCH_MEASURE (SEV and SEV-ES). */
  measurement: Uint8Array | undefined;
  /** GPA → host frame, as first mapped. */
  frames: Map<number, number>;
}

/**
 * Launches `image` and returns the host's handle on it, ready for `machine.vmrun(vm.vmcb)`.
 *
 * @param asid from the host's ASID allocator (ES pool for SEV-ES, SEV pool for SEV); any non-SEV ASID for "none"
 */
export function launchGuest(opts: {
  machine: Machine;
  memory: SystemMemory;
  image: GuestImage;
  frames: FramePool;
  asid: number;
  firmware?: LaunchFirmware;
  policy?: number;
}): LaunchedGuest {
  const { machine, memory, image, frames, asid } = opts;
  const mode = image.mode;
  const fw = mode === "none" ? undefined : opts.firmware;
  if (mode !== "none" && !fw) throw new RangeError(`an ${mode} launch needs the Secure Processor (firmware)`);
  const npt = new NestedPageTable();
  const vmcbPa = frames.alloc();
  const vmsaPa = mode === "sev-es" ? frames.alloc() : undefined;
  const vmcb = new Vmcb(vmcbPa, { asid, mode, npt, vmsaPa });
  memory.write(vmcbPa, new Uint8Array(PAGE_SIZE));

  let handle: number | undefined;
  if (fw) {
    const policy = opts.policy ?? (mode === "sev-es" ? POLICY_NODBG | POLICY_ES : POLICY_NODBG);
    handle = fw.launchStart({ policy }).handle;
    fw.activate(handle, asid);
  }
  const map = new Map<number, number>();
  for (const p of image.pages) {
    const hpa = frames.alloc();
    map.set(p.gpa, hpa);
    npt.map(p.gpa, hpa);
    memory.write(hpa, p.data);
    if (fw && handle !== undefined && p.launchEncrypted) fw.launchUpdateData(handle, hpa, PAGE_SIZE);
  }
  const initial = encodeVmsa(image.initialState);
  if (mode === "sev-es") {
    memory.write(vmsaPa!, initial);
    fw!.launchUpdateVmsa(handle!, vmsaPa!);
  } else {
    memory.write(vmcb.saveAreaPa, initial.subarray(0, SAVE_AREA_SIZE));
  }
  let measurement: Uint8Array | undefined;
  if (fw && handle !== undefined) {
    measurement = fw.launchMeasure(handle);
    fw.launchFinish(handle);
  }
  return {
    machine,
    memory,
    vmcb,
    npt,
    devices: new HostDevices(machine.model, mode),
    cBit: machine.model.cBit,
    registeredGhcb: { gpa: undefined },
    asid,
    handle,
    measurement,
    frames: map,
  };
}
