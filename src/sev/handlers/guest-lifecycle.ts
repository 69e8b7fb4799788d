/** ACTIVATE, DEACTIVATE, DECOMMISSION, GUEST_STATUS (docs/sev-interface.md §3, §4.1, §7). */
import type { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState, GuestContext } from "../firmware-state.ts";
import { GuestState } from "../state-tables.ts";
import { SevStatus, type SevStatusCode } from "../status.ts";

/**
 * ACTIVATE {handle, asid}: binds the guest's VEK to an ASID and programs the memory controller's key slot.
 * A guest already active gets ACTIVE; the ASID must be of the guest's class (INVALID_ASID), clean
 * (DFFLUSH_REQUIRED) and not bound to another key (ASID_OWNED). Guests sharing a key share the ASID.
 */
export function activate(fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined): SevStatusCode {
  const guest = g!;
  const asid = buf.r.u32(4);
  if (guest.active) return SevStatus.ACTIVE;
  const sharer = [...fw.guests.values()].find(
    (o) => o !== guest && o.keyGroup === guest.keyGroup && o.active,
  );
  if (sharer && sharer.asid !== asid) return SevStatus.ASID_OWNED;
  const s = fw.asids.checkActivate(asid, guest.es, guest.keyGroup);
  if (s !== SevStatus.SUCCESS) return s;
  fw.asids.activate(asid, guest.keyGroup, guest.handle);
  if (!fw.keySlots.isProgrammed(asid)) fw.keySlots.program(asid, guest.vek);
  guest.asid = asid;
  guest.active = true;
  return SevStatus.SUCCESS;
}

/** DEACTIVATE {handle}: unbinds the key; the ASID becomes dirty and every core needs WBINVD before DF_FLUSH. */
export function deactivate(
  fw: FirmwareState,
  _buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  if (!guest.active) return SevStatus.INACTIVE;
  if (fw.asids.deactivate(guest.asid, guest.handle)) fw.keySlots.clear(guest.asid);
  guest.active = false;
  return SevStatus.SUCCESS;
}

/** DECOMMISSION {handle}: deletes the context; ACTIVE while its ASID is still bound (AMD `sev_mcmd.c`). */
export function decommission(
  fw: FirmwareState,
  _buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  if (guest.active) return SevStatus.ACTIVE;
  fw.guests.delete(guest.handle);
  // DECOMMISSION of the last guest returns the platform to INIT (§2 [unconfirmed]).
  if (fw.guests.size === 0 && fw.state === "WORKING") fw.state = "INIT";
  return SevStatus.SUCCESS;
}

/** GUEST_STATUS {handle, policy (out) @4, asid (out) @8, state u8 (out) @0xC}. */
export function guestStatus(
  _fw: FirmwareState,
  buf: CommandBuffer,
  g: GuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  buf.setU32(4, guest.policy);
  buf.setU32(8, guest.active ? guest.asid : 0);
  buf.setU8(0xc, GuestState[guest.state]);
  return SevStatus.SUCCESS;
}
