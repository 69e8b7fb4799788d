/**
 * The attested launch of catalog images, end to end through the CLI against a listening API: Debian's real
 * `OVMF_CODE.fd` (package `ovmf`) uploaded with `image upload` and booted as SEV-ES with two vCPUs, and a measured
 * direct boot (kernel, initrd, command line) on the built-in UEFI. In both, `owner measure` run with only what
 * `vm launch-measurement` printed (the owner's own copies standing in for the placeholders) gives the digest the
 * host measured. A tampered image is measured as what it is: the owner's check fails, and a secret bound to the
 * expected measurement is refused by the firmware (BAD_MEASUREMENT), the VM staying paused. Unsuitable images
 * and deleting an image in use are refused with their codes.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ExitCode } from "../../src/cli/exit-codes.ts";
import {
  type CliResult,
  type CliServer,
  oneLineError,
  startCliServer,
} from "../../src/cli/testing/cli-server.ts";
import { sha256 } from "../../src/crypto/hash.ts";
import { builtinUefiImage } from "../../src/hypervisor/builtin-uefi.ts";
import { toHex } from "../../src/lib/bytes.ts";

const OVMF = "/usr/share/OVMF/OVMF_CODE.fd";
const present = existsSync(OVMF);
if (!present && process.env["CI"] === "true") throw new Error(`${OVMF} missing: install the 'ovmf' package`);

let s: CliServer & { close(): Promise<void> };
let dir: string;
before(async () => {
  s = await startCliServer();
  dir = mkdtempSync(join(tmpdir(), "cv-image-e2e-"));
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

function ok(r: CliResult): string {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.err}`);
  return r.out;
}

function fails(r: CliResult, exit: number, code: string): void {
  assert.equal(r.code, exit, `exit code (stderr: ${r.err})`);
  assert.ok(oneLineError(r.err, code), `one-line ${code} error expected, got: ${r.err}`);
}

function parseFields(out: string): Map<string, string> {
  return new Map(
    out
      .split("\n")
      .filter((l) => l.includes(":"))
      .map((l) => {
        const i = l.indexOf(":");
        return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
      }),
  );
}

function file(name: string, bytes: Uint8Array | string): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

/** Session → paused launch of `vm` (created already); returns the launch-measurement report and the owner's files. */
async function pausedLaunch(vm: string, host: string) {
  const certs = join(dir, `certs-${vm}`);
  ok(await s.cli("attestation-reader", "host", "sev-info", host, "--out", certs));
  const policy = `0x${(await s.vms()).get(vm)?.policy.toString(16)}`;
  ok(
    await s.cli(
      null,
      "owner",
      "session",
      "--pdh",
      join(certs, "pdh.cert"),
      "--policy",
      policy,
      "--name",
      vm,
      "--out",
      dir,
    ),
  );
  ok(
    await s.cli(
      "attestation-admin",
      "vm",
      "launch-session",
      vm,
      "--godh",
      join(dir, `${vm}_godh.b64`),
      "--session",
      join(dir, `${vm}_session.b64`),
    ),
  );
  ok(await s.cli("operator", "vm", "start", vm));
  assert.equal((await s.vms()).get(vm)?.powerState, "paused");
  const r = await s.cli("attestation-reader", "vm", "launch-measurement", vm);
  const fields = parseFields(ok(r));
  const line = r.out.split("\n").find((l) => l.startsWith("ciphervisor owner measure "));
  assert.ok(line, r.out);
  return { fields, line, tik: join(dir, `${vm}_tik.bin`), tek: join(dir, `${vm}_tek.bin`) };
}

/** Runs the printed `owner measure` line with the owner's files for the placeholders. */
async function ownerMeasure(
  line: string,
  files: Record<string, string>,
  extra: string[] = [],
): Promise<string> {
  const args = line
    .split(" ")
    .slice(1)
    .map((w) => files[w] ?? w);
  return ok(await s.cli(null, ...args, ...extra)).trim();
}

async function hostDigest(host: string, vm: string): Promise<string | undefined> {
  const id = (await s.vms()).get(vm)?.id ?? "";
  return (await (await s.driver.connect(host)).status(id))?.launchDigest;
}

describe("catalog images, attested end to end", { skip: present ? false : `${OVMF} not installed` }, () => {
  const ovmf = present ? new Uint8Array(readFileSync(OVMF)) : new Uint8Array();
  let ownerOvmf = "";

  it("Debian's OVMF as SEV-ES: the owner's digest from the report equals the host's; a tampered image gets no secret", async () => {
    await s.host("rome-img", "rome");
    ownerOvmf = file("owner-ovmf.fd", ovmf);
    const up = parseFields(
      ok(await s.cli("admin", "image", "upload", "ovmf", "--kind", "firmware", "--file", OVMF)),
    );
    assert.equal(up.get("sha256"), toHex(sha256(ovmf)));
    assert.match(up.get("sev-es-reset-block") ?? "", /^yes \(AP reset EIP 0x80b004\)/);
    assert.match(
      ok(await s.cli("viewer", "image", "list")),
      new RegExp(`ovmf +firmware +${ovmf.length} +${up.get("sha256")}`),
    );
    fails(
      await s.cli("operator", "image", "upload", "x", "--kind", "kernel", "--file", OVMF),
      ExitCode.AUTH,
      "FORBIDDEN",
    );

    ok(
      await s.cli(
        "all",
        "vm",
        "create",
        "es-ovmf",
        "--guest-os",
        "linux-5.19",
        "--sev-es",
        "on",
        "--vcpus",
        "2",
        "--firmware-image",
        "ovmf",
        "--host",
        "rome-img",
      ),
    );
    const { fields, line } = await pausedLaunch("es-ovmf", "rome-img");
    assert.equal(fields.get("firmware"), `ovmf sha256 ${toHex(sha256(ovmf))}`);
    const digest = await ownerMeasure(line, { FIRMWARE: ownerOvmf });
    assert.equal(
      digest,
      await hostDigest("rome-img", "es-ovmf"),
      "`owner measure` reproduces the host's digest",
    );

    // The image a VM boots cannot go.
    fails(await s.cli("admin", "image", "delete", "ovmf"), ExitCode.REFUSED, "IMAGE_IN_USE");
    // Debian's OVMF has no kernel-hashes area: a measured direct boot on it is refused before anything launches.
    ok(await s.cli("admin", "image", "upload", "k1", "--kind", "kernel", "--file", file("k1", "kernel")));
    fails(
      await s.cli(
        "all",
        "vm",
        "create",
        "no-hashes",
        "--guest-os",
        "linux-5.19",
        "--sev",
        "on",
        "--firmware-image",
        "ovmf",
        "--kernel",
        "k1",
      ),
      ExitCode.REFUSED,
      "KERNEL_HASHES_UNSUPPORTED",
    );

    // Debian's OVMF_CODE.fd declares no (sized) secret area either, so the tampered launch below uses a firmware
    // that can take a secret: the built-in UEFI, one byte of the uploaded copy differing from the owner's.
    const genuine = builtinUefiImage();
    const owned = file("owner-uefi.fd", genuine);
    const evil = genuine.slice();
    evil[0x1000]! ^= 0x01;
    ok(
      await s.cli(
        "admin",
        "image",
        "upload",
        "uefi-evil",
        "--kind",
        "firmware",
        "--file",
        file("evil.fd", evil),
      ),
    );
    ok(
      await s.cli(
        "all",
        "vm",
        "create",
        "es-evil",
        "--guest-os",
        "linux-5.19",
        "--sev-es",
        "on",
        "--vcpus",
        "2",
        "--firmware-image",
        "uefi-evil",
        "--host",
        "rome-img",
      ),
    );
    const t = await pausedLaunch("es-evil", "rome-img");
    assert.equal(
      t.fields.get("firmware"),
      `uefi-evil sha256 ${toHex(sha256(evil))}`,
      "the report names what was measured",
    );
    const expected = await ownerMeasure(t.line, { FIRMWARE: owned });
    assert.notEqual(expected, await hostDigest("rome-img", "es-evil"));
    const mac = [
      "--tik",
      t.tik,
      "--launch-measure-blob",
      t.fields.get("launch-measure-blob") ?? "",
      "--api-major",
      t.fields.get("api-major") ?? "",
      "--api-minor",
      t.fields.get("api-minor") ?? "",
      "--build",
      t.fields.get("build") ?? "",
      "--policy",
      t.fields.get("policy") ?? "",
    ];
    const verifyArgs = t.line
      .split(" ")
      .slice(3)
      .map((w) => (w === "FIRMWARE" ? owned : w));
    fails(
      await s.cli(null, "owner", "verify-measurement", ...mac, ...verifyArgs),
      ExitCode.ERROR,
      "MEASUREMENT_MISMATCH",
    );
    // An owner who binds the secret to the measurement they expect: the firmware refuses it, nothing is injected.
    const blob = Buffer.from(t.fields.get("launch-measure-blob") ?? "", "base64");
    const mnonce = blob.subarray(32, 48).toString("hex");
    const expectedMeasure = await ownerMeasure(t.line, { FIRMWARE: owned }, [
      "--tik",
      t.tik,
      "--api-major",
      t.fields.get("api-major") ?? "",
      "--api-minor",
      t.fields.get("api-minor") ?? "",
      "--build",
      t.fields.get("build") ?? "",
      "--policy",
      t.fields.get("policy") ?? "",
      "--mnonce",
      mnonce,
    ]);
    const boundBlob = Buffer.concat([Buffer.from(expectedMeasure, "hex"), blob.subarray(32, 48)]).toString(
      "base64",
    );
    ok(
      await s.cli(
        null,
        "owner",
        "secret",
        "build",
        "--tik",
        t.tik,
        "--tek",
        t.tek,
        "--launch-measure-blob",
        boundBlob,
        "--secret",
        `736869e5-84f0-4973-92ec-06879ce3da0b:${file("disk.key", "CVSECRET: the disk key")}`,
        "--out-header",
        join(dir, "evil-hdr.b64"),
        "--out-secret",
        join(dir, "evil-sec.b64"),
      ),
    );
    fails(
      await s.cli(
        "attestation-admin",
        "vm",
        "launch-secret",
        "es-evil",
        "--header",
        join(dir, "evil-hdr.b64"),
        "--secret",
        join(dir, "evil-sec.b64"),
      ),
      ExitCode.REFUSED,
      "BAD_MEASUREMENT",
    );
    assert.equal((await s.vms()).get("es-evil")?.powerState, "paused", "no secret, no run");
  });

  it("a measured direct boot (kernel, initrd, cmdline) on the built-in UEFI: the owner's digest equals the host's", async () => {
    await s.host("milan-img", "milan");
    const kernel = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);
    const initrd = new Uint8Array(64 * 1024).fill(0x5a);
    ok(
      await s.cli(
        "admin",
        "image",
        "upload",
        "vmlinuz",
        "--kind",
        "kernel",
        "--file",
        file("vmlinuz", kernel),
      ),
    );
    ok(
      await s.cli(
        "admin",
        "image",
        "upload",
        "initrd",
        "--kind",
        "initrd",
        "--file",
        file("initrd.img", initrd),
      ),
    );
    const cmdline = "console=ttyS0,root=/dev/vda1";
    ok(
      await s.cli(
        "all",
        "vm",
        "create",
        "direct",
        "--guest-os",
        "linux-5.19",
        "--sev-es",
        "on",
        "--vcpus",
        "2",
        "--kernel",
        "vmlinuz",
        "--initrd",
        "initrd",
        "--append",
        cmdline,
        "--host",
        "milan-img",
      ),
    );
    fails(
      await s.cli("all", "vm", "create", "lone", "--guest-os", "linux-5.19", "--initrd", "initrd"),
      ExitCode.USAGE,
      "USAGE",
    );
    fails(
      await s.cli(
        "all",
        "vm",
        "create",
        "wrong",
        "--guest-os",
        "linux-5.19",
        "--sev",
        "on",
        "--kernel",
        "initrd",
      ),
      ExitCode.USAGE,
      "IMAGE_KIND",
    );
    const { fields, line, tik, tek } = await pausedLaunch("direct", "milan-img");
    assert.equal(fields.get("kernel-sha256"), toHex(sha256(kernel)));
    assert.equal(fields.get("initrd-sha256"), toHex(sha256(initrd)));
    assert.match(line, /--kernel KERNEL --initrd INITRD --append CMDLINE/);
    const files = {
      FIRMWARE: file("uefi.fd", builtinUefiImage()),
      KERNEL: join(dir, "vmlinuz"),
      INITRD: join(dir, "initrd.img"),
      CMDLINE: cmdline,
    };
    assert.equal(await ownerMeasure(line, files), await hostDigest("milan-img", "direct"));
    // Another command line is another digest.
    assert.notEqual(
      await ownerMeasure(line, { ...files, CMDLINE: "console=ttyS1" }),
      await hostDigest("milan-img", "direct"),
    );
    // The owner injects a secret; the booted kernel's efi_secret driver shows its hash on the console.
    const key = "CVSECRET: the direct-boot disk key";
    ok(
      await s.cli(
        null,
        "owner",
        "secret",
        "build",
        "--tik",
        tik,
        "--tek",
        tek,
        "--launch-measure-blob",
        fields.get("launch-measure-blob") ?? "",
        "--secret",
        `736869e5-84f0-4973-92ec-06879ce3da0b:${file("direct.key", key)}`,
        "--out-header",
        join(dir, "direct-hdr.b64"),
        "--out-secret",
        join(dir, "direct-sec.b64"),
      ),
    );
    ok(
      await s.cli(
        "attestation-admin",
        "vm",
        "launch-secret",
        "direct",
        "--header",
        join(dir, "direct-hdr.b64"),
        "--secret",
        join(dir, "direct-sec.b64"),
      ),
    );
    const shown = ok(await s.cli("viewer", "vm", "console", "direct"));
    const digest = toHex(sha256(new TextEncoder().encode(key)));
    assert.match(
      shown,
      new RegExp(
        `^efi_secret: secret 736869e5-84f0-4973-92ec-06879ce3da0b \\(${key.length} bytes\\) sha256 ${digest}$`,
        "m",
      ),
    );
  });
});
