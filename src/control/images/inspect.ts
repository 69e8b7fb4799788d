/**
 * What an uploaded image is allowed to be, decided once at upload: its name, its size (at most
 * {@link MAX_IMAGE_BYTES}), and for firmware what its OVMF footer table declares (docs/sev-interface.md §8.4) —
 * so later checks (an SEV-ES VM needs the AP reset block, a measured direct boot the kernel-hashes area) read the
 * catalog record, not the image.
 */
import { CiphervisorError } from "../../errors.ts";
import { KERNEL_HASHES_TABLE_SIZE } from "../../measure/kernel-hashes.ts";
import { parseOvmfFooter } from "../../measure/ovmf-footer.ts";
import type { FirmwareFacts, ImageKind } from "../inventory/types.ts";

/**
 * The largest image the catalog takes: 64 MiB, the firmware limit the hypervisor already enforces (a 4 MiB OVMF
 * fits many times over), and room for a distribution kernel with its initrd.
 */
export const MAX_IMAGE_BYTES = 64 * 1024 * 1024;

/** Image names: like VM names, so they fit in a URL path segment and a spec field without quoting. */
export const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** INVALID_INPUT unless `name` is a valid image name. */
export function checkImageName(name: string): string {
  if (!IMAGE_NAME.test(name)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `image name '${name}' must be 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { details: { field: "name" } },
    );
  }
  return name;
}

/**
 * Checks an image's bytes for its kind and returns, for firmware, what its footer declares.
 *
 * @throws CiphervisorError IMAGE_TOO_LARGE over `limit`; INVALID_INPUT for an empty image; MALFORMED for firmware
 *   that is not whole 16-byte blocks (LAUNCH_UPDATE_DATA measures 16-byte multiples, docs/sev-interface.md §4.3) or
 *   whose footer table is corrupt.
 * @example
 * ```ts
 * inspectImage("firmware", readFileSync("/usr/share/OVMF/OVMF_CODE.fd")).sevEsResetEip; // 0x80b004
 * ```
 */
export function inspectImage(
  kind: ImageKind,
  bytes: Uint8Array,
  limit: number = MAX_IMAGE_BYTES,
): FirmwareFacts | null {
  if (bytes.length > limit) {
    throw new CiphervisorError(
      "IMAGE_TOO_LARGE",
      `the image is ${bytes.length} bytes; the catalog takes images of up to ${limit} bytes`,
      { details: { size: bytes.length, limit } },
    );
  }
  if (bytes.length === 0) {
    throw new CiphervisorError("INVALID_INPUT", "the image is empty", { details: { field: "body" } });
  }
  if (kind !== "firmware") return null;
  if (bytes.length % 16 !== 0) {
    throw new CiphervisorError(
      "MALFORMED",
      `a firmware image is measured in 16-byte blocks; ${bytes.length} bytes is not a multiple of 16`,
    );
  }
  const footer = parseOvmfFooter(bytes);
  return {
    footer: footer.present,
    sevEsResetEip: footer.sevEsResetEip ?? null,
    secretArea: (footer.secretArea?.size ?? 0) > 0,
    // The table QEMU writes is 176 bytes; a smaller (or zero-sized, as in Debian's OVMF_CODE.fd) area cannot take it.
    kernelHashesArea: (footer.kernelHashesArea?.size ?? 0) >= KERNEL_HASHES_TABLE_SIZE,
  };
}
