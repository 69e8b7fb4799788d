/**
 * QEMU's SEV kernel-hashes table for measured direct boot (`kernel-hashes=on`), docs/sev-interface.md §8.3.
 *
 * | offset | size | field |
 * |--------|------|-------|
 * | 0x00 | 16 | header GUID `9438d606-4f22-4cc9-b479-a793d411fd21` |
 * | 0x10 | 2  | u16 total length = 0xA8 (168, unpadded) |
 * | 0x12 | 50 | cmdline: GUID `97d02dd8-bd20-4c94-aa78-e7714d36ab2a` ‖ u16 len = 50 ‖ SHA-256 |
 * | 0x44 | 50 | initrd:  GUID `44baf731-3a2f-4bd7-9af1-41e29169781d` ‖ u16 len = 50 ‖ SHA-256 |
 * | 0x76 | 50 | kernel:  GUID `4de79437-abd2-427f-b835-d5b172d2045b` ‖ u16 len = 50 ‖ SHA-256 |
 * | 0xA8 | 8  | zero padding to a multiple of 16 |
 *
 * All 176 bytes, padding included, are measured (docs/sev-interface.md §15 pitfall 9). GUIDs are in EFI byte order (docs/sev-interface.md §15 pitfall 10). The cmdline
 * hash covers the string and its NUL; a missing cmdline hashes a lone NUL and a missing initrd hashes the empty input
 * (docs/sev-interface.md §15 pitfall 11), as QEMU does.
 */
import { sha256 } from "../crypto/hash.ts";
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter, guidFromBytes, guidToBytes } from "../lib/bytes.ts";

export const KernelHashesGuid = {
  TABLE: "9438d606-4f22-4cc9-b479-a793d411fd21",
  CMDLINE: "97d02dd8-bd20-4c94-aa78-e7714d36ab2a",
  INITRD: "44baf731-3a2f-4bd7-9af1-41e29169781d",
  KERNEL: "4de79437-abd2-427f-b835-d5b172d2045b",
} as const;

/** The unpadded length QEMU writes into the header (16 + 2 + 3 × 50). */
export const KERNEL_HASHES_TABLE_LENGTH = 0xa8;
/** The padded size that is measured and that the OVMF hashes area must be able to hold. */
export const KERNEL_HASHES_TABLE_SIZE = 176;
const ENTRY_SIZE = 50;
const ENTRY_ORDER = [
  ["cmdline", 0x12, KernelHashesGuid.CMDLINE],
  ["initrd", 0x44, KernelHashesGuid.INITRD],
  ["kernel", 0x76, KernelHashesGuid.KERNEL],
] as const;

/** The three SHA-256 digests the table carries. */
export interface KernelHashes {
  cmdline: Uint8Array;
  initrd: Uint8Array;
  kernel: Uint8Array;
}

/** What a direct-boot launch passes to QEMU: `-kernel`, optionally `-initrd` and `-append`. */
export interface DirectBootInput {
  kernel: Uint8Array;
  initrd?: Uint8Array | undefined;
  /** The kernel command line as given to `-append`, without a trailing NUL (it is added here). */
  cmdline?: string | undefined;
}

/** The digests QEMU computes for a direct boot (§8.3, docs/sev-interface.md §15 pitfall 11). */
export function directBootHashes(input: DirectBootInput): KernelHashes {
  const cmdline = new TextEncoder().encode(`${input.cmdline ?? ""}\0`);
  return {
    cmdline: sha256(cmdline),
    initrd: sha256(input.initrd ?? new Uint8Array()),
    kernel: sha256(input.kernel),
  };
}

/**
 * Encodes the padded 176-byte table.
 * @example `const table = encodeKernelHashesTable(directBootHashes({ kernel, initrd, cmdline: "console=ttyS0" }))`
 */
export function encodeKernelHashesTable(h: KernelHashes): Uint8Array {
  const w = new ByteWriter(KERNEL_HASHES_TABLE_SIZE);
  w.set(0, guidToBytes(KernelHashesGuid.TABLE)).u16(0x10, KERNEL_HASHES_TABLE_LENGTH);
  for (const [name, offset, guid] of ENTRY_ORDER) {
    const digest = h[name];
    if (digest.length !== 32) {
      throw new CiphervisorError("INVALID_INPUT", `the ${name} hash must be 32 bytes, got ${digest.length}`);
    }
    w.set(offset, guidToBytes(guid))
      .u16(offset + 16, ENTRY_SIZE)
      .set(offset + 18, digest);
  }
  return w.bytes;
}

/** The table QEMU places for a direct boot (digests + encoding). */
export function buildKernelHashesTable(input: DirectBootInput): Uint8Array {
  return encodeKernelHashesTable(directBootHashes(input));
}

/**
 * Decodes a kernel-hashes table (what OVMF reads from its hashes area). Accepts the padded or unpadded form; the
 * header GUID, length and every entry GUID/length must be exactly QEMU's.
 * @throws CiphervisorError MALFORMED
 */
export function decodeKernelHashesTable(bytes: Uint8Array): KernelHashes {
  if (bytes.length < KERNEL_HASHES_TABLE_LENGTH) {
    throw new CiphervisorError(
      "MALFORMED",
      `a kernel-hashes table is ${KERNEL_HASHES_TABLE_LENGTH} bytes (${KERNEL_HASHES_TABLE_SIZE} padded), got ${bytes.length}`,
    );
  }
  const r = new ByteReader(bytes, "kernel-hashes table");
  const header = guidFromBytes(r.slice(0, 16));
  if (header !== KernelHashesGuid.TABLE) {
    throw new CiphervisorError(
      "MALFORMED",
      `kernel-hashes table: header GUID ${header} is not ${KernelHashesGuid.TABLE}`,
    );
  }
  const len = r.u16(0x10);
  if (len !== KERNEL_HASHES_TABLE_LENGTH) {
    throw new CiphervisorError(
      "MALFORMED",
      `kernel-hashes table: length field ${len}, expected ${KERNEL_HASHES_TABLE_LENGTH}`,
    );
  }
  const entry = ([name, offset, guid]: (typeof ENTRY_ORDER)[number]): Uint8Array => {
    const g = guidFromBytes(r.slice(offset, 16));
    const size = r.u16(offset + 16);
    if (g !== guid || size !== ENTRY_SIZE) {
      throw new CiphervisorError(
        "MALFORMED",
        `kernel-hashes table: the ${name} entry at 0x${offset.toString(16)} is ${g}/${size}, expected ${guid}/${ENTRY_SIZE}`,
      );
    }
    return r.slice(offset + 18, 32);
  };
  const [cmdline, initrd, kernel] = ENTRY_ORDER;
  return { cmdline: entry(cmdline), initrd: entry(initrd), kernel: entry(kernel) };
}
