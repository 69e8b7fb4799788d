/**
 * The SEV-SNP secrets page: what the firmware writes into the page the host hands SNP_LAUNCH_UPDATE as a SECRETS page
 * (SNP ABI 56860, the secrets page format table of section 8.17.2; the same layout as Linux's
 * `struct snp_secrets_page`). The page is encrypted with the guest's key like every launch page, so only the guest
 * reads its VMPCKs; the host sees ciphertext.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0x000 | 4 | VERSION |
 * | 0x004 | 4 | bit 0 IMIEN (the guest is an incoming migration image) |
 * | 0x008 | 4 | FMS: family, model, stepping as CPUID Fn0000_0001 EAX |
 * | 0x00C | 4 | reserved |
 * | 0x010 | 16 | GOSVW: guest OS-visible workarounds from SNP_LAUNCH_START |
 * | 0x020 | 32 × 4 | VMPCK0 … VMPCK3: the guest's message keys, one per VMPL |
 * | 0x0A0 | 96 | guest OS area (zero; the guest's own use) |
 * | 0x100 | 64 | VMSA tweak bitmap (zero) |
 * | 0x140 | 32 | SVSM fields (zero: no SVSM) |
 * | 0x160 | 4 | TSC_FACTOR (zero) |
 * | 0x164 | … | reserved to 0x1000 |
 */
import { ByteReader, ByteWriter } from "../../lib/bytes.ts";

export const SECRETS_PAGE_SIZE = 4096;
export const VMPCK_SIZE = 32;
export const SECRETS_LAYOUT = {
  version: 0x000,
  imien: 0x004,
  fms: 0x008,
  gosvw: 0x010,
  vmpck0: 0x020,
  osArea: 0x0a0,
  vmsaTweakBitmap: 0x100,
  tscFactor: 0x160,
} as const;

export interface SecretsPageFields {
  version: number;
  imien: boolean;
  fms: number;
  gosvw: Uint8Array;
  vmpck: readonly Uint8Array[];
}

export function encodeSecretsPage(f: SecretsPageFields): Uint8Array {
  const w = new ByteWriter(SECRETS_PAGE_SIZE)
    .u32(SECRETS_LAYOUT.version, f.version)
    .u32(SECRETS_LAYOUT.imien, f.imien ? 1 : 0)
    .u32(SECRETS_LAYOUT.fms, f.fms)
    .set(SECRETS_LAYOUT.gosvw, f.gosvw);
  f.vmpck.forEach((k, i) => {
    w.set(SECRETS_LAYOUT.vmpck0 + i * VMPCK_SIZE, k);
  });
  return w.bytes;
}

/** The guest's reading of its (decrypted) secrets page. */
export function decodeSecretsPage(page: Uint8Array): SecretsPageFields {
  const r = new ByteReader(page, "SNP secrets page");
  return {
    version: r.u32(SECRETS_LAYOUT.version),
    imien: (r.u32(SECRETS_LAYOUT.imien) & 1) === 1,
    fms: r.u32(SECRETS_LAYOUT.fms),
    gosvw: r.slice(SECRETS_LAYOUT.gosvw, 16),
    vmpck: [0, 1, 2, 3].map((i) => r.slice(SECRETS_LAYOUT.vmpck0 + i * VMPCK_SIZE, VMPCK_SIZE)),
  };
}
