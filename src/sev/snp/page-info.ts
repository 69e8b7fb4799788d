/**
 * The firmware's own launch digest: the SHA-384 chain SNP_LAUNCH_UPDATE extends with one PAGE_INFO per 4 KiB page
 * it is given (SNP ABI 56860, section 8.17 SNP_LAUNCH_UPDATE, PAGE_INFO in section 8.17.2; docs/sev-interface.md
 * §14 "Launch digest"). It is written apart from the guest owner's `measure/snp-launch-digest.ts` on purpose: the
 * firmware computes the digest from the pages it encrypts, the owner from the images it expects, and a test checks
 * that the two agree.
 *
 * | offset | size | PAGE_INFO field |
 * |---|---|---|
 * | 0x00 | 48 | DIGEST_CUR (48 zero bytes before the first page) |
 * | 0x30 | 48 | CONTENTS: SHA-384 of the page for NORMAL and VMSA, zero for ZERO, UNMEASURED, SECRETS, CPUID |
 * | 0x60 | 2 | LENGTH = 0x70 |
 * | 0x62 | 1 | PAGE_TYPE |
 * | 0x63 | 1 | IMI_PAGE (bit 0) |
 * | 0x64 | 1 | VMPL3_PERMS |
 * | 0x65 | 1 | VMPL2_PERMS |
 * | 0x66 | 1 | VMPL1_PERMS |
 * | 0x67 | 1 | reserved, 0 |
 * | 0x68 | 8 | GPA |
 */
import { sha384 } from "../../crypto/hash.ts";
import { ByteWriter } from "../../lib/bytes.ts";

/** PAGE_TYPE of SNP_LAUNCH_UPDATE. */
export const SnpLaunchPageType = {
  NORMAL: 1,
  VMSA: 2,
  ZERO: 3,
  UNMEASURED: 4,
  SECRETS: 5,
  CPUID: 6,
} as const;
export type SnpLaunchPageTypeName = keyof typeof SnpLaunchPageType;
export type SnpLaunchPageTypeValue = (typeof SnpLaunchPageType)[SnpLaunchPageTypeName];

export function snpPageTypeName(v: number): SnpLaunchPageTypeName | undefined {
  const e = Object.entries(SnpLaunchPageType).find(([, n]) => n === v);
  return e?.[0] as SnpLaunchPageTypeName | undefined;
}

export const PAGE_INFO_SIZE = 0x70;
export const LD_SIZE = 48;

export interface PageInfoFields {
  pageType: SnpLaunchPageTypeValue;
  /** SHA-384 of the page (NORMAL, VMSA) or undefined for zero contents. */
  contents: Uint8Array | undefined;
  gpa: bigint;
  imi: boolean;
  /** VMPL1, VMPL2, VMPL3 permissions, in that order (written highest VMPL first, as the table says). */
  vmplPerms: readonly [number, number, number];
}

/** One guest context's launch digest (GCTX.LD). */
export class FirmwareLaunchDigest {
  #ld: Uint8Array = new Uint8Array(LD_SIZE);

  /** LD' = SHA-384(PAGE_INFO(LD, page)). */
  extend(p: PageInfoFields): void {
    const w = new ByteWriter(PAGE_INFO_SIZE);
    w.set(0x00, this.#ld);
    if (p.contents) w.set(0x30, p.contents);
    w.u16(0x60, PAGE_INFO_SIZE)
      .u8(0x62, p.pageType)
      .u8(0x63, p.imi ? 1 : 0)
      .u8(0x64, p.vmplPerms[2])
      .u8(0x65, p.vmplPerms[1])
      .u8(0x66, p.vmplPerms[0])
      .u64(0x68, p.gpa);
    this.#ld = sha384(w.bytes);
  }

  get value(): Uint8Array {
    return this.#ld.slice();
  }
}
