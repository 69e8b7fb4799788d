/**
 * SNP_PAGE_RECLAIM {PADDR u64 @0: bit 0 PAGE_SIZE, bits 63:12 the page} (SNP ABI 56860, its page-management
 * commands): the one way out of the page states the hypervisor cannot leave with RMPUPDATE, because they are
 * Immutable. The firmware moves such a page to the Reclaim state; the host then returns it to the hypervisor with
 * RMPUPDATE. Linux does exactly that pair for every firmware page it frees (`snp_reclaim_pages`,
 * drivers/crypto/ccp/sev-dev.c) and for a page SNP_LAUNCH_UPDATE refused (`snp_page_reclaim`, arch/x86/kvm/svm/sev.c).
 *
 * The page states are told apart by the RMP entry the firmware reads (`SnpRmpHook.pageEntry`), and what the
 * firmware does in each is a table (`RECLAIM_BY_STATE`). Checks, in order:
 * 1. PADDR aligned to its page size (bits 11:1 clear; bits 20:12 too for 2 MiB) and in system memory →
 *    INVALID_ADDRESS [unconfirmed: the status AMD's firmware gives a misaligned PADDR];
 * 2. the page state allows a reclaim → INVALID_PAGE_STATE otherwise — a hypervisor page, a guest page the host can
 *    take back itself, a page already reclaimed, the context page of a guest not yet decommissioned, and a launched
 *    page of a guest that still exists;
 * 3. the RMP entry's page size is PAGE_SIZE → INVALID_PAGE_SIZE.
 *
 * The emulated firmware leaves every page it launched Immutable (`Rmp.firmwareHook`, src/machine/rmp.ts;
 * [unconfirmed] on AMD's parts SNP_LAUNCH_UPDATE leaves them Guest-Valid and KVM returns them with RMPUPDATE alone),
 * so here a launched page also needs SNP_PAGE_RECLAIM — once SNP_DECOMMISSION has deleted its guest, never before.
 */
import type { CommandBuffer } from "../../command-buffer.ts";
import { rangeOk } from "../../handlers/common.ts";
import { SevStatus, type SevStatusCode } from "../../status.ts";
import type { SnpFirmwareState, SnpRmpEntryView } from "../firmware-state.ts";

const PAGE = 4096;
const LARGE_PAGE = 0x200000;

/**
 * The page states of SNP ABI 56860 that the emulated RMP can hold, plus LAUNCHED, the emulator's state of a page
 * SNP_LAUNCH_UPDATE took (Assigned to the guest, Validated and Immutable).
 */
export type SnpPageStateName =
  | "HYPERVISOR"
  | "FIRMWARE"
  | "CONTEXT"
  | "RECLAIM"
  | "PRE_GUEST"
  | "GUEST"
  | "LAUNCHED";

/** What SNP_PAGE_RECLAIM does to a page in each state: reclaim it, refuse, or reclaim once its guest is gone. */
export const RECLAIM_BY_STATE: Readonly<
  Record<SnpPageStateName, "reclaim" | "refuse" | "when-guest-decommissioned">
> = {
  /** Not Assigned: nothing to reclaim. */
  HYPERVISOR: "refuse",
  /** Assigned to ASID 0, Immutable: a page the host gave the firmware (Linux's `rmp_mark_pages_firmware`). */
  FIRMWARE: "reclaim",
  /** A guest context page: the firmware's until SNP_DECOMMISSION (then FIRMWARE again). */
  CONTEXT: "refuse",
  /** Already reclaimed: RMPUPDATE is the host's next step. */
  RECLAIM: "refuse",
  /** Assigned to a guest, Immutable, not yet Validated: a page RMPUPDATE gave a guest for SNP_LAUNCH_UPDATE. */
  PRE_GUEST: "reclaim",
  /** Assigned to a guest, not Immutable (Guest-Valid / Guest-Invalid): the host takes it back with RMPUPDATE. */
  GUEST: "refuse",
  LAUNCHED: "when-guest-decommissioned",
};

/** The page state of the page at `pa` whose RMP entry is `e`. */
export function snpPageState(snp: SnpFirmwareState, pa: number, e: SnpRmpEntryView): SnpPageStateName {
  if (snp.guests.has(pa)) return "CONTEXT";
  if (!e.assigned) return "HYPERVISOR";
  if (e.asid === 0) return e.immutable ? "FIRMWARE" : "RECLAIM";
  if (!e.immutable) return "GUEST";
  return e.validated ? "LAUNCHED" : "PRE_GUEST";
}

const HYPERVISOR_PAGE: SnpRmpEntryView = {
  assigned: false,
  asid: 0,
  immutable: false,
  validated: false,
  vmsa: false,
  size: PAGE,
};

export function snpPageReclaim(snp: SnpFirmwareState, buf: CommandBuffer): SevStatusCode {
  const raw = buf.r.u64(0);
  const size = (raw & 1n) === 1n ? LARGE_PAGE : PAGE;
  const pa = buf.addr(0);
  if (pa === undefined) return SevStatus.INVALID_ADDRESS;
  const page = pa - (pa % 2);
  if (page % size !== 0 || !rangeOk(snp.sev, page, size)) return SevStatus.INVALID_ADDRESS;
  const entry = snp.rmp?.pageEntry?.(page) ?? HYPERVISOR_PAGE;
  const state = snpPageState(snp, page, entry);
  const rule = RECLAIM_BY_STATE[state];
  if (rule === "refuse") return SevStatus.INVALID_PAGE_STATE;
  if (entry.size !== size) return SevStatus.INVALID_PAGE_SIZE;
  if (rule === "when-guest-decommissioned") {
    for (const g of snp.guests.values()) if (g.asid === entry.asid) return SevStatus.INVALID_PAGE_STATE;
  }
  return snp.rmp?.pageReclaim?.(page, size) ? SevStatus.SUCCESS : SevStatus.INVALID_PAGE_STATE;
}
