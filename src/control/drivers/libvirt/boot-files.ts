/**
 * Boot images for a libvirt host. libvirt boots files — `<loader>`, `<kernel>`, `<initrd>` are paths on the host —
 * so the bytes a launch spec carries are written once per SHA-256 into a directory the host's QEMU can read, and
 * the domain names that file: what the domain boots is exactly what was hashed, and the same image is stored once
 * however many domains boot it. This works where the driver's files are the host's (a local `qemu:///system`, the
 * test driver); a remote host needs the directory shared.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256 } from "../../../crypto/hash.ts";
import { CiphervisorError } from "../../../errors.ts";
import type { LaunchInputs, LaunchSpec } from "../../../hypervisor/types.ts";
import { toHex } from "../../../lib/bytes.ts";
import { directBootHashes } from "../../../measure/kernel-hashes.ts";
import type { DomainBoot } from "./domain-state.ts";
import type { BootFiles } from "./domain-xml.ts";

/** Writes `bytes` as `dir/<sha256>.<suffix>` unless a file with exactly these bytes is there; returns its path. */
async function place(dir: string, bytes: Uint8Array, suffix: string): Promise<string> {
  const sha = toHex(sha256(bytes));
  const path = join(dir, `${sha}.${suffix}`);
  try {
    if (toHex(sha256(new Uint8Array(await readFile(path)))) === sha) return path;
  } catch {
    // absent: written below
  }
  const tmp = join(dir, `.${sha}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    // World-readable: the host's QEMU runs as its own user. These are boot images, not secrets.
    await writeFile(tmp, bytes, { mode: 0o644 });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new CiphervisorError("IO", `cannot place boot image ${sha} in ${dir}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return path;
}

/** Places the firmware image and direct-boot kernel and initrd a spec carries under `dir`. */
export async function placeBootFiles(dir: string, spec: LaunchSpec): Promise<BootFiles> {
  const loader =
    spec.firmware.kind === "efi" && spec.firmware.image
      ? await place(dir, spec.firmware.image, "fd")
      : undefined;
  const kernel = spec.directBoot ? await place(dir, spec.directBoot.kernel, "kernel") : undefined;
  const initrd = spec.directBoot?.initrd ? await place(dir, spec.directBoot.initrd, "initrd") : undefined;
  return {
    ...(loader ? { loader } : {}),
    ...(kernel ? { kernel } : {}),
    ...(initrd ? { initrd } : {}),
  };
}

async function readable(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch {
    return undefined;
  }
}

/**
 * The SHA-256 of what a domain boots, read from the files its XML names: the loader, and for a direct boot the
 * kernel-hashes entries QEMU measures (the cmdline with its NUL; an absent initrd as the hash of nothing,
 * docs/sev-interface.md §8.3). Undefined when the loader (or a named kernel or initrd) cannot be read here — a
 * remote host's files — so nothing is reported that was not hashed.
 */
export async function hashBootFiles(boot: DomainBoot): Promise<LaunchInputs["images"] | undefined> {
  if (!boot.loader) return undefined;
  const loader = await readable(boot.loader);
  if (!loader) return undefined;
  const images: LaunchInputs["images"] = { firmware: { name: boot.loader, sha256: toHex(sha256(loader)) } };
  if (!boot.kernel) return images;
  const kernel = await readable(boot.kernel);
  const initrd = boot.initrd === undefined ? undefined : await readable(boot.initrd);
  if (!kernel || (boot.initrd !== undefined && !initrd)) return undefined;
  const h = directBootHashes({
    kernel,
    ...(initrd ? { initrd } : {}),
    ...(boot.cmdline === undefined ? {} : { cmdline: boot.cmdline }),
  });
  images.kernel = { sha256: toHex(h.kernel) };
  images.initrd = { sha256: toHex(h.initrd) };
  images.cmdline = { sha256: toHex(h.cmdline) };
  return images;
}
