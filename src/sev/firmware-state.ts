/**
 * Everything the emulated Secure Processor holds. Internal to src/sev: nothing outside reads these fields, and
 * no key in here is ever returned by a command (only certificates, ciphertext and MACs leave).
 */
import type { Hash } from "node:crypto";
import type { RandomSource } from "../crypto/random.ts";
import type { CpuModel } from "../machine/cpu-models.ts";
import type { SystemMemory } from "../machine/dram.ts";
import type { AsidTable } from "./asid-table.ts";
import type { PlatformIdentity } from "./identity.ts";
import type { KeySlotTable } from "./key-slots.ts";
import type { GuestStateName, PlatformStateName } from "./state-tables.ts";

/** System memory as the firmware needs it: raw access plus a range check (INVALID_ADDRESS). */
export interface FirmwareMemory extends SystemMemory {
  contains(pa: number, length: number): boolean;
}

/**
 * Where SEV-ES VMSA integrity is recorded (the firmware keeps a check value of each VMSA in trusted memory that
 * VMRUN verifies — docs/sev-interface.md §12.1 [unconfirmed mechanism]). Implemented by the machine.
 */
export interface VmsaIntegrityRecorder {
  record(asid: number, vmsaPa: number, ciphertext: Uint8Array): void;
}

export interface GuestContext {
  handle: number;
  state: Exclude<GuestStateName, "UNINIT">;
  policy: number;
  es: boolean;
  /** Guests launched with a shared handle share the VEK and its key group (one ASID). */
  keyGroup: number;
  vek: Uint8Array;
  asid: number;
  active: boolean;
  tek: Uint8Array;
  tik: Uint8Array;
  /** GCTX.LD: the running SHA-256 of measured plaintext (§8.1). */
  ld: Hash;
  /** MEASURE from LAUNCH_MEASURE, bound into LAUNCH_SECRET MACs. */
  measure: Uint8Array | undefined;
  vmsaCount: number;
}

export interface FirmwareState {
  model: CpuModel;
  api: { major: number; minor: number; build: number };
  state: PlatformStateName;
  esEnabled: boolean;
  identity: PlatformIdentity;
  rng: RandomSource;
  memory: FirmwareMemory;
  keySlots: KeySlotTable;
  asids: AsidTable;
  guests: Map<number, GuestContext>;
  nextHandle: number;
  nextKeyGroup: number;
  vmsaIntegrity: VmsaIntegrityRecorder | undefined;
  /** Builds a fresh identity (PLATFORM_RESET). */
  resetIdentity(): void;
}
