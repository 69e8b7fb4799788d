/**
 * DBG_DECRYPT / DBG_ENCRYPT {handle, src @8, dst @0x10, len @0x18} (docs/sev-interface.md §4.1).
 *
 * AMD's order (`sev_mcmd_dbg_decrypt/encrypt`): 16-byte alignment of addresses and length first, then a valid
 * handle, then POLICY_FAILURE when the policy has NODBG. The dispatcher runs the alignment check before the handle
 * lookup for these two commands only.
 */
import type { CommandBuffer } from "../command-buffer.ts";
import type { FirmwareState, GuestContext } from "../firmware-state.ts";
import { decodePolicy } from "../policy.ts";
import { SevStatus, type SevStatusCode } from "../status.ts";
import { rangeOk, requireActive } from "./common.ts";

/** The alignment checks that precede the handle lookup: both addresses, then the length. */
export function dbgPrecheck(buf: CommandBuffer): SevStatusCode {
  const src = buf.addr(8);
  const dst = buf.addr(0x10);
  if (src === undefined || dst === undefined || src % 16 !== 0 || dst % 16 !== 0)
    return SevStatus.INVALID_ADDRESS;
  const len = buf.r.u32(0x18);
  return len === 0 || len % 16 !== 0 ? SevStatus.INVALID_LENGTH : SevStatus.SUCCESS;
}

function dbg(
  fw: FirmwareState,
  buf: CommandBuffer,
  g: GuestContext | undefined,
  dir: "decrypt" | "encrypt",
): SevStatusCode {
  const guest = g!;
  const a = requireActive(guest);
  if (a !== SevStatus.SUCCESS) return a;
  if (decodePolicy(guest.policy).nodbg) return SevStatus.POLICY_FAILURE;
  const src = buf.addr(8);
  const dst = buf.addr(0x10);
  const len = buf.r.u32(0x18);
  if (!rangeOk(fw, src, len) || !rangeOk(fw, dst, len)) return SevStatus.INVALID_ADDRESS;
  const data = fw.memory.read(src, len);
  // Guest memory is encrypted at its own physical address: decrypt with the source's tweak, encrypt with the
  // destination's.
  const out =
    dir === "decrypt"
      ? fw.keySlots.decrypt(guest.asid, src, data)
      : fw.keySlots.encrypt(guest.asid, dst, data);
  fw.memory.write(dst, out);
  return SevStatus.SUCCESS;
}

export const dbgDecrypt = (fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined) =>
  dbg(fw, buf, g, "decrypt");
export const dbgEncrypt = (fw: FirmwareState, buf: CommandBuffer, g: GuestContext | undefined) =>
  dbg(fw, buf, g, "encrypt");
