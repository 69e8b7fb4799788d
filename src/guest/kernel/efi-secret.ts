/**
 * The guest kernel's `efi_secret` driver: what a Linux guest (≥ 5.19, CONFIG_EFI_SECRET) does with the secret area
 * OVMF reserves and the guest owner filled through LAUNCH_SECRET (the command of that name in SEV API 55766). The driver maps the area,
 * finds the EFI secret table (header GUID `1e74f542-71dd-4d66-963e-ef4287ff173b`, u32 length, then entries
 * `{GUID, u32 length = 20 + data, data}`) and exposes each entry as `securityfs: secrets/coco/<guid>`.
 *
 * Our kernel has no filesystem, so at boot it prints, for each entry, its GUID, size and the SHA-256 of its data on
 * the serial console. The console is read by the hypervisor, so only a hash leaves the guest: the owner compares it
 * with the hash of what they sent, and the platform learns nothing it could not already guess.
 *
 * This is the guest's own reader, deliberately separate from the owner toolkit's encoder (src/owner/secret.ts):
 * a test that round-trips one through the other checks both against the same layout.
 */
import { createHash } from "node:crypto";
import { guidFromBytes } from "../../lib/bytes.ts";

const TABLE_GUID = "1e74f542-71dd-4d66-963e-ef4287ff173b";
const HEADER = 20;
/** Lines printed at most; a table of 16 KiB could hold ~800 empty entries, and the console is not a dump. */
export const MAX_SECRET_LINES = 16;

/**
 * The boot messages for a secret area's contents: nothing when the area holds no table (no secret was injected,
 * or the VM is not encrypted and nobody wrote the area), one line per entry otherwise, or one line saying why the
 * table is malformed (Linux's driver refuses such a table and exposes nothing).
 */
export function efiSecretMessages(area: Uint8Array): string[] {
  if (area.length < HEADER || guidFromBytes(area.subarray(0, 16)) !== TABLE_GUID) return [];
  const view = new DataView(area.buffer, area.byteOffset, area.byteLength);
  const length = view.getUint32(16, true);
  if (length < HEADER || length > area.length) {
    return [`efi_secret: malformed secret table: length ${length} outside ${HEADER}..${area.length}`];
  }
  const lines: string[] = [];
  let entries = 0;
  for (let o = HEADER; o < length; ) {
    if (length - o < HEADER) return [`efi_secret: malformed secret table: truncated entry at offset ${o}`];
    const size = view.getUint32(o + 16, true);
    if (size < HEADER || o + size > length) {
      return [`efi_secret: malformed secret table: entry at offset ${o} has length ${size}`];
    }
    const guid = guidFromBytes(area.subarray(o, o + 16));
    const data = area.subarray(o + HEADER, o + size);
    if (entries < MAX_SECRET_LINES) {
      const digest = createHash("sha256").update(data).digest("hex");
      lines.push(`efi_secret: secret ${guid} (${data.length} bytes) sha256 ${digest}`);
    }
    entries++;
    o += size;
  }
  if (entries > MAX_SECRET_LINES) lines.push(`efi_secret: … and ${entries - MAX_SECRET_LINES} more secrets`);
  return lines;
}
