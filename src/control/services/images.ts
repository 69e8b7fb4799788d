/**
 * The image catalog: firmware (real OVMF builds), kernels and initrds that VMs boot by name. An upload is checked
 * completely (name, size, what a firmware's footer declares), its bytes stored once per SHA-256, and its record
 * written with its audit record; a delete is refused while a VM boots the image. Before a VM is created, and again
 * before it launches, the images it names must be able to do what it asks: an SEV-ES VM needs a firmware with the
 * SEV-ES AP reset block, a measured direct boot a firmware with a kernel-hashes area (docs/sev-interface.md §8.3,
 * §8.4) — refused with their own codes, never half-launched.
 */
import { CiphervisorError } from "../../errors.ts";
import type { DirectBootSpec, FirmwareSpec } from "../../hypervisor/types.ts";
import { checkImageName, inspectImage } from "../images/inspect.ts";
import type { InventoryScope } from "../inventory/inventory.ts";
import {
  type Actor,
  IMAGE_KINDS,
  type Image,
  type ImageKind,
  type SecurityMode,
  type VmBoot,
  type VmSpec,
} from "../inventory/types.ts";
import { oneOf } from "../inventory/validate.ts";
import type { ControlContext } from "./context.ts";

export interface UploadImageRequest {
  readonly name: string;
  readonly kind: ImageKind;
  readonly bytes: Uint8Array;
}

/** An upload, checked: the facts its record will hold. */
export interface CheckedUpload {
  readonly name: string;
  readonly kind: ImageKind;
  readonly size: number;
  readonly firmware: ReturnType<typeof inspectImage>;
}

function nameTaken(name: string): CiphervisorError {
  return new CiphervisorError(
    "CONFLICT",
    `an image named '${name}' already exists; delete it first or pick another name`,
    {
      details: { image: name },
    },
  );
}

/** Everything an upload checks, without storing anything (the dry run's plan runs exactly this). */
export async function checkUpload(c: ControlContext, req: UploadImageRequest): Promise<CheckedUpload> {
  const name = checkImageName(req.name);
  const kind = oneOf(req.kind, IMAGE_KINDS, "kind");
  const firmware = inspectImage(kind, req.bytes, c.maxImageBytes);
  if (await c.inventory.images.getByName(name)) throw nameTaken(name);
  return { name, kind, size: req.bytes.length, firmware };
}

/**
 * Stores an image: the blob first (atomic, deduplicated), then the record and its audit record in one transaction.
 * When the record cannot be written, a blob this upload created and no record shares is removed again.
 */
export async function uploadImage(c: ControlContext, actor: Actor, req: UploadImageRequest): Promise<Image> {
  const checked = await checkUpload(c, req);
  const blob = await c.blobs.put(req.bytes);
  try {
    return await c.inventory.transaction(async (tx) => {
      const image = await tx.images.create({
        name: checked.name,
        kind: checked.kind,
        sha256: blob.sha256,
        size: checked.size,
        firmware: checked.firmware,
        createdBy: actor.name,
      });
      await tx.audit.append({
        actor,
        action: "image.upload",
        target: image.id,
        outcome: "ok",
        details: {
          name: image.name,
          kind: image.kind,
          sha256: image.sha256,
          size: image.size,
          deduplicated: !blob.created,
        },
      });
      return image;
    });
  } catch (e) {
    if (blob.created && (await c.inventory.images.countBySha256(blob.sha256)) === 0) {
      await c.blobs.delete(blob.sha256);
    }
    if (e instanceof CiphervisorError && e.code === "CONFLICT" && !e.details) throw nameTaken(checked.name);
    throw e;
  }
}

/** An image by name (NOT_FOUND). */
export async function getImage(scope: Pick<InventoryScope, "images">, name: string): Promise<Image> {
  const image = await scope.images.getByName(name);
  if (!image)
    throw new CiphervisorError("NOT_FOUND", `image '${name}' not found`, { details: { image: name } });
  return image;
}

/** IMAGE_IN_USE while some VM boots `image`, naming up to ten of them. */
export async function checkDeleteImage(
  scope: Pick<InventoryScope, "images" | "vms">,
  image: Image,
): Promise<void> {
  const users = await scope.images.usedBy(image.name);
  if (users.length === 0) return;
  const names: string[] = [];
  for (const id of users.slice(0, 10)) names.push((await scope.vms.get(id))?.name ?? id);
  throw new CiphervisorError(
    "IMAGE_IN_USE",
    `image '${image.name}' is booted by ${users.length} VM${users.length === 1 ? "" : "s"} (${names.join(", ")}${users.length > 10 ? ", …" : ""}); change or delete them first`,
    { details: { image: image.name, vms: users.slice(0, 10), count: users.length } },
  );
}

/**
 * Deletes an image record (refused while in use, checked in the same transaction) with its audit record, then its
 * blob once no other name shares it.
 */
export async function deleteImage(c: ControlContext, actor: Actor, name: string): Promise<Image> {
  const image = await c.inventory.transaction(async (tx) => {
    const found = await getImage(tx, name);
    await checkDeleteImage(tx, found);
    await tx.images.delete(found.id);
    await tx.audit.append({
      actor,
      action: "image.delete",
      target: found.id,
      outcome: "ok",
      details: { name: found.name, kind: found.kind, sha256: found.sha256 },
    });
    return found;
  });
  if ((await c.inventory.images.countBySha256(image.sha256)) === 0) await c.blobs.delete(image.sha256);
  return image;
}

/** The image a boot field names, of the kind the field needs (NOT_FOUND, IMAGE_KIND). */
async function bootImage(
  scope: Pick<InventoryScope, "images">,
  name: string,
  kind: ImageKind,
  field: keyof VmBoot,
): Promise<Image> {
  const image = await scope.images.getByName(name);
  if (!image) {
    throw new CiphervisorError(
      "NOT_FOUND",
      `spec.boot.${field}: image '${name}' not found (upload it first)`,
      {
        details: { field: `spec.boot.${field}`, image: name },
      },
    );
  }
  if (image.kind !== kind) {
    throw new CiphervisorError(
      "IMAGE_KIND",
      `spec.boot.${field}: image '${name}' is a ${image.kind} image, not a ${kind} image`,
      { details: { field: `spec.boot.${field}`, image: name, kind: image.kind } },
    );
  }
  return image;
}

/** The catalog images a boot spec names, each checked for its field's kind. */
export interface BootImages {
  readonly firmware?: Image;
  readonly kernel?: Image;
  readonly initrd?: Image;
}

/**
 * Checks that the images `spec.boot` names exist, have the right kinds, and can do what the VM asks in `mode`:
 * INVALID_INPUT for an initrd or command line without a kernel or a boot image on BIOS firmware;
 * SEV_ES_RESET_BLOCK_MISSING for an SEV-ES VM on a firmware without the AP reset block (QEMU cannot start its
 * APs); KERNEL_HASHES_UNSUPPORTED for a measured direct boot on a firmware without a kernel-hashes area (QEMU
 * would have nowhere to put the table the launch digest must cover). The built-in UEFI declares both.
 */
export async function checkBoot(
  scope: Pick<InventoryScope, "images">,
  spec: VmSpec,
  mode: SecurityMode,
): Promise<BootImages> {
  const boot = spec.boot;
  if (boot === undefined) return {};
  const bad = (field: string, message: string): never => {
    throw new CiphervisorError("INVALID_INPUT", `spec.boot.${field}: ${message}`, {
      details: { field: `spec.boot.${field}` },
    });
  };
  if (spec.firmware !== "efi" && (boot.firmwareImage !== undefined || boot.kernel !== undefined)) {
    bad(boot.firmwareImage !== undefined ? "firmwareImage" : "kernel", "boot images need EFI firmware");
  }
  if (boot.kernel === undefined) {
    if (boot.initrd !== undefined) bad("initrd", "an initrd is booted only with a kernel");
    if (boot.cmdline !== undefined) bad("cmdline", "a command line is measured only with a kernel");
  }
  const firmware =
    boot.firmwareImage === undefined
      ? undefined
      : await bootImage(scope, boot.firmwareImage, "firmware", "firmwareImage");
  const kernel =
    boot.kernel === undefined ? undefined : await bootImage(scope, boot.kernel, "kernel", "kernel");
  const initrd =
    boot.initrd === undefined ? undefined : await bootImage(scope, boot.initrd, "initrd", "initrd");
  const facts = firmware?.firmware;
  if (firmware && facts) {
    if (mode === "sev-es" && facts.sevEsResetEip === null) {
      throw new CiphervisorError(
        "SEV_ES_RESET_BLOCK_MISSING",
        `firmware image '${firmware.name}' has no SEV-ES AP reset block in its OVMF footer table; it cannot boot an SEV-ES VM (use an OVMF built with SEV-ES support)`,
        { details: { image: firmware.name, sha256: firmware.sha256 } },
      );
    }
    if (kernel && mode !== "none" && !facts.kernelHashesArea) {
      throw new CiphervisorError(
        "KERNEL_HASHES_UNSUPPORTED",
        `firmware image '${firmware.name}' declares no kernel-hashes area, so a direct kernel boot could not be measured; use an AmdSev OVMF build (or the built-in UEFI)`,
        { details: { image: firmware.name, sha256: firmware.sha256 } },
      );
    }
  }
  return {
    ...(firmware ? { firmware } : {}),
    ...(kernel ? { kernel } : {}),
    ...(initrd ? { initrd } : {}),
  };
}

/**
 * The firmware and direct-boot parts of a VM's launch spec, with the images' bytes read from the blob store (and
 * checked against their SHA-256 there): what the host loads and measures. Without `spec.boot`, the built-in UEFI.
 */
export async function resolveBoot(
  c: ControlContext,
  spec: VmSpec,
  mode: SecurityMode,
): Promise<{ firmware: FirmwareSpec; directBoot?: DirectBootSpec }> {
  if (spec.firmware !== "efi") return { firmware: { kind: "bios" } };
  const images = await checkBoot(c.inventory, spec, mode);
  const firmware: FirmwareSpec = images.firmware
    ? { kind: "efi", image: await c.blobs.get(images.firmware.sha256), imageName: images.firmware.name }
    : { kind: "efi" };
  if (!images.kernel) return { firmware };
  return {
    firmware,
    directBoot: {
      kernel: await c.blobs.get(images.kernel.sha256),
      ...(images.initrd ? { initrd: await c.blobs.get(images.initrd.sha256) } : {}),
      ...(spec.boot?.cmdline === undefined ? {} : { cmdline: spec.boot.cmdline }),
    },
  };
}
