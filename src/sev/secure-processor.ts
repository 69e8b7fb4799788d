/**
 * The emulated AMD Secure Processor: the SEV firmware API behind a mailbox (docs/sev-interface.md §1.1). The host
 * writes a command buffer into system memory and issues `issue(cmd, bufferPa)`; the firmware answers with a
 * status code, exactly as the real one does. It never throws for anything a host can send.
 *
 * Error precedence (the public record is silent, §5; this order is fixed and tested):
 * 1. unknown command → INVALID_COMMAND
 * 2. platform state → INVALID_PLATFORM_STATE
 * 3. command buffer outside system memory → INVALID_ADDRESS
 * 4. DBG_* only: 16-byte alignment (INVALID_ADDRESS / INVALID_LENGTH) before the handle, as AMD's source does
 * 5. unknown handle → INVALID_GUEST
 * 6. guest state → INVALID_GUEST_STATE
 * 7. then the command's own checks: INACTIVE, policy (UNSUPPORTED / POLICY_FAILURE), lengths and addresses,
 *    certificates, and last the cryptographic checks (BAD_SIGNATURE / BAD_MEASUREMENT).
 * A failing command changes nothing, except the needed-length write-back that INVALID_LENGTH specifies.
 *
 * @example
 * ```ts
 * const dram = new Dram(64 * 1024 * 1024);
 * const sp = new SecureProcessor({ generation: "rome", seed: 1, memory: dram });
 * const client = new SevClient(sp, dram, { base: 0x100000, size: 0x100000 });
 * client.init({ es: false });
 * ```
 */
import { forkRandom, type RandomSource, seededRandom } from "../crypto/random.ts";
import { CiphervisorError } from "../errors.ts";
import { type CpuModel, checkMinSevAsid, cpuModel, type Generation } from "../machine/cpu-models.ts";
import { AsidTable } from "./asid-table.ts";
import { CommandBuffer } from "./command-buffer.ts";
import { CMD_BUFFER_SIZE, type CmdName, cmdName, GUEST_CMDS, isKnownCmd } from "./commands.ts";
import type { FirmwareMemory, FirmwareState, GuestContext, VmsaIntegrityRecorder } from "./firmware-state.ts";
import type { Handler } from "./handlers/common.ts";
import { dbgDecrypt, dbgEncrypt, dbgPrecheck } from "./handlers/debug.ts";
import { activate, deactivate, decommission, guestStatus } from "./handlers/guest-lifecycle.ts";
import {
  launchFinish,
  launchMeasure,
  launchSecret,
  launchStart,
  launchUpdateData,
  launchUpdateVmsa,
} from "./handlers/launch.ts";
import {
  receiveStart,
  receiveUpdateData,
  receiveUpdateVmsa,
  sendStart,
  sendUpdateData,
  sendUpdateVmsa,
} from "./handlers/migration.ts";
import {
  dfFlush,
  getId,
  init,
  pdhCertExport,
  pdhGen,
  pekCertImport,
  pekCsr,
  pekGen,
  platformReset,
  platformStatus,
  shutdown,
} from "./handlers/platform.ts";
import { PlatformIdentity } from "./identity.ts";
import { KeySlotTable, type MemoryKeySlots } from "./key-slots.ts";
import { isSnpCmdRange } from "./snp/commands.ts";
import { SnpFirmware, type SnpFirmwareSnapshot } from "./snp/firmware.ts";
import type { SnpPlatformConfig } from "./snp/firmware-state.ts";
import { GUEST_TABLE, type GuestStateName, PLATFORM_TABLE, type PlatformStateName } from "./state-tables.ts";
import { SevStatus, type SevStatusCode } from "./status.ts";

export interface SecureProcessorConfig {
  generation: Generation;
  /** Seeds the chip identity (GET_ID, CEK) and every random choice of the firmware. */
  seed: string | number;
  memory: FirmwareMemory;
  /** BIOS setting splitting ES [1, min) and SEV [min, max] ASIDs; defaults to the CPU table's value. */
  minSevAsid?: number;
  /** Cores whose WBINVD DF_FLUSH requires (§7.4). */
  cores?: number;
  vmsaIntegrity?: VmsaIntegrityRecorder;
  /** SEV-SNP platform facts and the RMP hook (Milan and Genoa; `snp/firmware.ts`, docs/sev-interface.md §14). */
  snp?: SnpPlatformConfig;
  /**
   * SNP ASIDs set apart for Ciphertext Hiding, as Linux 6.18's `kvm_amd.ciphertext_hiding_asids` does: ASIDs
   * 1..N serve SEV-SNP guests only, N+1..min_sev_asid-1 SEV-ES guests. 0 (the default): SEV-ES and SEV-SNP guests
   * share 1..min_sev_asid-1. Must leave at least one ES ASID (N < min_sev_asid - 1).
   */
  ciphertextHidingAsids?: number;
}

/** The three ASID pools (docs/sev-interface.md §7.2); `snp` equals `es` unless Ciphertext Hiding splits them. */
export interface AsidPools {
  es: { first: number; last: number; size: number };
  sev: { first: number; last: number; size: number };
  snp: { first: number; last: number; size: number };
}

/**
 * INVALID_INPUT unless n = 0, or the CPU has Ciphertext Hiding and 0 < n < min_sev_asid - 1 (Linux 6.18 refuses a
 * split that leaves SEV-ES no ASID, and ignores the parameter on CPUs without the feature).
 */
function checkCiphertextHidingAsids(model: CpuModel, minSevAsid: number, n: number): number {
  if (n !== 0 && (model as { ciphertextHiding?: boolean }).ciphertextHiding !== true) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${model.generation} has no SEV-SNP Ciphertext Hiding (EPYC 9005 "Turin" and later): ciphertext_hiding_asids must be 0`,
    );
  }
  if (!Number.isInteger(n) || n < 0 || (n > 0 && n >= minSevAsid - 1)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `ciphertext_hiding_asids = ${n} must be 0 or 1..${Math.max(0, minSevAsid - 2)} (below min_sev_asid - 1 = ${minSevAsid - 1})`,
    );
  }
  return n;
}

const noop: Handler = () => SevStatus.SUCCESS;

const HANDLERS: Readonly<Record<CmdName, Handler>> = {
  INIT: init,
  SHUTDOWN: shutdown,
  PLATFORM_RESET: platformReset,
  PLATFORM_STATUS: platformStatus,
  PEK_GEN: pekGen,
  PEK_CSR: pekCsr,
  PEK_CERT_IMPORT: pekCertImport,
  PDH_CERT_EXPORT: pdhCertExport,
  PDH_GEN: pdhGen,
  DF_FLUSH: dfFlush,
  GET_ID: getId,
  DECOMMISSION: decommission,
  ACTIVATE: activate,
  DEACTIVATE: deactivate,
  GUEST_STATUS: guestStatus,
  LAUNCH_START: launchStart,
  LAUNCH_UPDATE_DATA: launchUpdateData,
  LAUNCH_UPDATE_VMSA: launchUpdateVmsa,
  LAUNCH_MEASURE: launchMeasure,
  LAUNCH_SECRET: launchSecret,
  LAUNCH_FINISH: launchFinish,
  SEND_START: sendStart,
  SEND_UPDATE_DATA: sendUpdateData,
  SEND_UPDATE_VMSA: sendUpdateVmsa,
  SEND_FINISH: noop,
  SEND_CANCEL: noop,
  RECEIVE_START: receiveStart,
  RECEIVE_UPDATE_DATA: receiveUpdateData,
  RECEIVE_UPDATE_VMSA: receiveUpdateVmsa,
  RECEIVE_FINISH: noop,
  DBG_DECRYPT: dbgDecrypt,
  DBG_ENCRYPT: dbgEncrypt,
};

/** A read-only picture of the firmware for status displays and tests (no keys). */
export interface FirmwareSnapshot {
  state: PlatformStateName;
  esEnabled: boolean;
  owner: "self" | "external";
  guests: { handle: number; state: GuestStateName; policy: number; asid: number; active: boolean }[];
  asids: { inUse: number[]; dirty: number[]; wbinvdDone: boolean[] };
}

/** The root of an emulated platform's randomness: everything it holds is drawn from forks of this, by label. */
function platformRandom(seed: string | number): RandomSource {
  return seededRandom(`secure-processor\0${seed}`);
}

/**
 * The chip id (GET_ID, 64 bytes) of the platform seeded by `seed`, without building it: the first fork of its
 * random root, as the constructor draws it. The emulated KDS uses it to find chips of hosts not built yet.
 *
 * @example
 * ```ts
 * emulatedChipId("rome-1"); // equals new SecureProcessor({ seed: "rome-1", … }).getId()'s bytes
 * ```
 */
export function emulatedChipId(seed: string | number): Uint8Array {
  return forkRandom(platformRandom(seed), "chip-id").bytes(64);
}

export class SecureProcessor {
  readonly model: CpuModel;
  readonly minSevAsid: number;
  /** ASIDs 1..N reserved for SNP guests under Ciphertext Hiding; 0 when SNP and SEV-ES share the ES range. */
  readonly ciphertextHidingAsids: number;
  readonly #fw: FirmwareState;
  readonly #snp: SnpFirmware;
  /** The last unexpected internal fault (an emulator bug), for diagnosis; never key material. */
  lastInternalFault: string | undefined;

  constructor(config: SecureProcessorConfig) {
    this.model = cpuModel(config.generation);
    this.minSevAsid = checkMinSevAsid(this.model, config.minSevAsid ?? this.model.defaultMinSevAsid);
    this.ciphertextHidingAsids = checkCiphertextHidingAsids(
      this.model,
      this.minSevAsid,
      config.ciphertextHidingAsids ?? 0,
    );
    const root = platformRandom(config.seed);
    const chipId = forkRandom(root, "chip-id").bytes(64);
    const identityRng = forkRandom(root, "identity");
    const rng = forkRandom(root, "firmware");
    const model = this.model;
    const fw: FirmwareState = {
      model,
      api: { ...model.api },
      state: "UNINIT",
      esEnabled: false,
      identity: new PlatformIdentity(model.generation, chipId, model.api, identityRng),
      rng,
      memory: config.memory,
      keySlots: new KeySlotTable(model.memoryMode, forkRandom(root, "memory-tweaks")),
      asids: new AsidTable(model.maxAsid, this.minSevAsid, config.cores ?? 8),
      guests: new Map(),
      nextHandle: 1,
      nextKeyGroup: 1,
      vmsaIntegrity: config.vmsaIntegrity,
      resetIdentity: () => {
        fw.identity.ensure();
        fw.identity = new PlatformIdentity(model.generation, chipId, model.api, identityRng);
      },
    };
    this.#fw = fw;
    // Forked after every SEV fork, so the SEV firmware's draws are what they were before SNP existed.
    this.#snp = new SnpFirmware(fw, config.snp ?? {}, forkRandom(root, "snp"));
  }

  /** The memory controller's key slots, as the machine may use them: by ASID, never reading a key. */
  get keySlots(): MemoryKeySlots {
    return this.#fw.keySlots;
  }

  /** The host executed WBINVD on `core` (what DF_FLUSH checks, §7.4). */
  wbinvd(core: number): void {
    this.#fw.asids.wbinvd(core);
  }

  wbinvdAllCores(): void {
    for (let c = 0; c < this.#fw.asids.cores; c++) this.#fw.asids.wbinvd(c);
  }

  /** Issues firmware command `cmd` with its command buffer at system physical address `bufferPa`. */
  issue(cmd: number, bufferPa = 0): SevStatusCode {
    try {
      return this.#dispatch(cmd, bufferPa);
    } catch (e) {
      this.lastInternalFault = `${cmdName(cmd)}: ${e instanceof Error ? e.message : String(e)}`;
      return SevStatus.HWERROR_PLATFORM;
    }
  }

  #dispatch(cmd: number, bufferPa: number): SevStatusCode {
    const fw = this.#fw;
    if (isSnpCmdRange(cmd)) return this.#snp.issue(cmd, bufferPa);
    if (!isKnownCmd(cmd)) return SevStatus.INVALID_COMMAND;
    const name = cmdName(cmd) as CmdName;
    const allowed = PLATFORM_TABLE[name];
    if (!allowed.includes(fw.state)) return SevStatus.INVALID_PLATFORM_STATE;
    const size = CMD_BUFFER_SIZE[name];
    if (size > 0 && !fw.memory.contains(bufferPa, size)) return SevStatus.INVALID_ADDRESS;
    const buf = new CommandBuffer(
      fw.memory,
      bufferPa,
      size > 0 ? fw.memory.read(bufferPa, size) : new Uint8Array(),
    );

    let guest: GuestContext | undefined;
    let next: GuestStateName | "same" | undefined;
    if (GUEST_CMDS.has(name)) {
      if (name === "DBG_DECRYPT" || name === "DBG_ENCRYPT") {
        const pre = dbgPrecheck(buf);
        if (pre !== SevStatus.SUCCESS) return pre;
      }
      guest = fw.guests.get(buf.r.u32(0));
      if (!guest) return SevStatus.INVALID_GUEST;
      next = GUEST_TABLE[guest.state][name];
      if (next === undefined) return SevStatus.INVALID_GUEST_STATE;
    }
    const status = HANDLERS[name](fw, buf, guest);
    if (status !== SevStatus.SUCCESS) {
      buf.commitLengths();
      return status;
    }
    if (guest && next && next !== "same" && next !== "UNINIT") guest.state = next;
    buf.commit();
    return SevStatus.SUCCESS;
  }

  /** Platform state, guests and ASIDs, without any key. */
  snapshot(): FirmwareSnapshot {
    const fw = this.#fw;
    return {
      state: fw.state,
      esEnabled: fw.esEnabled,
      owner: fw.identity.owner,
      guests: [...fw.guests.values()].map((g) => ({
        handle: g.handle,
        state: g.state,
        policy: g.policy,
        asid: g.asid,
        active: g.active,
      })),
      asids: fw.asids.snapshot(),
    };
  }

  /** The SEV-SNP firmware's platform state and guest contexts, without any key; undefined on parts without SNP. */
  snpSnapshot(): SnpFirmwareSnapshot | undefined {
    return this.#snp.snapshot();
  }

  /** GuestState value of a handle, or undefined (for tests and the hypervisor's bookkeeping). */
  guestState(handle: number): GuestStateName | undefined {
    return this.#fw.guests.get(handle)?.state;
  }

  /** The ASID pools as the CPU, the BIOS (min_sev_asid) and Ciphertext Hiding define them. */
  get pools(): AsidPools {
    const min = this.minSevAsid;
    const max = this.model.maxAsid;
    const snp = this.ciphertextHidingAsids;
    const es = { first: snp + 1, last: min - 1, size: min - 1 - snp };
    return {
      es: es.size > 0 ? es : { first: 0, last: 0, size: 0 },
      sev: { first: min, last: max, size: max - min + 1 },
      snp: snp > 0 ? { first: 1, last: snp, size: snp } : { ...es },
    };
  }
}
