/**
 * The OVMF footer table ("GUIDed table" at the end of the reset vector), docs/sev-interface.md §8.4.
 *
 * Layout, read from the end of the firmware image:
 *
 * | position (from the image end) | size | field |
 * |-------------------------------|------|-------|
 * | last 32 bytes                 | 32   | reserved (reset vector); skipped. `end = image_len − 32` |
 * | end − 18                      | 2    | u16 table size, **including** this 18-byte footer entry |
 * | end − 16                      | 16   | footer GUID `96b582de-1fb2-45f7-baea-a366c55a082d` (EFI byte order) |
 * | [end − size, end − 18)        | …    | entries, walked backwards: `data ‖ u16 entry_size ‖ GUID(16)` |
 *
 * `entry_size` counts the 18-byte (size + GUID) trailer, so each entry's data is `entry_size − 18` bytes right before
 * its size field. Every size is validated before anything is sliced, so a corrupt image gives a MALFORMED error
 * naming the offending entry, never an out-of-range read.
 *
 * Known entries:
 *
 * | GUID | meaning | data |
 * |------|---------|------|
 * | `00f771de-1a7e-4fcb-890e-68c77e2fb44e` | SEV-ES AP reset block | u32 reset EIP |
 * | `4c2eb361-7d9b-4cc3-8081-127c90d3d294` | SEV secret area | u32 base, u32 size |
 * | `7255371f-3a3b-4b04-927b-1da6efa8d454` | SEV kernel-hashes area | u32 base, u32 size |
 * | `dc886566-984a-4798-a75e-5585a7bf67cc` | SNP metadata | u32 offset from the image end of the "ASEV" block |
 * | `e47a6535-984a-4798-865e-4685a7bf8ec2` | TDX metadata | u32 offset (not used for SEV) |
 *
 * The area addresses never enter the SEV launch digest (§8.1); they tell a VMM where to put the hashes table and the
 * launch secret. They differ between OVMF builds, so always parse them (docs/sev-interface.md §15 pitfall 25).
 */
import { CiphervisorError } from "../errors.ts";
import { ByteReader, guidFromBytes, guidToBytes } from "../lib/bytes.ts";

/** Footer entry GUIDs (docs/sev-interface.md §8.4). */
export const OvmfGuid = {
  FOOTER_TABLE: "96b582de-1fb2-45f7-baea-a366c55a082d",
  SEV_ES_RESET_BLOCK: "00f771de-1a7e-4fcb-890e-68c77e2fb44e",
  SEV_SECRET_AREA: "4c2eb361-7d9b-4cc3-8081-127c90d3d294",
  SEV_KERNEL_HASHES_AREA: "7255371f-3a3b-4b04-927b-1da6efa8d454",
  SNP_METADATA: "dc886566-984a-4798-a75e-5585a7bf67cc",
  TDX_METADATA: "e47a6535-984a-4798-865e-4685a7bf8ec2",
} as const;

/** The reserved bytes at the very end of the image (reset vector), not part of the table. */
const RESERVED_TAIL = 32;
/** u16 size + GUID: the trailer of every entry, the footer entry included. */
const ENTRY_TRAILER = 18;

export interface OvmfFooterEntry {
  /** Entry GUID in text form (lower case). */
  guid: string;
  /** Byte offset of the entry's data in the image. */
  offset: number;
  /** A copy of the entry's data (entry_size − 18 bytes). */
  data: Uint8Array;
}

/** A guest-physical region declared by the firmware. */
export interface OvmfArea {
  base: number;
  size: number;
}

export interface OvmfFooter {
  /** False when the image has no footer table (allowed for plain SEV; see {@link requireSevEsResetEip}). */
  present: boolean;
  /** The table size from the footer entry (0 when absent). */
  tableSize: number;
  /** Every entry in table order (walked from the end backwards, as the firmware defines it). */
  entries: OvmfFooterEntry[];
  /** SEV-ES AP reset EIP: where application processors start (§12.2). */
  sevEsResetEip?: number;
  /** Where the VMM injects the LAUNCH_SECRET table (§10.2). */
  secretArea?: OvmfArea;
  /** Where the VMM places the kernel-hashes table (§8.3). */
  kernelHashesArea?: OvmfArea;
  /** SNP metadata block offset from the image end. */
  snpMetadataOffset?: number;
  /** TDX metadata offset (recorded, not used for SEV). */
  tdxMetadataOffset?: number;
}

const FOOTER_GUID_BYTES = guidToBytes(OvmfGuid.FOOTER_TABLE);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function malformed(message: string): CiphervisorError {
  return new CiphervisorError("MALFORMED", `OVMF footer table: ${message}`);
}

/** Data of a known entry must hold at least `need` bytes; longer data is tolerated (later OVMF may extend it). */
function need(entry: OvmfFooterEntry, bytes: number, name: string): ByteReader {
  if (entry.data.length < bytes) {
    throw malformed(`the ${name} entry holds ${entry.data.length} bytes of data, expected at least ${bytes}`);
  }
  return new ByteReader(entry.data, `OVMF ${name} entry`);
}

/**
 * Parses the footer table of an OVMF image.
 *
 * An image whose footer GUID is missing (or that is too short to carry one) has no table: the result has
 * `present: false` and no entries. That is legal for plain SEV, whose digest is just the image. A footer GUID with a
 * bad size, an entry running outside the table, or a known entry with too little data is MALFORMED.
 *
 * @example
 * ```ts
 * const footer = parseOvmfFooter(ovmf);
 * footer.sevEsResetEip; // 0x0080b004 for the sevctl and sev-snp-measure OVMF tails
 * ```
 * @throws CiphervisorError MALFORMED
 */
export function parseOvmfFooter(image: Uint8Array): OvmfFooter {
  const absent: OvmfFooter = { present: false, tableSize: 0, entries: [] };
  if (image.length < RESERVED_TAIL + ENTRY_TRAILER) return absent;
  const end = image.length - RESERVED_TAIL;
  if (!sameBytes(image.subarray(end - 16, end), FOOTER_GUID_BYTES)) return absent;

  const r = new ByteReader(image, "OVMF image");
  const tableSize = r.u16(end - ENTRY_TRAILER);
  if (tableSize < ENTRY_TRAILER) {
    throw malformed(`size ${tableSize} is smaller than the ${ENTRY_TRAILER}-byte footer entry`);
  }
  if (tableSize > end) {
    throw malformed(`size ${tableSize} runs past the start of the ${image.length}-byte image`);
  }
  const start = end - tableSize;

  const entries: OvmfFooterEntry[] = [];
  // `pos` is the end of the next entry to read (exclusive); walking backwards mirrors how OVMF and QEMU read it.
  let pos = end - ENTRY_TRAILER;
  while (pos > start) {
    const room = pos - start;
    if (room < ENTRY_TRAILER) {
      throw malformed(`${room} stray bytes at offset 0x${start.toString(16)}, too few for an entry`);
    }
    const guid = guidFromBytes(r.slice(pos - 16, 16));
    const entrySize = r.u16(pos - ENTRY_TRAILER);
    if (entrySize < ENTRY_TRAILER || entrySize > room) {
      throw malformed(
        `entry ${guid} at offset 0x${(pos - ENTRY_TRAILER).toString(16)} has size ${entrySize}; ` +
          `it must be ${ENTRY_TRAILER}..${room} to fit in the table`,
      );
    }
    const dataOffset = pos - entrySize;
    entries.push({ guid, offset: dataOffset, data: r.slice(dataOffset, entrySize - ENTRY_TRAILER) });
    pos = dataOffset;
  }

  const footer: OvmfFooter = { present: true, tableSize, entries };
  // The first occurrence of a GUID wins (the one nearest the end), as in QEMU's pc_system_ovmf_table_find.
  for (const e of entries.slice().reverse()) {
    switch (e.guid) {
      case OvmfGuid.SEV_ES_RESET_BLOCK:
        footer.sevEsResetEip = need(e, 4, "SEV-ES reset block").u32(0);
        break;
      case OvmfGuid.SEV_SECRET_AREA: {
        const d = need(e, 8, "SEV secret area");
        footer.secretArea = { base: d.u32(0), size: d.u32(4) };
        break;
      }
      case OvmfGuid.SEV_KERNEL_HASHES_AREA: {
        const d = need(e, 8, "SEV kernel-hashes area");
        footer.kernelHashesArea = { base: d.u32(0), size: d.u32(4) };
        break;
      }
      case OvmfGuid.SNP_METADATA:
        footer.snpMetadataOffset = need(e, 4, "SNP metadata").u32(0);
        break;
      case OvmfGuid.TDX_METADATA:
        footer.tdxMetadataOffset = need(e, 4, "TDX metadata").u32(0);
        break;
      default:
        break;
    }
  }
  return footer;
}

/**
 * The SEV-ES AP reset EIP, which SEV-ES needs to build the application processors' VMSAs (§12.2).
 * @throws CiphervisorError INVALID_INPUT when the firmware has no SEV-ES reset block (it cannot boot SEV-ES APs).
 */
export function requireSevEsResetEip(footer: OvmfFooter): number {
  if (footer.sevEsResetEip === undefined) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      footer.present
        ? `the firmware's footer table has no SEV-ES reset block (GUID ${OvmfGuid.SEV_ES_RESET_BLOCK}); it cannot launch SEV-ES guests`
        : "the firmware has no OVMF footer table, so no SEV-ES reset block; it cannot launch SEV-ES guests (plain SEV only)",
    );
  }
  return footer.sevEsResetEip;
}
