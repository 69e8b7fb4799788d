/**
 * The small built-in emulated UEFI every VM boots unless it names a real OVMF image. It is a firmware *image* in
 * OVMF's shape — a body and the OVMF footer table at its end (docs/sev-interface.md §8.4) with an SEV-ES AP reset block,
 * a secret area, a kernel-hashes area and the SEV metadata block SEV-SNP launches need ("ASEV", as edk2's
 * `OvmfSevMetadata.asm` lays it out, docs/sev-interface.md §8.6) — so the host loads, measures and injects secrets into it
 * exactly as it does for Debian's `OVMF_CODE.fd`, and a guest owner computes its launch digest with the same tools
 * (`owner measure --firmware <this image> [--mode snp]`). `ciphervisor firmware export` writes it to a file.
 *
 * The body is deterministic filler standing for UEFI code: the emulator cannot execute x86 firmware (see
 * `firmware-handoff` in the host for what runs instead).
 */
import { sha256 } from "../crypto/hash.ts";
import { ByteWriter, concat, guidToBytes, u16le } from "../lib/bytes.ts";
import { OvmfGuid } from "../measure/ovmf-footer.ts";
import { SEV_METADATA_SIGNATURE, SevMetadataSectionType } from "../measure/ovmf-sev-metadata.ts";

export const BUILTIN_UEFI_SIZE = 64 * 1024;
export const BUILTIN_UEFI_NAME = "builtin-uefi";
/** Same guest-physical layout as the AmdSev OVMF builds (sevctl's tail): AP reset EIP, secret and hashes areas. */
export const BUILTIN_LAYOUT = {
  apResetEip: 0x0080b004,
  secretArea: { base: 0x0080c000, size: 0xc00 },
  kernelHashesArea: { base: 0x0080cc00, size: 0x400 },
  /**
   * The SEV metadata sections, in block order (what an SNP launch hands SNP_LAUNCH_UPDATE besides the image): memory
   * the VMM pre-validates, the page holding the kernel-hashes area (as in the AmdSev build, where that page also
   * holds the SEV secret area), the SNP secrets page and the CPUID page.
   */
  sevMetadata: [
    { gpa: 0x00800000, size: 0xc000, type: "SNP_SEC_MEM" },
    { gpa: 0x0080c000, size: 0x1000, type: "SNP_KERNEL_HASHES" },
    { gpa: 0x0080d000, size: 0x1000, type: "SNP_SECRETS" },
    { gpa: 0x0080e000, size: 0x1000, type: "CPUID" },
    { gpa: 0x0080f000, size: 0x1000, type: "SNP_SEC_MEM" },
  ],
} as const;

function entry(guid: string, data: Uint8Array): Uint8Array {
  return concat(data, u16le(data.length + 18), guidToBytes(guid));
}

function area(a: { base: number; size: number }): Uint8Array {
  return new ByteWriter(8).u32(0, a.base).u32(4, a.size).bytes;
}

/** The "ASEV" block: signature, u32 length, u32 version 1, u32 count, then {u32 GPA, u32 size, u32 type} each. */
function sevMetadataBlock(): Uint8Array {
  const sections = BUILTIN_LAYOUT.sevMetadata;
  const w = new ByteWriter(16 + 12 * sections.length)
    .set(0, new TextEncoder().encode(SEV_METADATA_SIGNATURE))
    .u32(4, 16 + 12 * sections.length)
    .u32(8, 1)
    .u32(12, sections.length);
  sections.forEach((s, i) => {
    w.u32(16 + 12 * i, s.gpa)
      .u32(20 + 12 * i, s.size)
      .u32(24 + 12 * i, SevMetadataSectionType[s.type]);
  });
  return w.bytes;
}

let cached: Uint8Array | undefined;

/** The image bytes (a fresh copy each call). */
export function builtinUefiImage(): Uint8Array {
  if (!cached) {
    const metadata = sevMetadataBlock();
    // The metadata block sits right before the footer table; its entry holds the block's offset from the image end.
    const tableWith = (offsetFromEnd: number) => {
      const entries = concat(
        entry(OvmfGuid.SNP_METADATA, new ByteWriter(4).u32(0, offsetFromEnd).bytes),
        entry(OvmfGuid.SEV_KERNEL_HASHES_AREA, area(BUILTIN_LAYOUT.kernelHashesArea)),
        entry(OvmfGuid.SEV_SECRET_AREA, area(BUILTIN_LAYOUT.secretArea)),
        entry(OvmfGuid.SEV_ES_RESET_BLOCK, new ByteWriter(4).u32(0, BUILTIN_LAYOUT.apResetEip).bytes),
      );
      return concat(entries, u16le(entries.length + 18), guidToBytes(OvmfGuid.FOOTER_TABLE));
    };
    const offsetFromEnd = metadata.length + tableWith(0).length + 32;
    const tail = concat(metadata, tableWith(offsetFromEnd), new Uint8Array(32));
    const body = new Uint8Array(BUILTIN_UEFI_SIZE - tail.length);
    const banner = new TextEncoder().encode("ciphervisor emulated UEFI 1.0\0");
    body.set(banner, 0);
    // Deterministic filler: SHA-256 in counter mode, standing for firmware code.
    for (let o = 64, i = 0; o < body.length; o += 32, i++) {
      body.set(sha256(new TextEncoder().encode(`uefi-${i}`)).subarray(0, Math.min(32, body.length - o)), o);
    }
    cached = concat(body, tail);
  }
  return cached.slice();
}
