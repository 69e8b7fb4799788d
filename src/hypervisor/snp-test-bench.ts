/**
 * Test scaffolding (not part of the library API): one SEV-SNP guest on one emulated Milan host, launched and handed
 * off exactly as `Host` does it — snp-launch.ts (SNP_LAUNCH_START … FINISH through the real firmware), the image
 * mapped and assigned in the RMP by the host (snp-guest-memory.ts), the guest firmware's PVALIDATE and load
 * (machine/firmware-handoff.ts), then the BSP and the APs it creates run with KVM's exit handling
 * (kvm/exit-handler.ts, kvm/snp-vcpus.ts) — but with the steps in the test's hands: the image can be changed before
 * the firmware loads it (a broken firmware hand-off), the machine observed (ground truth), the host's features and
 * page-state-change batches chosen, and the guest run one exit at a time while the test plays the hypervisor
 * through `view` (its DRAM, NPT and RMP).
 */
import { assemble } from "../guest/assembler.ts";
import { buildGuestImage, type GuestImage } from "../guest/image.ts";
import { guestOsProfile } from "../guest/os-profiles.ts";
import { PAGE_SIZE } from "../machine/dram.ts";
import type { MachineObserver } from "../machine/execution.ts";
import { SvmExit } from "../machine/exit-codes.ts";
import type { HandoffResult } from "../machine/firmware-handoff.ts";
import { KVM_HV_FEATURES } from "../machine/ghcb.ts";
import type { Machine } from "../machine/machine.ts";
import { NestedPageTable } from "../machine/nested-page-table.ts";
import type { Rmp } from "../machine/rmp.ts";
import { Vmcb } from "../machine/vmcb.ts";
import { GUEST_BASE } from "../sev/emulated-platform.ts";
import { FramePool } from "./frames.ts";
import { HypervisorView } from "./introspection/hypervisor-view.ts";
import { HostDevices } from "./kvm/devices.ts";
import { type HandledExit, type HostVm, handleExit } from "./kvm/exit-handler.ts";
import type { SnpGuestKvm } from "./kvm/snp-context.ts";
import { runKickedAps, SnpVcpu, SnpVcpuSet, type VcpuRunResult } from "./kvm/snp-vcpus.ts";
import { mapGuestPage } from "./launch.ts";
import { assignSnpImage } from "./snp-guest-memory.ts";
import { SNP_GUEST_FEATURES, snpLaunch } from "./snp-launch.ts";
import { createSnpPlatform } from "./snp-platform.ts";
import { vmSpec } from "./test-support.ts";

export interface SnpBenchOptions {
  source: string;
  vcpus?: number;
  guestOs?: string;
  seed?: string;
  /** What the host's KVM advertises (default KVM's: SNP and SNP AP creation). */
  hvFeatures?: bigint;
  pscBatchLimit?: number;
  observer?: MachineObserver;
  /** Changes the guest image before the host assigns and the firmware loads it. */
  editImage?(image: GuestImage): void;
}

export interface SnpBench {
  rmp: Rmp;
  machine: Machine;
  image: GuestImage;
  asid: number;
  /** The BSP as the host runs it. */
  vm: HostVm;
  vcpus: SnpVcpuSet;
  kvm: SnpGuestKvm;
  view: HypervisorView;
  /** Frames for the hypervisor's own use. */
  frames: FramePool;
  /** The guest firmware's hand-off: refused (with the reason) when it could not validate a page. */
  handoff: HandoffResult;
  /** One VMRUN of the BSP and the host's handling of its exit, then the APs that exit kicked. */
  step(): HandledExit & { aps: VcpuRunResult };
  /** Steps until the host stops the guest, the BSP halts, or `maxExits` exits. */
  run(opts?: { maxExits?: number }): (HandledExit & { aps: VcpuRunResult })[];
}

export const BENCH_ASID = 1;

/** Why the host stopped the guest at this exit ("" when it did not). */
export function stopReason(h: HandledExit | undefined): string {
  return h?.outcome.action === "stop" ? h.outcome.reason : "";
}

export function createSnpBench(o: SnpBenchOptions): SnpBench {
  const seed = o.seed ?? "snp-bench";
  const { model, dram, rmp, client, machine } = createSnpPlatform({
    generation: "milan",
    seed,
    rngLabel: "cpu",
    ...(o.observer ? { observer: o.observer } : {}),
  });
  const frames = new FramePool(GUEST_BASE, dram.size);
  const npt = new NestedPageTable();
  const devices = new HostDevices(model, "sev-snp");
  const vcpuCount = o.vcpus ?? 1;
  const spec = vmSpec("bench", { security: "sev-snp", vcpus: vcpuCount, guestOs: o.guestOs ?? "linux-5.19" });
  const asid = BENCH_ASID;
  const m = snpLaunch(
    {
      snp: client,
      rmp,
      memory: dram,
      frames,
      npt,
      generation: "milan",
      cpuid: (leaf, subleaf) => devices.cpuid(leaf, subleaf, 1n),
    },
    spec,
    asid,
  );
  const vmcbs = m.vmsaPas.map((vmsaPa) => {
    const pa = frames.alloc();
    dram.write(pa, new Uint8Array(PAGE_SIZE));
    return new Vmcb(pa, { asid, mode: "sev-snp", npt, vmsaPa });
  });
  const registeredGhcb = { gpa: undefined };
  const vcpus = new SnpVcpuSet(
    SNP_GUEST_FEATURES,
    vmcbs.map(
      (vmcb, i) =>
        new SnpVcpu(i, vmcb, i === 0 ? "runnable" : "uninitialized", i === 0 ? registeredGhcb : undefined),
    ),
  );
  const kvm: SnpGuestKvm = {
    rmp,
    asid,
    hvFeatures: o.hvFeatures ?? KVM_HV_FEATURES,
    vcpus,
    ...(o.pscBatchLimit !== undefined ? { pscBatchLimit: o.pscBatchLimit } : {}),
  };
  const requestBuffer = frames.alloc();
  const responseBuffer = frames.alloc();
  const vm: HostVm = {
    memory: dram,
    vmcb: vmcbs[0]!,
    npt,
    devices,
    cBit: model.cBit,
    registeredGhcb,
    snp: {
      guestRequest: (req, rsp) => client.guestRequest(m.gctxPa, req, rsp),
      requestBuffer,
      responseBuffer,
    },
    snpGuest: kvm,
  };
  const image = buildGuestImage(assemble(o.source), {
    profile: guestOsProfile(spec.guestOs),
    mode: "sev-snp",
    model,
    firmwareAreas: [{ gpa: m.secretsGpa, size: PAGE_SIZE, what: "SNP secrets page", snpSecrets: true }],
    vcpus: vcpuCount,
  });
  o.editImage?.(image);
  for (const p of image.pages) mapGuestPage({ frames, npt }, p.gpa);
  const handoff = machine.firmwareHandoff(
    vm.vmcb,
    assignSnpImage(rmp, npt, asid, image.pages),
    image.initialState,
  );
  const step = () => {
    const h = handleExit(vm, machine.vmrun(vm.vmcb));
    vcpus.vcpus[0]!.exits++;
    const aps =
      h.outcome.action === "stop" ? { stopped: false as const } : runKickedAps(machine, vcpus, vm, 1000);
    return { ...h, aps };
  };
  return {
    rmp,
    machine,
    image,
    asid,
    vm,
    vcpus,
    kvm,
    view: new HypervisorView(dram, vm, rmp),
    frames,
    handoff,
    step,
    run: ({ maxExits = 10_000 } = {}) => {
      const out: (HandledExit & { aps: VcpuRunResult })[] = [];
      for (let i = 0; i < maxExits; i++) {
        const h = step();
        out.push(h);
        if (h.outcome.action === "stop" || h.aps.stopped || h.exit.exitCode === SvmExit.HLT) break;
      }
      return out;
    },
  };
}
