/**
 * The real factory for the emulated driver: each emulated host is a hypervisor `Host` (one emulated EPYC server,
 * in-process). Kept apart from `emulated.ts` so the driver itself depends only on the `Host` API's shape.
 */
import { Host } from "../../hypervisor/host.ts";
import { emulatedChipId } from "../../sev/secure-processor.ts";
import { EmulatedDriver, type EmulatedHostOptions, type EmulatedMachine } from "./emulated.ts";

/** Builds one emulated host. */
export function createEmulatedHost(options: EmulatedHostOptions): EmulatedMachine {
  return new Host({
    name: options.name,
    generation: options.generation,
    seed: options.seed,
    ...(options.minSevAsid === undefined ? {} : { minSevAsid: options.minSevAsid }),
    ...(options.memoryMiB === undefined ? {} : { memoryMiB: options.memoryMiB }),
    ...(options.vmmProfile === undefined ? {} : { vmmProfile: options.vmmProfile }),
    ...(options.ciphertextHidingAsids === undefined
      ? {}
      : { ciphertextHidingAsids: options.ciphertextHidingAsids }),
  });
}

/**
 * An emulated driver whose hosts are hypervisor `Host`s.
 *
 * @example
 * ```ts
 * const driver = emulatedDriver();
 * driver.addHost({ name: "milan-1", generation: "milan", seed: 7 });
 * ```
 */
export function emulatedDriver(): EmulatedDriver {
  // The Host hands its seed to its Secure Processor as text; the chip id is the processor's first draw from it.
  return new EmulatedDriver(createEmulatedHost, (o) => emulatedChipId(`${o.seed}`));
}
