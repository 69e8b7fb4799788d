/**
 * Real damage to real SQLite inventories, for the store-check tests: a page overwritten, the file cut short, the
 * file made read-only.
 *
 * Read-only as root: tests run as root, whom `chmod` does not stop. The file gets the immutable attribute
 * (`chattr +i`, ext4/xfs/btrfs), which the kernel enforces against root too — the same refusal (EPERM) a read-only
 * mount or a service user without write permission meets. Non-root runs use `chmod 0444`. `restoreWritable` undoes
 * either, so a temp directory can be removed.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, openSync, readSync, statSync, truncateSync, writeSync } from "node:fs";
import { linuxSpec } from "../../testing/control-fixture.ts";
import type { Inventory } from "../inventory.ts";
import { openInventory } from "../open.ts";

/**
 * Creates an inventory at `path` with `vms` VMs and closes it cleanly (checkpointed: no -wal left), so the
 * main file alone holds every page.
 */
export async function populatedStore(path: string, vms = 3000): Promise<void> {
  const inventory: Inventory = await openInventory(path);
  try {
    const rows = Array.from({ length: vms }, (_, i) => ({
      name: `vm-${String(i).padStart(5, "0")}`,
      spec: linuxSpec,
      labels: { team: `t${i % 7}` },
    }));
    for (let i = 0; i < rows.length; i += 500) await inventory.vms.createMany(rows.slice(i, i + 500));
  } finally {
    await inventory.close();
  }
}

function pageSize(path: string): number {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(2);
    readSync(fd, b, 0, 2, 16);
    const raw = b.readUInt16BE(0);
    return raw === 1 ? 65536 : raw;
  } finally {
    closeSync(fd);
  }
}

/** Overwrites the middle third of the file's pages (b-tree pages of the VM rows) with a byte pattern. */
export function corruptPages(path: string): void {
  const size = pageSize(path);
  const pages = statSync(path).size / size;
  const garbage = Buffer.alloc(size, 0xa5);
  const fd = openSync(path, "r+");
  try {
    for (let p = Math.floor(pages / 3); p < Math.floor((2 * pages) / 3); p++)
      writeSync(fd, garbage, 0, size, p * size);
  } finally {
    closeSync(fd);
  }
}

/** Cuts the file to half its pages, as a copy that ran out of space would. */
export function truncateStore(path: string): void {
  const size = pageSize(path);
  const pages = statSync(path).size / size;
  truncateSync(path, Math.floor(pages / 2) * size);
}

const isRoot = process.getuid?.() === 0;

/** Makes `path` unwritable even for root (see above). Throws when the file system has no immutable attribute. */
export function makeReadOnly(path: string): void {
  if (isRoot) execFileSync("chattr", ["+i", path], { stdio: "pipe" });
  else chmodSync(path, 0o444);
}

/** Undoes `makeReadOnly` (ignores files that are gone). */
export function restoreWritable(path: string): void {
  try {
    if (isRoot) execFileSync("chattr", ["-i", path], { stdio: "pipe" });
    else chmodSync(path, 0o644);
  } catch {
    // Already removed, or never made read-only.
  }
}
