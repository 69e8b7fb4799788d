/**
 * The SEV-SNP lab bench, next to lab.ts: one emulated Milan (or Genoa, Turin) host with a Reverse Map Table
 * (src/machine/rmp.ts), the SNP firmware reaching it through the RMP hook of the Secure Processor's `snp` config
 * (src/machine/rmp-firmware-hook.ts), and one guest launched the way KVM launches an SNP guest (SNP ABI 56860
 * sections 5 and 8.17; docs/sev-interface.md §14): the context page made a firmware page, SNP_GCTX_CREATE →
 * SNP_LAUNCH_START → SNP_ACTIVATE → for every private page RMPUPDATE (assigned to the ASID at its GPA) and
 * SNP_LAUNCH_UPDATE (encrypted in place, measured, marked Validated and Immutable) → the VMSA the same way, as a
 * VMSA page with SEV_FEATURES bit 0 (SNPActive) → SNP_LAUNCH_FINISH. Shared pages stay hypervisor-owned.
 *
 * The guest image is the SEV-ES one (the VMCB of an SNP guest is an SEV-ES VMCB); SNP is its VMSA's SNPActive bit.
 * The hypervisor's view checks its writes against the RMP. Deterministic from the seed.
 *
 * @example
 * ```ts
 * const lab = createSnpLab({ source: "start:\n  hlt\n  jmp start\n" });
 * lab.rmp.entry(lab.view.frameOf(0x200000)!); // { assigned: true, validated: true, immutable: true, … }
 * ```
 */
import { CiphervisorError } from "../../errors.ts";
import { assemble, type GuestProgram } from "../../guest/assembler.ts";
import { buildGuestImage, type GuestImage } from "../../guest/image.ts";
import { guestOsProfile } from "../../guest/os-profiles.ts";
import { cpuModel, type Generation } from "../../machine/cpu-models.ts";
import { type Dram, PAGE_SIZE } from "../../machine/dram.ts";
import type { MachineObserver } from "../../machine/execution.ts";
import { type Machine, SEV_FEATURE_SNP_ACTIVE } from "../../machine/machine.ts";
import { NestedPageTable } from "../../machine/nested-page-table.ts";
import { type Rmp, RmpReturn } from "../../machine/rmp.ts";
import { Vmcb } from "../../machine/vmcb.ts";
import { SNP_VMSA_GPA } from "../../measure/snp-launch-digest.ts";
import { encodeVmsa } from "../../measure/vmsa.ts";
import { GUEST_BASE } from "../../sev/emulated-platform.ts";
import type { SecureProcessor } from "../../sev/secure-processor.ts";
import type { SnpClient } from "../../sev/snp/client.ts";
import { DEFAULT_SNP_POLICY } from "../../sev/snp/policy.ts";
import { FramePool } from "../frames.ts";
import { HostDevices } from "../kvm/devices.ts";
import { type HandledExit, handleExit } from "../kvm/exit-handler.ts";
import type { LaunchedGuest } from "../kvm/launch.ts";
import { createSnpPlatform } from "../snp-platform.ts";
import { HypervisorView } from "./hypervisor-view.ts";
import { runExits } from "./lab.ts";

export interface SnpLabOptions {
  source: string | GuestProgram;
  seed?: string | number;
  /** A part with SEV-SNP (default milan); one without is REQUIREMENT_FAILED. */
  generation?: Generation;
  guestOs?: string;
  observer?: MachineObserver;
}

export interface SnpLab {
  dram: Dram;
  sp: SecureProcessor;
  client: SnpClient;
  rmp: Rmp;
  machine: Machine;
  image: GuestImage;
  vm: LaunchedGuest;
  /** The guest context page of SNP_GCTX_CREATE. */
  gctx: number;
  /** The hypervisor's view, its writes checked against the RMP. */
  view: HypervisorView;
  /** Frames for the hypervisor's own use (e.g. a page it wants to remap a GPA to). */
  frames: FramePool;
  step(): HandledExit;
  /** Steps until the host stops the guest, `until` says so, or `maxExits` exits (as lab.ts's `run`). */
  run(opts?: { until?: (h: HandledExit) => boolean; maxExits?: number }): HandledExit[];
}

/** The ASID of the lab's guest: SNP guests take ASIDs of the SEV-ES range. */
export const SNP_LAB_ASID = 1;

export function createSnpLab(opts: SnpLabOptions): SnpLab {
  const seed = String(opts.seed ?? 1);
  const generation = opts.generation ?? "milan";
  const model = cpuModel(generation);
  if (!model.snp) {
    throw new CiphervisorError(
      "REQUIREMENT_FAILED",
      `cannot run an SEV-SNP guest: ${generation} (${model.family}) does not support SEV-SNP; it needs milan or later`,
    );
  }
  const { dram, rmp, sp, client, machine } = createSnpPlatform({
    generation,
    seed: `snp-lab:${seed}`,
    rngLabel: "rdrand",
    ...(opts.observer ? { observer: opts.observer } : {}),
  });
  const program = typeof opts.source === "string" ? assemble(opts.source) : opts.source;
  const image = buildGuestImage(program, {
    profile: guestOsProfile(opts.guestOs ?? "linux-5.19"),
    mode: "sev-es",
    model,
  });
  image.initialState.sevFeatures = (image.initialState.sevFeatures ?? 0n) | SEV_FEATURE_SNP_ACTIVE;

  const frames = new FramePool(GUEST_BASE, dram.size);
  const asid = SNP_LAB_ASID;
  const gctx = frames.alloc();
  rmp.rmpupdate(gctx, { assigned: true, asid: 0, immutable: true });
  client.gctxCreate(gctx);
  client.launchStart(gctx, { policy: DEFAULT_SNP_POLICY });
  client.activate(gctx, asid);

  const assign = (hpa: number, gpa: number) => {
    const code = rmp.rmpupdate(hpa, { assigned: true, asid, gpa });
    if (code !== RmpReturn.SUCCESS)
      throw new RangeError(`RMPUPDATE of 0x${hpa.toString(16)} failed: ${code}`);
  };
  const npt = new NestedPageTable();
  const vmcbPa = frames.alloc();
  const vmsaPa = frames.alloc();
  const vmcb = new Vmcb(vmcbPa, { asid, mode: "sev-es", npt, vmsaPa });
  dram.write(vmcbPa, new Uint8Array(PAGE_SIZE));
  const map = new Map<number, number>();
  for (const p of image.pages) {
    const hpa = frames.alloc();
    map.set(p.gpa, hpa);
    npt.map(p.gpa, hpa);
    dram.write(hpa, p.data);
    if (!p.launchEncrypted) continue;
    assign(hpa, p.gpa);
    client.launchUpdate(gctx, { pa: hpa, type: "NORMAL" });
  }
  dram.write(vmsaPa, encodeVmsa(image.initialState));
  assign(vmsaPa, SNP_VMSA_GPA);
  client.launchUpdate(gctx, { pa: vmsaPa, type: "VMSA" });
  client.launchFinish(gctx);

  const vm: LaunchedGuest = {
    machine,
    memory: dram,
    vmcb,
    npt,
    devices: new HostDevices(model, "sev-es"),
    cBit: model.cBit,
    registeredGhcb: { gpa: undefined },
    asid,
    handle: undefined,
    measurement: undefined,
    frames: map,
  };
  const view = new HypervisorView(dram, vm, rmp);
  const step = () => handleExit(vm, machine.vmrun(vm.vmcb));
  return {
    dram,
    sp,
    client,
    rmp,
    machine,
    image,
    vm,
    gctx,
    view,
    frames,
    step,
    run: (o) => runExits(step, o),
  };
}
