/**
 * A lab bench for experiments and tests: one emulated host (DRAM, Secure Processor, trusted memory, machine), one
 * guest launched through the real firmware flow, the reference host exit handling, and the hypervisor's view.
 * Deterministic from the seed.
 *
 * @example
 * ```ts
 * const lab = createLab({ source: "start:\n  cpuid\n  hlt\n", mode: "sev-es" });
 * const exits = lab.run();            // until the guest stops or 10,000 exits
 * lab.view.saveArea().bytes;          // VMSA ciphertext
 * ```
 */
import { forkRandom, seededRandom } from "../../crypto/random.ts";
import { CiphervisorError } from "../../errors.ts";
import { assemble, type GuestProgram } from "../../guest/assembler.ts";
import { buildGuestImage, type GuestImage } from "../../guest/image.ts";
import { GuestKernels } from "../../guest/kernel/kernel.ts";
import { guestOsProfile } from "../../guest/os-profiles.ts";
import { cpuModel, type Generation } from "../../machine/cpu-models.ts";
import { asidPools } from "../../machine/cpuid.ts";
import type { MachineObserver } from "../../machine/execution.ts";
import { Machine } from "../../machine/machine.ts";
import { VmsaIntegrityStore } from "../../machine/trusted-memory.ts";
import type { SecurityMode } from "../../machine/vmcb.ts";
import { createEmulatedPlatform, type EmulatedPlatform, GUEST_BASE } from "../../sev/emulated-platform.ts";
import { FramePool } from "../frames.ts";
import { type HandledExit, handleExit } from "../kvm/exit-handler.ts";
import { type LaunchedGuest, launchGuest } from "../kvm/launch.ts";
import { HypervisorView } from "./hypervisor-view.ts";

export interface LabOptions {
  /** Guest program: assembly text or an assembled program. */
  source: string | GuestProgram;
  mode: SecurityMode;
  generation?: Generation;
  guestOs?: string;
  seed?: string | number;
  minSevAsid?: number;
  observer?: MachineObserver;
  instructionBudget?: number;
  /** Exit codes to intercept instead of the defaults (vmcb.ts DEFAULT_INTERCEPTS). */
  intercepts?: Iterable<number>;
  /** Guest policy for LAUNCH_START (default NODBG, plus ES for SEV-ES). */
  policy?: number;
  /** SEV_FEATURES of the initial VMSA, e.g. VMSA register protection (bit 14, machine/vmsa-protection.ts). */
  sevFeatures?: bigint;
}

export interface Lab {
  platform: EmulatedPlatform;
  machine: Machine;
  store: VmsaIntegrityStore;
  image: GuestImage;
  vm: LaunchedGuest;
  view: HypervisorView;
  /** One VMRUN and the host's handling of its exit. */
  step(hooks?: { afterSnapshot?: () => void }): HandledExit;
  /** Steps until the host stops the guest, `until` says so, or `maxExits` exits. */
  run(opts?: { until?: (h: HandledExit) => boolean; maxExits?: number }): HandledExit[];
}

/**
 * Steps the guest (`step`: one VMRUN and the host's handling of its exit) until the host stops it, `until` says so,
 * or `maxExits` exits; the handled exits in order. Shared by this lab and snp-lab.ts.
 */
export function runExits(
  step: () => HandledExit,
  { until, maxExits = 10_000 }: { until?: (h: HandledExit) => boolean; maxExits?: number } = {},
): HandledExit[] {
  const out: HandledExit[] = [];
  for (let i = 0; i < maxExits; i++) {
    const h = step();
    out.push(h);
    if (h.outcome.action === "stop" || until?.(h)) break;
  }
  return out;
}

export function createLab(opts: LabOptions): Lab {
  const generation = opts.generation ?? "milan";
  const model = cpuModel(generation);
  const seed = String(opts.seed ?? 1);
  const store = new VmsaIntegrityStore();
  const platform = createEmulatedPlatform({
    generation,
    seed: `lab:${seed}`,
    vmsaIntegrity: store,
    minSevAsid: opts.minSevAsid,
    dramSize: 128 * 1024 * 1024,
  });
  const minSevAsid = opts.minSevAsid ?? model.defaultMinSevAsid;
  const pools = asidPools(model, minSevAsid);
  if (opts.mode === "sev-es" && !pools.sevEs.available) {
    throw new CiphervisorError("REQUIREMENT_FAILED", `cannot run an SEV-ES guest: ${pools.sevEs.reason}`);
  }
  const machine = new Machine({
    model,
    minSevAsid,
    memory: platform.dram,
    keySlots: platform.sp.keySlots,
    vmsaIntegrity: store,
    rng: forkRandom(seededRandom(`lab:${seed}`), "rdrand"),
    nativeCode: new GuestKernels(),
    observer: opts.observer,
    instructionBudget: opts.instructionBudget,
  });
  const program = typeof opts.source === "string" ? assemble(opts.source) : opts.source;
  const image = buildGuestImage(program, {
    profile: guestOsProfile(opts.guestOs ?? "linux-5.19"),
    mode: opts.mode,
    model,
  });
  if (opts.sevFeatures !== undefined) image.initialState.sevFeatures = opts.sevFeatures;
  const asid =
    opts.mode === "none" ? model.maxAsid + 1 : platform.asids.allocate(opts.mode === "sev-es" ? "es" : "sev");
  const vm = launchGuest({
    machine,
    memory: platform.dram,
    image,
    frames: new FramePool(GUEST_BASE, platform.dram.size),
    asid,
    firmware: platform.client,
    policy: opts.policy,
  });
  if (opts.intercepts) {
    vm.vmcb.control.intercepts.clear();
    for (const c of opts.intercepts) vm.vmcb.control.intercepts.add(c);
  }
  const view = new HypervisorView(platform.dram, vm);
  const step = (hooks: { afterSnapshot?: () => void } = {}) => handleExit(vm, machine.vmrun(vm.vmcb), hooks);
  return {
    platform,
    machine,
    store,
    image,
    vm,
    view,
    step,
    run: (o) => runExits(step, o),
  };
}
