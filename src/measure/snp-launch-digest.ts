/**
 * The SEV-SNP launch digest, docs/sev-interface.md §14.1: what the firmware reports as MEASUREMENT in the attestation
 * report, computed the way a guest owner does it from the images it expects (virtee/sev-snp-measure's `snp` mode).
 *
 * The digest is a SHA-384 chain over one PAGE_INFO structure per 4 KiB page handed to SNP_LAUNCH_UPDATE (SEV-SNP
 * Firmware ABI Specification #56860, section 8.17 SNP_LAUNCH_UPDATE; PAGE_INFO is Table 67 in section 8.17.2):
 *
 * | offset | size | PAGE_INFO field |
 * |--------|------|-----------------|
 * | 0x00 | 48 | DIGEST_CUR: the launch digest so far (48 zero bytes before the first page) |
 * | 0x30 | 48 | CONTENTS: SHA-384 of the page for NORMAL and VMSA pages, zero for every other type |
 * | 0x60 | 2  | u16 LENGTH = 0x70 |
 * | 0x62 | 1  | PAGE_TYPE: NORMAL 1, VMSA 2, ZERO 3, UNMEASURED 4, SECRETS 5, CPUID 6 |
 * | 0x63 | 1  | IMI_PAGE: 0 (not an incoming-migration image page) |
 * | 0x64 | 3  | VMPL3, VMPL2, VMPL1 permissions: 0 each (a launch without VMPLs) |
 * | 0x67 | 1  | reserved, 0 |
 * | 0x68 | 8  | u64 GPA of the page |
 *
 * and the new digest is `SHA-384(PAGE_INFO)`. Unlike SEV's (§8.1), it binds each page's address and type.
 *
 * QEMU's order, which {@link expectedSnpLaunch} follows:
 * 1. the whole OVMF image as NORMAL pages, at `4 GiB − image size` upwards (or start from a precomputed digest of
 *    exactly that, {@link snpOvmfHash});
 * 2. each section of the OVMF SEV metadata in block order (`ovmf-sev-metadata.ts`): SNP_SEC_MEM as ZERO pages
 *    (UNMEASURED on GCE), SNP_SECRETS as a SECRETS page, CPUID as a CPUID page (EC2 measures the CPUID pages after
 *    every other section), SVSM_CAA as ZERO pages, SNP_KERNEL_HASHES as one NORMAL page carrying the padded
 *    kernel-hashes table (§8.3) at the offset of the footer's hashes area within its page — or as a ZERO page when no
 *    kernel is measured;
 * 3. one VMSA page per vCPU (BSP first, then the AP page), all at GPA 0xFFFFFFFFF000: KVM records VMSAs under GPA
 *    −1, which the firmware sees page aligned with bits 63:52 clear.
 *
 * The VMSAs are the SEV-ES reset state of §12.2 (`vmsa.ts`) with sev_features = the guest features (bit 0 SNPActive,
 * bit 5 DebugSwap: 0x1 and 0x21 in the public vectors) and the VMM's register quirks.
 */
import { createHash } from "node:crypto";
import { CiphervisorError } from "../errors.ts";
import { ByteWriter } from "../lib/bytes.ts";
import {
  type DirectBootInput,
  directBootHashes,
  encodeKernelHashesTable,
  KERNEL_HASHES_TABLE_SIZE,
} from "./kernel-hashes.ts";
import { type OvmfFooter, OvmfGuid, parseOvmfFooter } from "./ovmf-footer.ts";
import { requireSevMetadata, type SevMetadata, type SevMetadataSection } from "./ovmf-sev-metadata.ts";
import { resetVmsaPages, VMSA_PAGE_SIZE, type VmmProfile } from "./vmsa.ts";

/** PAGE_TYPE values of SNP_LAUNCH_UPDATE (SNP ABI #56860 section 8.17.2). */
export const SnpPageType = {
  NORMAL: 1,
  VMSA: 2,
  ZERO: 3,
  UNMEASURED: 4,
  SECRETS: 5,
  CPUID: 6,
} as const;
export type SnpPageTypeValue = (typeof SnpPageType)[keyof typeof SnpPageType];

/** The launch digest is a SHA-384 value. */
export const SNP_LAUNCH_DIGEST_SIZE = 48;
/** Size of PAGE_INFO, also its LENGTH field. */
export const SNP_PAGE_INFO_SIZE = 0x70;
/** The GPA every VMSA page is measured at. */
export const SNP_VMSA_GPA = 0xfffffffff000;
const PAGE_SIZE = 4096;
const FOUR_GIB = 2 ** 32;
/** GPAs are at most 52 bits. */
const MAX_GPA = 2 ** 52;
const ZERO_CONTENTS = new Uint8Array(SNP_LAUNCH_DIGEST_SIZE);

function sha384(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha384").update(data).digest());
}

function checkGpa(gpa: number, what: string): void {
  if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % PAGE_SIZE !== 0 || gpa >= MAX_GPA) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${what}: a GPA is a page-aligned address below 2^52, got ${gpa}`,
    );
  }
}

function checkLength(length: number, what: string): void {
  if (!Number.isSafeInteger(length) || length <= 0 || length % PAGE_SIZE !== 0) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${what}: SNP_LAUNCH_UPDATE takes whole 4 KiB pages, got ${length} bytes`,
    );
  }
}

export interface SnpPageInfo {
  /** DIGEST_CUR, 48 bytes. */
  digest: Uint8Array;
  /** CONTENTS, 48 bytes. */
  contents: Uint8Array;
  pageType: SnpPageTypeValue;
  gpa: number;
}

/** Encodes one 0x70-byte PAGE_INFO (SNP ABI #56860 section 8.17.2, Table 67); IMI, reserved and VMPL permissions are zero. */
export function encodeSnpPageInfo(p: SnpPageInfo): Uint8Array {
  if (p.digest.length !== SNP_LAUNCH_DIGEST_SIZE || p.contents.length !== SNP_LAUNCH_DIGEST_SIZE) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `PAGE_INFO digest and contents are ${SNP_LAUNCH_DIGEST_SIZE} bytes each, got ${p.digest.length} and ${p.contents.length}`,
    );
  }
  checkGpa(p.gpa, "PAGE_INFO");
  return new ByteWriter(SNP_PAGE_INFO_SIZE)
    .set(0x00, p.digest)
    .set(0x30, p.contents)
    .u16(0x60, SNP_PAGE_INFO_SIZE)
    .u8(0x62, p.pageType)
    .u64(0x68, BigInt(p.gpa)).bytes;
}

/**
 * A running SEV-SNP launch digest, one SNP_LAUNCH_UPDATE page at a time (what the firmware keeps in its guest
 * context).
 *
 * @example
 * ```ts
 * const ld = new SnpLaunchDigest().normalPages(0xffff_f000, ovmf).secretsPage(0x80d000).digest();
 * ```
 */
export class SnpLaunchDigest {
  private ld: Uint8Array;
  private pages = 0;

  /** @param seed a digest to continue from (e.g. a precomputed OVMF digest); 48 zero bytes by default. */
  constructor(seed: Uint8Array = ZERO_CONTENTS) {
    if (seed.length !== SNP_LAUNCH_DIGEST_SIZE) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `an SNP launch digest is ${SNP_LAUNCH_DIGEST_SIZE} bytes, got ${seed.length}`,
      );
    }
    this.ld = seed.slice();
  }

  /** Extends the digest with one PAGE_INFO. */
  update(pageType: SnpPageTypeValue, gpa: number, contents: Uint8Array = ZERO_CONTENTS): this {
    this.ld = sha384(encodeSnpPageInfo({ digest: this.ld, contents, pageType, gpa }));
    this.pages++;
    return this;
  }

  /** NORMAL pages: each 4 KiB page of `data` at `gpa`, `gpa + 4096`, … with the page's SHA-384 as contents. */
  normalPages(gpa: number, data: Uint8Array): this {
    checkLength(data.length, "NORMAL pages");
    for (let off = 0; off < data.length; off += PAGE_SIZE) {
      this.update(SnpPageType.NORMAL, gpa + off, sha384(data.subarray(off, off + PAGE_SIZE)));
    }
    return this;
  }

  /** One VMSA page, at {@link SNP_VMSA_GPA}. */
  vmsaPage(page: Uint8Array): this {
    if (page.length !== VMSA_PAGE_SIZE) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `a VMSA page is ${VMSA_PAGE_SIZE} bytes, got ${page.length}`,
      );
    }
    return this.update(SnpPageType.VMSA, SNP_VMSA_GPA, sha384(page));
  }

  /** ZERO pages: `length` bytes from `gpa`, zero contents. */
  zeroPages(gpa: number, length: number): this {
    return this.emptyPages(SnpPageType.ZERO, gpa, length);
  }

  /** UNMEASURED pages: `length` bytes from `gpa`, zero contents. */
  unmeasuredPages(gpa: number, length: number): this {
    return this.emptyPages(SnpPageType.UNMEASURED, gpa, length);
  }

  /** The SECRETS page (its contents are the firmware's, never measured). */
  secretsPage(gpa: number): this {
    return this.update(SnpPageType.SECRETS, gpa);
  }

  /** The CPUID page (the firmware checks its contents; they are not measured). */
  cpuidPage(gpa: number): this {
    return this.update(SnpPageType.CPUID, gpa);
  }

  /** How many PAGE_INFOs have been measured. */
  get pageCount(): number {
    return this.pages;
  }

  /** The digest so far (48 bytes). */
  digest(): Uint8Array {
    return this.ld.slice();
  }

  private emptyPages(type: SnpPageTypeValue, gpa: number, length: number): this {
    checkLength(length, "pages");
    for (let off = 0; off < length; off += PAGE_SIZE) this.update(type, gpa + off);
    return this;
  }
}

/** sev-snp-measure's VMM types (`--vmm-type`), as it spells them. */
export type SnpVmmType = "QEMU" | "ec2" | "gce";
export const SNP_VMM_TYPES: readonly SnpVmmType[] = ["QEMU", "ec2", "gce"];
/** The VMSA profile (`vmsa.ts`) of each VMM type: SNP always goes through KVM_SEV_INIT2, so QEMU is `qemu`. */
const VMSA_PROFILE: Readonly<Record<SnpVmmType, VmmProfile>> = { QEMU: "qemu", ec2: "ec2", gce: "gce" };
/** sev-snp-measure's default `--guest-features`: SNPActive only. */
export const DEFAULT_SNP_GUEST_FEATURES = 0x1n;

/** Where QEMU maps a firmware image for SEV-SNP: its last byte at 4 GiB − 1. */
export function snpFirmwareGpa(firmware: Uint8Array): number {
  if (firmware.length === 0 || firmware.length % PAGE_SIZE !== 0 || firmware.length > FOUR_GIB) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `an SEV-SNP firmware image is measured in whole 4 KiB pages below 4 GiB; this one is ${firmware.length} bytes`,
    );
  }
  return FOUR_GIB - firmware.length;
}

/**
 * The digest after the firmware's NORMAL pages alone: sev-snp-measure's `snp:ovmf-hash`, a seed for
 * {@link ExpectedSnpLaunchInput.ovmfHash}.
 */
export function snpOvmfHash(firmware: Uint8Array): Uint8Array {
  return new SnpLaunchDigest().normalPages(snpFirmwareGpa(firmware), firmware).digest();
}

export interface ExpectedSnpLaunchInput {
  /** The whole OVMF image as the VMM loads it (its footer and SEV metadata are always read). */
  firmware: Uint8Array;
  /** A precomputed {@link snpOvmfHash}: the image's pages are then not hashed again. */
  ovmfHash?: Uint8Array | undefined;
  /** Measured direct boot (`-kernel` with `kernel-hashes=on`). */
  directBoot?: DirectBootInput | undefined;
  /** Number of vCPUs (default 1). */
  vcpus?: number | undefined;
  /** CPUID(1).EAX of the guest CPU model; required for QEMU (it lands in RDX), ignored by EC2 and GCE. */
  vcpuSignature?: number | undefined;
  /** Default QEMU. */
  vmmType?: SnpVmmType | undefined;
  /** sev_features of every VMSA, a u64 (default {@link DEFAULT_SNP_GUEST_FEATURES}). */
  guestFeatures?: bigint | undefined;
}

export interface ExpectedSnpLaunch {
  /** The 48-byte launch digest (the attestation report's MEASUREMENT). */
  launchDigest: Uint8Array;
  /** The digest after the firmware pages: computed, or the one given. */
  ovmfHash: Uint8Array;
  /** Where the firmware is mapped. */
  firmwareGpa: number;
  footer: OvmfFooter;
  metadata: SevMetadata;
  /** The measured kernel-hashes page, for a direct boot. */
  kernelHashesPage?: Uint8Array;
  /** The measured VMSA pages, BSP first. */
  vmsaPages: Uint8Array[];
  /** How many PAGE_INFOs follow the firmware pages. */
  pagesAfterFirmware: number;
}

function onePage(s: SevMetadataSection): void {
  if (s.size !== PAGE_SIZE) {
    throw new CiphervisorError(
      "MALFORMED",
      `OVMF SEV metadata: the ${s.name} section at GPA 0x${s.gpa.toString(16)} is ${s.size} bytes; it must be one 4 KiB page`,
    );
  }
}

/** The SNP_KERNEL_HASHES page: the padded table at the hashes area's offset within the page, zeros elsewhere. */
function kernelHashesPage(
  footer: OvmfFooter,
  section: SevMetadataSection,
  boot: DirectBootInput,
): Uint8Array {
  const area = footer.kernelHashesArea;
  const offset = area ? area.base % PAGE_SIZE : 0;
  if (!area || area.size < KERNEL_HASHES_TABLE_SIZE || offset + KERNEL_HASHES_TABLE_SIZE > PAGE_SIZE) {
    throw new CiphervisorError(
      "KERNEL_HASHES_UNSUPPORTED",
      `the firmware declares no usable SEV kernel-hashes area (footer GUID ${OvmfGuid.SEV_KERNEL_HASHES_AREA}` +
        `${area ? `, base 0x${area.base.toString(16)} size ${area.size}` : ""}); it cannot measure a direct-boot kernel, initrd and cmdline`,
    );
  }
  onePage(section);
  const page = new Uint8Array(PAGE_SIZE);
  page.set(encodeKernelHashesTable(directBootHashes(boot)), offset);
  return page;
}

/**
 * Everything a guest owner expects an SEV-SNP launch to measure, and the resulting launch digest — the value the
 * attestation report's MEASUREMENT must equal. Reproduces virtee/sev-snp-measure `--mode snp` (and
 * `--snp-ovmf-hash`) for the QEMU, EC2 and GCE VMM types.
 *
 * @example
 * ```ts
 * const { launchDigest } = expectedSnpLaunch({ firmware, vcpus: 4, vcpuSignature: 0x800f12, guestFeatures: 0x21n });
 * ```
 * @throws CiphervisorError SEV_METADATA_MISSING (no SEV metadata: QEMU refuses to launch it), SEV_ES_RESET_BLOCK_MISSING
 *   (no AP reset block), KERNEL_HASHES_UNSUPPORTED (a direct boot on a firmware without an SNP_KERNEL_HASHES section
 *   or hashes area), MALFORMED (footer or metadata), INVALID_INPUT (vCPUs, features, signature, sizes)
 */
export function expectedSnpLaunch(input: ExpectedSnpLaunchInput): ExpectedSnpLaunch {
  const vmmType = input.vmmType ?? "QEMU";
  if (!SNP_VMM_TYPES.includes(vmmType)) {
    throw new CiphervisorError("INVALID_INPUT", `the VMM type must be one of ${SNP_VMM_TYPES.join(", ")}`);
  }
  const guestFeatures = input.guestFeatures ?? DEFAULT_SNP_GUEST_FEATURES;
  if (guestFeatures < 0n || guestFeatures >= 1n << 64n) {
    throw new CiphervisorError("INVALID_INPUT", `guest features are a u64, got ${guestFeatures}`);
  }
  const footer = parseOvmfFooter(input.firmware);
  const metadata = requireSevMetadata(input.firmware, footer);
  if (footer.sevEsResetEip === undefined) {
    throw new CiphervisorError(
      "SEV_ES_RESET_BLOCK_MISSING",
      `the firmware's footer table has no SEV-ES reset block (GUID ${OvmfGuid.SEV_ES_RESET_BLOCK}); SEV-SNP starts its APs there`,
    );
  }
  const kernelSection = metadata.sections.find((s) => s.name === "SNP_KERNEL_HASHES");
  if (input.directBoot && !kernelSection) {
    throw new CiphervisorError(
      "KERNEL_HASHES_UNSUPPORTED",
      "the firmware's SEV metadata has no SNP_KERNEL_HASHES section; it cannot measure a direct-boot kernel, initrd and cmdline under SEV-SNP",
    );
  }
  const firmwareGpa = snpFirmwareGpa(input.firmware);
  // Build the VMSAs before hashing anything, so a bad vCPU count or signature fails fast.
  const vmsaPages = resetVmsaPages({
    vcpus: input.vcpus ?? 1,
    apResetEip: footer.sevEsResetEip,
    profile: VMSA_PROFILE[vmmType],
    vcpuSignature: input.vcpuSignature,
    sevFeatures: guestFeatures,
  });

  const ovmfHash = input.ovmfHash ?? snpOvmfHash(input.firmware);
  const ld = new SnpLaunchDigest(ovmfHash);
  const out: ExpectedSnpLaunch = {
    launchDigest: new Uint8Array(),
    ovmfHash: ovmfHash.slice(),
    firmwareGpa,
    footer,
    metadata,
    vmsaPages,
    pagesAfterFirmware: 0,
  };

  for (const s of metadata.sections) {
    switch (s.name) {
      case "SNP_SEC_MEM":
        if (vmmType === "gce") ld.unmeasuredPages(s.gpa, s.size);
        else ld.zeroPages(s.gpa, s.size);
        break;
      case "SNP_SECRETS":
        onePage(s);
        ld.secretsPage(s.gpa);
        break;
      case "CPUID":
        onePage(s);
        if (vmmType !== "ec2") ld.cpuidPage(s.gpa);
        break;
      case "SVSM_CAA":
        ld.zeroPages(s.gpa, s.size);
        break;
      case "SNP_KERNEL_HASHES":
        if (input.directBoot) {
          out.kernelHashesPage = kernelHashesPage(footer, s, input.directBoot);
          ld.normalPages(s.gpa, out.kernelHashesPage);
        } else {
          ld.zeroPages(s.gpa, s.size);
        }
        break;
    }
  }
  // EC2 measures the CPUID pages after every other metadata section.
  if (vmmType === "ec2") {
    for (const s of metadata.sections) if (s.name === "CPUID") ld.cpuidPage(s.gpa);
  }
  for (const page of vmsaPages) ld.vmsaPage(page);

  out.pagesAfterFirmware = ld.pageCount;
  out.launchDigest = ld.digest();
  return out;
}

/** Just the 48-byte launch digest of {@link expectedSnpLaunch}. */
export function computeSnpLaunchDigest(input: ExpectedSnpLaunchInput): Uint8Array {
  return expectedSnpLaunch(input).launchDigest;
}
