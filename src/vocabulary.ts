/**
 * The words every layer shares, defined once: a VM's security mode and its power state as the control plane
 * records it. Pure data (no imports), so the emulated machine, the hypervisor, the control plane, the API schemas
 * and the CLI all read the same lists — and a mode added here reaches each of them.
 */

/**
 * A VM's memory-encryption mode: none, SEV (memory), SEV-ES (memory and register state), SEV-SNP (memory and
 * register state, plus the integrity of guest memory through the Reverse Map Table, and signed attestation reports).
 */
export const SECURITY_MODES = ["none", "sev", "sev-es", "sev-snp"] as const;
export type SecurityMode = (typeof SECURITY_MODES)[number];

/**
 * A VM's power state as the control plane last observed or drove it. `starting` holds a key slot from the
 * reservation until the launch commits; `stopping` marks a VM a bulk restart is powering off to change and start
 * again; `paused` is an attested launch waiting for its guest owner.
 */
export const POWER_STATES = ["off", "starting", "running", "paused", "stopping", "suspended"] as const;
export type PowerState = (typeof POWER_STATES)[number];
