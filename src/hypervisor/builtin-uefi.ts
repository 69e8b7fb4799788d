/**
 * The small built-in emulated UEFI every VM boots unless it names a real OVMF image. It is a firmware *image* in
 * OVMF's shape — a body and the OVMF footer table at its end (docs/sev-interface.md §8.4) with an SEV-ES AP reset block,
 * a secret area and a kernel-hashes area — so the host loads, measures and injects secrets into it exactly as it
 * does for Debian's `OVMF_CODE.fd`, and a guest owner computes its launch digest with the same tools
 * (`owner measure --firmware <this image>`). `ciphervisor firmware export` writes it to a file.
 *
 * The body is deterministic filler standing for UEFI code: the emulator cannot execute x86 firmware (see
 * `firmware-handoff` in the host for what runs instead).
 */
import { sha256 } from "../crypto/hash.ts";
import { ByteWriter, concat, guidToBytes, u16le } from "../lib/bytes.ts";
import { OvmfGuid } from "../measure/ovmf-footer.ts";

export const BUILTIN_UEFI_SIZE = 64 * 1024;
export const BUILTIN_UEFI_NAME = "builtin-uefi";
/** Same guest-physical layout as the AmdSev OVMF builds (sevctl's tail): AP reset EIP, secret and hashes areas. */
export const BUILTIN_LAYOUT = {
  apResetEip: 0x0080b004,
  secretArea: { base: 0x0080c000, size: 0xc00 },
  kernelHashesArea: { base: 0x0080cc00, size: 0x400 },
} as const;

function entry(guid: string, data: Uint8Array): Uint8Array {
  return concat(data, u16le(data.length + 18), guidToBytes(guid));
}

function area(a: { base: number; size: number }): Uint8Array {
  return new ByteWriter(8).u32(0, a.base).u32(4, a.size).bytes;
}

let cached: Uint8Array | undefined;

/** The image bytes (a fresh copy each call). */
export function builtinUefiImage(): Uint8Array {
  if (!cached) {
    const entries = concat(
      entry(OvmfGuid.SEV_KERNEL_HASHES_AREA, area(BUILTIN_LAYOUT.kernelHashesArea)),
      entry(OvmfGuid.SEV_SECRET_AREA, area(BUILTIN_LAYOUT.secretArea)),
      entry(OvmfGuid.SEV_ES_RESET_BLOCK, new ByteWriter(4).u32(0, BUILTIN_LAYOUT.apResetEip).bytes),
    );
    const table = concat(entries, u16le(entries.length + 18), guidToBytes(OvmfGuid.FOOTER_TABLE));
    const tail = concat(table, new Uint8Array(32));
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
