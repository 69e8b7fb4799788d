/**
 * Boot images for libvirt hosts: placed once per SHA-256 under the host's image directory, rewritten when the file
 * there was changed, and a domain carrying Debian's real OVMF and a direct boot defines on libvirt's test driver.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { sha256 } from "../../../crypto/hash.ts";
import type { LaunchSpec } from "../../../hypervisor/types.ts";
import { toHex } from "../../../lib/bytes.ts";
import { directBootHashes } from "../../../measure/kernel-hashes.ts";
import { hashBootFiles, placeBootFiles } from "./boot-files.ts";
import { domainFacts } from "./domain-state.ts";
import { DEFAULT_DOMAIN_XML_OPTIONS, domainXml } from "./domain-xml.ts";
import { LibvirtDriver, virshOnPath } from "./driver.ts";

const OVMF = "/usr/share/OVMF/OVMF_CODE.fd";
const dir = mkdtempSync(join(tmpdir(), "cv-boot-files-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const kernel = new Uint8Array(4096).fill(3);
const initrd = new Uint8Array(1024).fill(4);
const spec = (name: string, firmware: Uint8Array): LaunchSpec => ({
  name,
  vcpus: 1,
  memoryMiB: 512,
  firmware: { kind: "efi", image: firmware, imageName: "ovmf" },
  hardwareVersion: 19,
  guestOs: "linux-5.19",
  devices: [],
  security: "sev",
  directBoot: { kernel, initrd, cmdline: "console=ttyS0" },
});

describe("libvirt boot files", { skip: existsSync(OVMF) ? false : `${OVMF} not installed` }, () => {
  const ovmf = new Uint8Array(readFileSync(OVMF));

  it("places each image once under its SHA-256, and replaces a file whose bytes were changed", async () => {
    const at = join(dir, "placed");
    const files = await placeBootFiles(at, spec("a", ovmf));
    assert.equal(files.loader, join(at, `${toHex(sha256(ovmf))}.fd`));
    assert.equal(files.kernel, join(at, `${toHex(sha256(kernel))}.kernel`));
    assert.equal(files.initrd, join(at, `${toHex(sha256(initrd))}.initrd`));
    assert.deepEqual(await placeBootFiles(at, spec("b", ovmf)), files);
    assert.equal(readdirSync(at).length, 3, "deduplicated");
    writeFileSync(files.loader ?? "", "tampered");
    await placeBootFiles(at, spec("c", ovmf));
    assert.equal(toHex(sha256(new Uint8Array(readFileSync(files.loader ?? "")))), toHex(sha256(ovmf)));
    assert.deepEqual(
      await placeBootFiles(at, {
        ...spec("d", ovmf),
        firmware: { kind: "efi" },
        directBoot: undefined as never,
      }),
      {},
    );
  });

  it("reports the SHA-256 of the files a domain's XML boots, and nothing it could not read", async () => {
    const at = join(dir, "hashed");
    const s = spec("h", ovmf);
    const xml = domainXml(s, DEFAULT_DOMAIN_XML_OPTIONS, await placeBootFiles(at, s));
    const boot = domainFacts("h", xml).boot;
    assert.equal(boot?.cmdline, "console=ttyS0");
    const images = await hashBootFiles(boot ?? {});
    const h = directBootHashes({ kernel, initrd, cmdline: "console=ttyS0" });
    assert.deepEqual(images, {
      firmware: { name: boot?.loader, sha256: toHex(sha256(ovmf)) },
      kernel: { sha256: toHex(h.kernel) },
      initrd: { sha256: toHex(h.initrd) },
      cmdline: { sha256: toHex(h.cmdline) },
    });
    assert.equal(await hashBootFiles({ loader: join(dir, "missing.fd") }), undefined);
    assert.equal(await hashBootFiles({ ...boot, kernel: join(dir, "missing.kernel") }), undefined);
  });

  it("defines a domain booting them on test:///default", {
    skip: virshOnPath() ? false : "virsh is not installed",
  }, async () => {
    const driver = new LibvirtDriver({ timeoutMs: 10_000, xml: { imageDir: join(dir, "pool") } });
    try {
      const host = await driver.connect("test:///default");
      const d = await host.define(spec("direct-1", ovmf));
      assert.equal(d.power, "defined");
      assert.deepEqual(
        readdirSync(join(dir, "pool", "ciphervisor-boot")).sort(),
        [
          `${toHex(sha256(initrd))}.initrd`,
          `${toHex(sha256(kernel))}.kernel`,
          `${toHex(sha256(ovmf))}.fd`,
        ].sort(),
      );
      await host.undefine("direct-1");
    } finally {
      await driver.close();
    }
  });
});
