/**
 * The launch digest GCTX.LD, docs/sev-interface.md §8.1:
 *
 * `LD = SHA256(ovmf ‖ [padded kernel-hashes table] ‖ [vmsa_bsp ‖ vmsa_ap × (n − 1)])`
 *
 * It is one running SHA-256 over the plaintext of every LAUNCH_UPDATE_DATA (in call order) and then every
 * LAUNCH_UPDATE_VMSA page (4096 bytes each, in vCPU order). No guest address is hashed, only bytes. QEMU's order is
 * the whole OVMF image, then the 176-byte hashes table when `kernel-hashes=on`, then (SEV-ES) one VMSA per vCPU.
 *
 * {@link LaunchDigest} is the incremental form (what a firmware keeps in its guest context); {@link expectedLaunch}
 * is what a guest owner computes from the images it expects.
 */
import { createHash, type Hash } from "node:crypto";
import { CiphervisorError } from "../errors.ts";
import { buildKernelHashesTable, type DirectBootInput, KERNEL_HASHES_TABLE_SIZE } from "./kernel-hashes.ts";
import { type OvmfFooter, OvmfGuid, parseOvmfFooter, requireSevEsResetEip } from "./ovmf-footer.ts";
import { resetVmsaPages, VMSA_PAGE_SIZE, type VmmProfile } from "./vmsa.ts";

/** Launch modes whose digest this module computes (SNP uses a different, SHA-384 page-info chain). */
export type LaunchMode = "sev" | "sev-es";
export const LAUNCH_MODES: readonly LaunchMode[] = ["sev", "sev-es"];

/**
 * A running launch digest.
 *
 * @example
 * ```ts
 * const ld = new LaunchDigest().updateData(ovmf).updateVmsa(bspPage).digest();
 * ```
 */
export class LaunchDigest {
  private readonly hash: Hash = createHash("sha256");
  private pages = 0;

  /** Extends the digest with the plaintext of one LAUNCH_UPDATE_DATA. */
  updateData(plaintext: Uint8Array): this {
    this.hash.update(plaintext);
    return this;
  }

  /** Extends the digest with one LAUNCH_UPDATE_VMSA page. */
  updateVmsa(page: Uint8Array): this {
    if (page.length !== VMSA_PAGE_SIZE) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `a VMSA page is ${VMSA_PAGE_SIZE} bytes, got ${page.length}`,
      );
    }
    this.hash.update(page);
    this.pages++;
    return this;
  }

  /** How many VMSA pages have been measured. */
  get vmsaCount(): number {
    return this.pages;
  }

  /** The digest so far (32 bytes). The running state is kept, so more data may follow. */
  digest(): Uint8Array {
    return new Uint8Array(this.hash.copy().digest());
  }
}

export interface ExpectedLaunchInput {
  mode: LaunchMode;
  /** The whole OVMF flash image, exactly as the VMM loads it. */
  firmware: Uint8Array;
  /** Measured direct boot (`-kernel` with `kernel-hashes=on`). */
  directBoot?: DirectBootInput | undefined;
  /** SEV-ES: number of vCPUs (default 1). Ignored for plain SEV. */
  vcpus?: number | undefined;
  /** SEV-ES: CPUID(1).EAX of the guest CPU model (QEMU profiles). */
  vcpuSignature?: number | undefined;
  /** SEV-ES: host stack that builds the VMSAs (default `qemu`, i.e. KVM_SEV_INIT2). */
  vmm?: VmmProfile | undefined;
  /** SEV-ES: sev_features written to every VMSA (default 0). */
  sevFeatures?: bigint | undefined;
}

export interface ExpectedLaunch {
  launchDigest: Uint8Array;
  /** The firmware's footer table, when it had to be read (direct boot or SEV-ES). */
  footer?: OvmfFooter;
  /** The 176 measured bytes of the kernel-hashes table, for a direct boot. */
  kernelHashesTable?: Uint8Array;
  /** The measured VMSA pages (SEV-ES), BSP first. */
  vmsaPages: Uint8Array[];
}

/**
 * Everything the guest owner expects the platform to measure, and the resulting launch digest.
 *
 * Plain SEV without a kernel hashes the image alone, so the footer is not even read (any image works). A direct boot
 * needs the firmware's kernel-hashes area and SEV-ES needs its AP reset block; both are reported as clear errors.
 *
 * @example
 * ```ts
 * const { launchDigest } = expectedLaunch({ mode: "sev-es", firmware, vcpus: 4, vcpuSignature: 0x800f12 });
 * ```
 * @throws CiphervisorError INVALID_INPUT (firmware lacks what the launch needs), MALFORMED (corrupt footer table)
 */
export function expectedLaunch(input: ExpectedLaunchInput): ExpectedLaunch {
  if (!LAUNCH_MODES.includes(input.mode)) {
    throw new CiphervisorError("INVALID_INPUT", `launch mode must be one of ${LAUNCH_MODES.join(", ")}`);
  }
  const ld = new LaunchDigest().updateData(input.firmware);
  const needsFooter = input.directBoot !== undefined || input.mode === "sev-es";
  const footer = needsFooter ? parseOvmfFooter(input.firmware) : undefined;
  const out: ExpectedLaunch = { launchDigest: new Uint8Array(), vmsaPages: [] };
  if (footer) out.footer = footer;

  if (input.directBoot && footer) {
    const area = footer.kernelHashesArea;
    // QEMU refuses kernel-hashes=on unless the firmware declares an area big enough for the padded table.
    if (!area || area.size < KERNEL_HASHES_TABLE_SIZE) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `the firmware declares no usable SEV kernel-hashes area (footer GUID ${OvmfGuid.SEV_KERNEL_HASHES_AREA}` +
          `${area ? `, size ${area.size}` : ""}); it cannot measure a direct-boot kernel, initrd and cmdline`,
      );
    }
    out.kernelHashesTable = buildKernelHashesTable(input.directBoot);
    ld.updateData(out.kernelHashesTable);
  }

  if (input.mode === "sev-es" && footer) {
    const vcpus = input.vcpus ?? 1;
    out.vmsaPages = resetVmsaPages({
      vcpus,
      // The reset block is required even for one vCPU: without it the firmware cannot start SEV-ES APs at all.
      apResetEip: requireSevEsResetEip(footer),
      profile: input.vmm ?? "qemu",
      vcpuSignature: input.vcpuSignature,
      sevFeatures: input.sevFeatures,
    });
    for (const page of out.vmsaPages) ld.updateVmsa(page);
  }

  out.launchDigest = ld.digest();
  return out;
}

/** Just the 32-byte launch digest of {@link expectedLaunch}. */
export function computeLaunchDigest(input: ExpectedLaunchInput): Uint8Array {
  return expectedLaunch(input).launchDigest;
}
