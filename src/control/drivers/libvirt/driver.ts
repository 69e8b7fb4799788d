/**
 * The libvirt host driver: a host is a libvirt URI (`qemu:///system`, `qemu+ssh://host/system`, and for tests
 * `test:///default`), reached through one long-lived virsh session per URI. Sessions are kept per address so
 * every `connect` of a host shares one connection — the test driver's domains exist only inside it.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import type { DriverHost, HostDriver } from "../driver.ts";
import type { DomainXmlOptions } from "./domain-xml.ts";
import { LibvirtHost } from "./host.ts";
import { checkUri, type VirshOptions, VirshSession } from "./virsh.ts";

export interface LibvirtDriverOptions extends VirshOptions {
  /** Host-side paths and defaults for domain XML (OVMF image, disk directory). */
  readonly xml?: Partial<DomainXmlOptions>;
}

/** True when an executable `virsh` is on PATH (the driver is registered only then). */
export function virshOnPath(path: string = process.env.PATH ?? ""): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, "virsh"), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/**
 * Libvirt hosts through virsh.
 *
 * @example
 * ```ts
 * const driver = new LibvirtDriver();
 * const host = await driver.connect("test:///default");
 * console.log(await host.list());
 * driver.close();
 * ```
 */
export class LibvirtDriver implements HostDriver {
  readonly kind = "libvirt" as const;
  readonly #options: LibvirtDriverOptions;
  readonly #hosts = new Map<string, Promise<LibvirtHost>>();

  constructor(options: LibvirtDriverOptions = {}) {
    this.#options = options;
  }

  /** The host at `uri`, reusing its session while it lives; INVALID_INPUT for a bad URI, IO when unreachable. */
  async connect(address: string): Promise<DriverHost> {
    const uri = checkUri(address);
    const known = this.#hosts.get(uri);
    if (known) {
      const h = await known.catch(() => undefined);
      if (h?.alive) return h;
      this.#hosts.delete(uri);
    }
    const opening = VirshSession.open(uri, this.#options).then((s) => new LibvirtHost(s, this.#options.xml));
    this.#hosts.set(uri, opening);
    try {
      return await opening;
    } catch (e) {
      if (this.#hosts.get(uri) === opening) this.#hosts.delete(uri);
      throw e;
    }
  }

  /** Ends every virsh session (no orphan processes). */
  async close(): Promise<void> {
    const hosts = [...this.#hosts.values()];
    this.#hosts.clear();
    for (const h of hosts) (await h.catch(() => undefined))?.close();
  }
}
