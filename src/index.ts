/**
 * ciphervisor's library API. Each layer is also importable on its own; this module re-exports the pieces a
 * hypervisor, a guest owner or a test needs.
 *
 * @example
 * ```ts
 * import { createEmulatedPlatform, exportFullChain, createLaunchSession } from "ciphervisor";
 * const { client } = createEmulatedPlatform({ generation: "rome", seed: 1 });
 * const chain = exportFullChain(client);
 * const session = createLaunchSession(chain.pdh, 0x05);
 * const { handle } = client.launchStart({ policy: 0x05, godhCert: session.godhCert, session: session.session });
 * ```
 */
export * as certs from "./certs/index.ts";
export * as crypto from "./crypto/index.ts";
export { CiphervisorError, type ErrorCode, isCiphervisorError } from "./errors.ts";
export * as hypervisor from "./hypervisor/index.ts";
export { CPU_MODELS, type CpuModel, cpuModel, GENERATIONS, type Generation } from "./machine/cpu-models.ts";
export * as measure from "./measure/index.ts";
export * as owner from "./owner/index.ts";
export { createLaunchSession } from "./owner/session.ts";
export * from "./sev/index.ts";
