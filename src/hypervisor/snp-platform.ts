/**
 * One emulated SEV-SNP platform in isolation — DRAM, its Reverse Map Table, a Secure Processor whose SNP firmware
 * updates that RMP, SNP_INIT done, and a machine that checks every guest access against it — for the places that
 * drive an SNP guest by hand rather than through a `Host`: the hypervisor-view lab (introspection/snp-lab.ts) and
 * the guest tests' bench (snp-test-bench.ts).
 */
import { forkRandom, seededRandom } from "../crypto/random.ts";
import { GuestKernels } from "../guest/kernel/kernel.ts";
import { type CpuModel, cpuModel, type Generation } from "../machine/cpu-models.ts";
import { Dram } from "../machine/dram.ts";
import type { MachineObserver } from "../machine/execution.ts";
import { Machine } from "../machine/machine.ts";
import { Rmp } from "../machine/rmp.ts";
import { snpFirmwareRmpHook } from "../machine/rmp-firmware-hook.ts";
import { VmsaIntegrityStore } from "../machine/trusted-memory.ts";
import { SCRATCH } from "../sev/emulated-platform.ts";
import { SecureProcessor } from "../sev/secure-processor.ts";
import { SnpClient } from "../sev/snp/client.ts";

export interface SnpPlatformOptions {
  readonly generation: Generation;
  /** Seeds the chip's identity and every random choice. */
  readonly seed: string;
  /** The machine's random stream is `seed` forked by this label (the callers' streams predate this module). */
  readonly rngLabel: string;
  readonly observer?: MachineObserver;
}

export interface SnpPlatform {
  readonly model: CpuModel;
  readonly dram: Dram;
  readonly store: VmsaIntegrityStore;
  readonly rmp: Rmp;
  readonly sp: SecureProcessor;
  /** The host's SNP firmware client, SNP_INIT done. */
  readonly client: SnpClient;
  readonly machine: Machine;
}

/** 128 MiB of DRAM, the RMP over all of it, the firmware initialised. */
export function createSnpPlatform(o: SnpPlatformOptions): SnpPlatform {
  const model = cpuModel(o.generation);
  const dram = new Dram(128 * 1024 * 1024);
  const store = new VmsaIntegrityStore();
  const rmp = new Rmp({ end: dram.size });
  const sp = new SecureProcessor({
    generation: o.generation,
    seed: o.seed,
    memory: dram,
    vmsaIntegrity: store,
    snp: { rmp: snpFirmwareRmpHook(rmp) },
  });
  const client = new SnpClient(sp, dram, SCRATCH);
  client.init();
  const machine = new Machine({
    model,
    memory: dram,
    keySlots: sp.keySlots,
    vmsaIntegrity: store,
    rng: forkRandom(seededRandom(o.seed), o.rngLabel),
    nativeCode: new GuestKernels(),
    rmp,
    ...(o.observer ? { observer: o.observer } : {}),
  });
  return { model, dram, store, rmp, sp, client, machine };
}
