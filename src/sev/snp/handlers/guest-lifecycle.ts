/**
 * SNP_GCTX_CREATE, SNP_ACTIVATE, SNP_DECOMMISSION, SNP_GUEST_STATUS (SNP ABI 56860, sections 8.10–8.14 of its guest
 * management chapter). A guest context is named by the system physical address of its context page (GCTX_PADDR),
 * which the firmware owns from SNP_GCTX_CREATE to SNP_DECOMMISSION; the context itself lives in the Secure
 * Processor, never readable through that page.
 */
import { ByteWriter } from "../../../lib/bytes.ts";
import type { CommandBuffer } from "../../command-buffer.ts";
import { rangeOk } from "../../handlers/common.ts";
import { SevStatus, type SevStatusCode } from "../../status.ts";
import type { SnpFirmwareState, SnpGuestContext } from "../firmware-state.ts";
import { FirmwareLaunchDigest } from "../page-info.ts";
import { SnpGuestState } from "../state-tables.ts";

const PAGE = 4096;
/** The SNP_GUEST_STATUS structure: POLICY u64 @0, ASID u32 @8, STATE u8 @0xC, reserved to 0x10. */
export const SNP_GUEST_STATUS_SIZE = 0x10;

/** The ASID table's user id of an SNP guest (legacy guests use their positive handles). */
const userId = (g: SnpGuestContext) => -g.keyGroup;

/** Unbinds the guest's key: the ASID becomes dirty and needs WBINVD on every core, then SNP_DF_FLUSH. */
export function deactivateSnpGuest(snp: SnpFirmwareState, g: SnpGuestContext): void {
  if (!g.active) return;
  if (snp.sev.asids.deactivate(g.asid, userId(g))) snp.sev.keySlots.clear(g.asid);
  g.active = false;
}

/**
 * SNP_GCTX_CREATE {GCTX_PADDR}: a new context in state INIT. The page must be 4 KiB aligned system memory
 * (INVALID_ADDRESS) and not already a context page (INVALID_PAGE_STATE: the page is no longer in the state a new
 * context page needs).
 */
export function snpGctxCreate(snp: SnpFirmwareState, buf: CommandBuffer): SevStatusCode {
  const pa = buf.addr(0);
  if (pa === undefined || pa % PAGE !== 0 || !rangeOk(snp.sev, pa, PAGE)) return SevStatus.INVALID_ADDRESS;
  if (snp.guests.has(pa)) return SevStatus.INVALID_PAGE_STATE;
  snp.guests.set(pa, {
    gctxPa: pa,
    state: "INIT",
    policy: 0n,
    keyGroup: snp.sev.nextKeyGroup++,
    vek: new Uint8Array(),
    asid: 0,
    active: false,
    imiEn: false,
    gosvw: new Uint8Array(16),
    ld: new FirmwareLaunchDigest(),
    vmpck: [],
    msgSeqno: [0n, 0n, 0n, 0n],
    secretsPages: 0,
    vmsaCount: 0,
    reportId: new Uint8Array(32),
    reportIdMa: new Uint8Array(32).fill(0xff),
    launchTcb: 0n,
    measurement: undefined,
    hostData: new Uint8Array(32),
    familyId: new Uint8Array(16),
    imageId: new Uint8Array(16),
    guestSvn: 0,
    idKeyDigest: new Uint8Array(48),
    authorKeyDigest: new Uint8Array(48),
    authorKeyEn: false,
    vcekDisabled: false,
  });
  return SevStatus.SUCCESS;
}

/**
 * SNP_ACTIVATE {GCTX_PADDR, ASID u32 @8}: binds the guest's key to an ASID of the SEV-ES range [1, min_sev_asid),
 * which SNP guests share with SEV-ES guests (INVALID_ASID otherwise); a guest already active gets ACTIVE, a dirty
 * ASID DFFLUSH_REQUIRED, an ASID bound to another key ASID_OWNED.
 */
export function snpActivate(
  snp: SnpFirmwareState,
  buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const asid = buf.r.u32(8);
  if (guest.active) return SevStatus.ACTIVE;
  const s = snp.sev.asids.checkActivate(asid, true, guest.keyGroup);
  if (s !== SevStatus.SUCCESS) return s;
  snp.sev.asids.activate(asid, guest.keyGroup, userId(guest));
  snp.sev.keySlots.program(asid, guest.vek);
  guest.asid = asid;
  guest.active = true;
  return SevStatus.SUCCESS;
}

/**
 * SNP_DECOMMISSION {GCTX_PADDR}: deletes the context from any state. Unlike SEV's DECOMMISSION it also deactivates
 * the guest (there is no SNP_DEACTIVATE): the ASID becomes dirty until WBINVD and SNP_DF_FLUSH.
 */
export function snpDecommission(
  snp: SnpFirmwareState,
  _buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  deactivateSnpGuest(snp, guest);
  snp.guests.delete(guest.gctxPa);
  return SevStatus.SUCCESS;
}

/** SNP_GUEST_STATUS {GCTX_PADDR, STATUS_PADDR @8}: writes POLICY, ASID (0 when inactive) and STATE. */
export function snpGuestStatus(
  snp: SnpFirmwareState,
  buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const pa = buf.addr(8);
  if (!rangeOk(snp.sev, pa, SNP_GUEST_STATUS_SIZE)) return SevStatus.INVALID_ADDRESS;
  const out = new ByteWriter(SNP_GUEST_STATUS_SIZE)
    .u64(0, guest.policy)
    .u32(8, guest.active ? guest.asid : 0)
    .u8(0xc, SnpGuestState[guest.state]);
  snp.sev.memory.write(pa, out.bytes);
  return SevStatus.SUCCESS;
}
