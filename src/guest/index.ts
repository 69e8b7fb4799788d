/**
 * What runs inside an emulated guest: the assembler for the guest ISA (docs/guest-isa.md), guest OS profiles (one
 * table), the image builder (page tables with the C-bit, IDT, boot information), the natively run kernels with
 * their #VC handler, and ready-made programs.
 */
export { assemble, type DataRegion, DEFAULT_CODE_BASE, type GuestProgram } from "./assembler.ts";
export { buildGuestImage, type GuestImage, type GuestPage } from "./image.ts";
export { GuestKernels, kernelAddress, Routine } from "./kernel/kernel.ts";
export { VC_EXITS } from "./kernel/vc-exits.ts";
export { CODE_BASE, GHCB_GPA } from "./layout.ts";
export { GUEST_OS_PROFILES, type GuestOsProfile, guestOsProfile, supportsMode } from "./os-profiles.ts";
export { CANARY_EXIT_KINDS, canaryExitsProgram } from "./programs/canary-exits.ts";
