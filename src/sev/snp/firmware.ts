/**
 * The emulated Secure Processor's SEV-SNP firmware (SNP ABI 56860): the SNP commands behind the same mailbox as the
 * SEV ones (`../secure-processor.ts` routes ids 0x80–0xCF here). It shares the SEV firmware's system memory, key
 * slots, ASID table and chip identity, and never throws for anything a host can send.
 *
 * Error precedence, as the SEV dispatcher's (`../secure-processor.ts`):
 * 1. not an SNP part (Naples, Rome), or an SNP id this firmware does not implement → INVALID_COMMAND
 * 2. SNP platform state (`SNP_PLATFORM_TABLE`) → INVALID_PLATFORM_STATE
 * 3. command buffer outside system memory → INVALID_ADDRESS
 * 4. GCTX_PADDR naming no guest context → INVALID_GUEST
 * 5. guest state (`SNP_GUEST_TABLE`) → INVALID_GUEST_STATE
 * 6. then the command's own checks (see each handler), cryptographic checks last.
 * A failing command changes nothing.
 */
import type { RandomSource } from "../../crypto/random.ts";
import { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState } from "../firmware-state.ts";
import { isEmulatedSnpGeneration } from "../manufacturer/emulated-snp.ts";
import { SevStatus, type SevStatusCode } from "../status.ts";
import { isGctxCmd, SNP_CMD_BUFFER_SIZE, type SnpCmdName, snpCmdName } from "./commands.ts";
import type { SnpFirmwareState, SnpGuestContext, SnpHandler, SnpPlatformConfig } from "./firmware-state.ts";
import { snpActivate, snpDecommission, snpGctxCreate, snpGuestStatus } from "./handlers/guest-lifecycle.ts";
import { snpGuestRequest } from "./handlers/guest-request.ts";
import { snpLaunchFinish, snpLaunchStart, snpLaunchUpdate } from "./handlers/launch.ts";
import { snpPageReclaim } from "./handlers/page-reclaim.ts";
import {
  snpDfFlush,
  snpInit,
  snpInitEx,
  snpPlatformStatus,
  snpShutdown,
  snpShutdownEx,
} from "./handlers/platform.ts";
import {
  SNP_GUEST_TABLE,
  SNP_PLATFORM_TABLE,
  type SnpGuestStateName,
  type SnpPlatformStateName,
} from "./state-tables.ts";
import { emulatedSnpTcb } from "./tcb.ts";

const HANDLERS: Readonly<Record<SnpCmdName, SnpHandler>> = {
  SNP_INIT: snpInit,
  SNP_INIT_EX: snpInitEx,
  SNP_SHUTDOWN: snpShutdown,
  SNP_SHUTDOWN_EX: snpShutdownEx,
  SNP_PLATFORM_STATUS: snpPlatformStatus,
  SNP_DF_FLUSH: snpDfFlush,
  SNP_GCTX_CREATE: snpGctxCreate,
  SNP_DECOMMISSION: snpDecommission,
  SNP_ACTIVATE: snpActivate,
  SNP_GUEST_STATUS: snpGuestStatus,
  SNP_GUEST_REQUEST: snpGuestRequest,
  SNP_LAUNCH_START: snpLaunchStart,
  SNP_LAUNCH_UPDATE: snpLaunchUpdate,
  SNP_LAUNCH_FINISH: snpLaunchFinish,
  SNP_PAGE_RECLAIM: snpPageReclaim,
};

/** A read-only picture of the SNP firmware (no keys). */
export interface SnpFirmwareSnapshot {
  state: SnpPlatformStateName;
  /** Ciphertext hiding enabled by SNP_INIT_EX, and then the highest SNP ASID (0 without it). */
  ciphertextHiding: boolean;
  maxSnpAsid: number;
  guests: { gctxPa: number; state: SnpGuestStateName; policy: bigint; asid: number; active: boolean }[];
}

export class SnpFirmware {
  readonly #snp: SnpFirmwareState | undefined;

  constructor(sev: FirmwareState, config: SnpPlatformConfig, rng: RandomSource) {
    const generation = sev.model.generation;
    if (!isEmulatedSnpGeneration(generation)) return;
    const tcb = config.currentTcb ?? emulatedSnpTcb(generation);
    this.#snp = {
      sev,
      generation,
      state: "UNINIT",
      rmpInitialized: false,
      raplDisabled: false,
      ciphertextHiding: false,
      maxSnpAsid: 0,
      smt: config.smt ?? true,
      sockets: config.sockets ?? 1,
      tcb: { current: tcb, reported: tcb, committed: tcb },
      guests: new Map(),
      rmp: config.rmp,
      keyRoot: rng.bytes(48),
      rng,
    };
  }

  /** Whether the part has SEV-SNP (Milan, Genoa and Turin do). */
  get supported(): boolean {
    return this.#snp !== undefined;
  }

  issue(cmd: number, bufferPa: number): SevStatusCode {
    const snp = this.#snp;
    const name = snpCmdName(cmd);
    if (!snp || !name) return SevStatus.INVALID_COMMAND;
    if (!SNP_PLATFORM_TABLE[name].includes(snp.state)) return SevStatus.INVALID_PLATFORM_STATE;
    const mem = snp.sev.memory;
    const size = SNP_CMD_BUFFER_SIZE[name];
    if (size > 0 && !mem.contains(bufferPa, size)) return SevStatus.INVALID_ADDRESS;
    const buf = new CommandBuffer(mem, bufferPa, size > 0 ? mem.read(bufferPa, size) : new Uint8Array());

    let guest: SnpGuestContext | undefined;
    let next: SnpGuestStateName | "same" | undefined;
    if (isGctxCmd(name)) {
      const gctx = buf.addr(0);
      guest = gctx === undefined ? undefined : snp.guests.get(gctx);
      if (!guest) return SevStatus.INVALID_GUEST;
      const cell = SNP_GUEST_TABLE[guest.state][name];
      if (typeof cell === "number") return cell;
      next = cell;
    }
    const status = HANDLERS[name](snp, buf, guest);
    if (status !== SevStatus.SUCCESS) {
      buf.commitLengths();
      return status;
    }
    if (guest && next && next !== "same") guest.state = next;
    buf.commit();
    return SevStatus.SUCCESS;
  }

  snapshot(): SnpFirmwareSnapshot | undefined {
    const snp = this.#snp;
    if (!snp) return undefined;
    return {
      state: snp.state,
      ciphertextHiding: snp.ciphertextHiding,
      maxSnpAsid: snp.maxSnpAsid,
      guests: [...snp.guests.values()].map((g) => ({
        gctxPa: g.gctxPa,
        state: g.state,
        policy: g.policy,
        asid: g.asid,
        active: g.active,
      })),
    };
  }
}
