/**
 * The OVMF SEV metadata block ("ASEV"), docs/sev-interface.md §8.6: the list of guest-physical ranges an SEV-SNP
 * launch must hand to SNP_LAUNCH_UPDATE besides the firmware image itself (SEV-SNP Firmware ABI #56860, section 8.17), and
 * what each range holds. The footer table's SNP metadata entry (GUID `dc886566-984a-4798-a75e-5585a7bf67cc`, §8.4)
 * gives the block's position as an offset counted back from the end of the image.
 *
 * | offset | size | field |
 * |--------|------|-------|
 * | 0x00 | 4 | signature "ASEV" |
 * | 0x04 | 4 | u32 length of the block: this header plus every descriptor |
 * | 0x08 | 4 | u32 version, 1 |
 * | 0x0C | 4 | u32 number of descriptors |
 * | 0x10 + 12·i | 12 | descriptor i: u32 GPA, u32 size in bytes, u32 section type |
 *
 * Section types (edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`, QEMU `hw/i386/pc.h`): 1 SNP_SEC_MEM (memory the
 * VMM pre-validates for the firmware), 2 SNP_SECRETS (the secrets page), 3 CPUID (the CPUID page), 4 SVSM_CAA (the
 * SVSM calling-area page), 0x10 SNP_KERNEL_HASHES (the page that carries the kernel-hashes table of a measured
 * direct boot). How each is measured: `snp-launch-digest.ts`.
 *
 * QEMU reads the block only for SEV-SNP and refuses to launch an SNP guest without one ("Failed to locate SEV
 * metadata header"): {@link requireSevMetadata} is that refusal, with code SEV_METADATA_MISSING.
 */
import { CiphervisorError } from "../errors.ts";
import { ByteReader } from "../lib/bytes.ts";
import { type OvmfFooter, OvmfGuid, parseOvmfFooter } from "./ovmf-footer.ts";

/** Section types of the SEV metadata block. */
export const SevMetadataSectionType = {
  SNP_SEC_MEM: 1,
  SNP_SECRETS: 2,
  CPUID: 3,
  SVSM_CAA: 4,
  SNP_KERNEL_HASHES: 0x10,
} as const;
export type SevMetadataSectionName = keyof typeof SevMetadataSectionType;

const SECTION_NAMES = new Map<number, SevMetadataSectionName>(
  (Object.entries(SevMetadataSectionType) as [SevMetadataSectionName, number][]).map(([n, t]) => [t, n]),
);

/** The "ASEV" signature. */
export const SEV_METADATA_SIGNATURE = "ASEV";
/** The only version defined. */
export const SEV_METADATA_VERSION = 1;
const HEADER_SIZE = 16;
const DESCRIPTOR_SIZE = 12;
const PAGE_SIZE = 4096;

export interface SevMetadataSection {
  /** Guest-physical address of the first byte (page aligned). */
  gpa: number;
  /** Size in bytes (a non-zero multiple of 4096). */
  size: number;
  /** The raw type number. */
  type: number;
  name: SevMetadataSectionName;
}

export interface SevMetadata {
  /** The footer entry's offset from the image end. */
  offsetFromEnd: number;
  /** Where the block starts in the image. */
  imageOffset: number;
  /** The block's length field. */
  length: number;
  version: number;
  /** The descriptors in block order, which is also the order QEMU measures them in. */
  sections: SevMetadataSection[];
}

function malformed(message: string): CiphervisorError {
  return new CiphervisorError("MALFORMED", `OVMF SEV metadata: ${message}`);
}

/**
 * Parses the SEV metadata block of an OVMF image, or returns undefined when the footer table has no SNP metadata
 * entry (an image built without SEV-SNP support, or no footer at all).
 *
 * Everything is bounds-checked before it is read: an entry pointing outside the image, a block without the "ASEV"
 * signature, another version, a length that cannot hold its descriptors, an unknown section type, or a section that is
 * empty, not page aligned or past 4 GiB is MALFORMED.
 *
 * @example
 * ```ts
 * parseSevMetadata(ovmf)?.sections.map((s) => s.name); // ["SNP_SEC_MEM", "SNP_SEC_MEM", "SNP_SECRETS", "CPUID", …]
 * ```
 * @throws CiphervisorError MALFORMED (also for a malformed footer table)
 */
export function parseSevMetadata(
  image: Uint8Array,
  footer: OvmfFooter = parseOvmfFooter(image),
): SevMetadata | undefined {
  const offsetFromEnd = footer.snpMetadataOffset;
  if (offsetFromEnd === undefined) return undefined;
  if (offsetFromEnd < HEADER_SIZE || offsetFromEnd > image.length) {
    throw malformed(
      `the footer entry puts the block ${offsetFromEnd} bytes before the end of the ${image.length}-byte image, ` +
        `outside it (or too close to the end for the ${HEADER_SIZE}-byte header)`,
    );
  }
  const start = image.length - offsetFromEnd;
  const r = new ByteReader(image, "OVMF image");
  const signature = String.fromCharCode(...r.slice(start, 4));
  if (signature !== SEV_METADATA_SIGNATURE) {
    throw malformed(
      `no "${SEV_METADATA_SIGNATURE}" signature at image offset 0x${start.toString(16)} ` +
        `(the footer's SNP metadata entry, GUID ${OvmfGuid.SNP_METADATA})`,
    );
  }
  const length = r.u32(start + 4);
  const version = r.u32(start + 8);
  const count = r.u32(start + 12);
  if (version !== SEV_METADATA_VERSION) {
    throw malformed(`version ${version}; only version ${SEV_METADATA_VERSION} is defined`);
  }
  if (length < HEADER_SIZE || length > offsetFromEnd) {
    throw malformed(`length ${length} must be ${HEADER_SIZE}..${offsetFromEnd} to fit before the image end`);
  }
  if (HEADER_SIZE + count * DESCRIPTOR_SIZE > length) {
    throw malformed(
      `${count} descriptors need ${HEADER_SIZE + count * DESCRIPTOR_SIZE} bytes, the block's length is ${length}`,
    );
  }
  const sections: SevMetadataSection[] = [];
  for (let i = 0; i < count; i++) {
    const at = start + HEADER_SIZE + i * DESCRIPTOR_SIZE;
    const gpa = r.u32(at);
    const size = r.u32(at + 4);
    const type = r.u32(at + 8);
    const name = SECTION_NAMES.get(type);
    const where = `section ${i} (type 0x${type.toString(16)}, GPA 0x${gpa.toString(16)}, size 0x${size.toString(16)})`;
    if (name === undefined) {
      throw malformed(`${where}: unknown section type; known: ${[...SECTION_NAMES.values()].join(", ")}`);
    }
    if (size === 0 || gpa % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0) {
      throw malformed(`${where}: a section is a non-empty run of whole 4 KiB pages`);
    }
    if (gpa + size > 2 ** 32) throw malformed(`${where}: runs past 4 GiB`);
    sections.push({ gpa, size, type, name });
  }
  return { offsetFromEnd, imageOffset: start, length, version, sections };
}

/**
 * The SEV metadata an SEV-SNP launch needs; an image without it is refused, as QEMU refuses to launch it.
 * @throws CiphervisorError SEV_METADATA_MISSING, MALFORMED
 */
export function requireSevMetadata(
  image: Uint8Array,
  footer: OvmfFooter = parseOvmfFooter(image),
): SevMetadata {
  const metadata = parseSevMetadata(image, footer);
  if (!metadata) {
    throw new CiphervisorError(
      "SEV_METADATA_MISSING",
      footer.present
        ? `the firmware's footer table has no SEV metadata entry (GUID ${OvmfGuid.SNP_METADATA}); it cannot launch SEV-SNP guests`
        : "the firmware has no OVMF footer table, so no SEV metadata; it cannot launch SEV-SNP guests",
    );
  }
  return metadata;
}
