/**
 * A ready-made emulated platform for the CLI, tests and demos: DRAM, the Secure Processor, a client with a scratch region,
 * a TMR for SEV-ES, and the host's ASID allocator. Layout (system physical addresses):
 * scratch 1–2 MiB, TMR 2–3 MiB, guest memory from 4 MiB.
 */
import type { Generation } from "../machine/cpu-models.ts";
import { Dram } from "../machine/dram.ts";
import { AsidAllocator } from "./asid-allocator.ts";
import { SevClient } from "./client.ts";
import type { VmsaIntegrityRecorder } from "./firmware-state.ts";
import { SecureProcessor } from "./secure-processor.ts";

export const SCRATCH = { base: 0x100000, size: 0x100000 };
export const TMR_PA = 0x200000;
export const GUEST_BASE = 0x400000;

export interface EmulatedPlatform {
  dram: Dram;
  sp: SecureProcessor;
  client: SevClient;
  asids: AsidAllocator;
}

export function createEmulatedPlatform(
  opts: {
    generation?: Generation;
    seed?: string | number;
    minSevAsid?: number;
    dramSize?: number;
    init?: boolean;
    es?: boolean;
    vmsaIntegrity?: VmsaIntegrityRecorder;
  } = {},
): EmulatedPlatform {
  const dram = new Dram(opts.dramSize ?? 64 * 1024 * 1024);
  const sp = new SecureProcessor({
    generation: opts.generation ?? "rome",
    seed: opts.seed ?? 1,
    memory: dram,
    minSevAsid: opts.minSevAsid,
    vmsaIntegrity: opts.vmsaIntegrity,
  });
  const client = new SevClient(sp, dram, SCRATCH);
  if (opts.init ?? true) {
    const es = opts.es ?? sp.model.sevEs;
    client.init({ es, tmrPa: TMR_PA });
  }
  return { dram, sp, client, asids: new AsidAllocator(client) };
}
