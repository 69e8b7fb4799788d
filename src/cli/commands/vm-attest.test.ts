/**
 * The guest owner's attested launch through the CLI against a listening API with an emulated Rome host, for SEV and
 * SEV-ES: `host sev-info --out` writes sevctl's files, the owner verifies the chain (KDS CEK, emulated root), `owner session`
 * makes the session files, `vm launch-session` sends them, the VM starts paused, `vm launch-measurement` prints the
 * values `owner verify-measurement` takes, `owner secret build` makes the packet, a tampered payload is refused
 * with the firmware's code (exit 6) and the VM stays paused, the real one lets it run. Plus the RBAC split and
 * one-line errors with documented exit codes.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseSevChain, verifySevChain } from "../../certs/chain.ts";
import { loadBuiltinRoots } from "../../certs/roots.ts";
import { builtinUefiImage } from "../../hypervisor/builtin-uefi.ts";
import { emulatedRootCerts, kdsSignedCek } from "../../sev/manufacturer/emulated-amd.ts";
import { ExitCode } from "../exit-codes.ts";
import { type CliResult, type CliServer, oneLineError, startCliServer } from "../testing/cli-server.ts";

let s: CliServer & { close(): Promise<void> };
let dir: string;
before(async () => {
  s = await startCliServer();
  dir = mkdtempSync(join(tmpdir(), "cv-attest-cli-"));
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

function ok(r: CliResult): string {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.err}`);
  return r.out;
}

function fails(r: CliResult, exit: number, code: string, text?: RegExp): void {
  assert.equal(r.code, exit, `exit code (stderr: ${r.err})`);
  assert.ok(oneLineError(r.err, code), `one-line ${code} error expected, got: ${r.err}`);
  if (text) assert.match(r.err, text);
}

/** `key: value` lines of a `fields` table. */
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

describe("ciphervisor vm launch-* and host sev-info", () => {
  for (const mode of ["sev", "sev-es"] as const) {
    it(`${mode}: runs the owner's whole flow: chain, session, paused launch, measurement check, secret`, async () => {
      const name = `vault-${mode}`;
      const hostName = `rome-${mode}`;
      const hostId = await s.host(hostName, "rome");
      const vm = await s.vm(name, mode, { hostId });
      const certs = join(dir, `${name}-certs`);
      ok(await s.cli("attestation-reader", "host", "sev-info", hostName, "--out", certs));
      const file = (n: string) => new Uint8Array(readFileSync(join(certs, `${n}.cert`)));
      const info = JSON.parse(ok(await s.cli("attestation-reader", "host", "sev-info", hostName, "--json")));
      const { ark, ask } = emulatedRootCerts("rome");
      const cek = kdsSignedCek("rome", new Uint8Array(Buffer.from(info.cpu0Id, "hex")));
      verifySevChain(parseSevChain({ ark, ask, cek, oca: file("oca"), pek: file("pek"), pdh: file("pdh") }), {
        roots: loadBuiltinRoots("emulated"),
      });

      const policy = `0x${vm.policy.toString(16)}`;
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
          name,
          "--out",
          dir,
        ),
      );
      const set = await s.cli(
        "attestation-admin",
        "vm",
        "launch-session",
        name,
        "--godh",
        join(dir, `${name}_godh.b64`),
        "--session",
        join(dir, `${name}_session.b64`),
      );
      assert.equal(parseFields(ok(set)).get("attestation"), "session-set");
      assert.match(set.err, /POLICY_FAILURE/, "the note says what a policy mismatch does");
      ok(await s.cli("operator", "vm", "start", name));
      assert.equal((await s.vms()).get(name)?.powerState, "paused");

      const table = await s.cli("attestation-reader", "vm", "launch-measurement", name);
      const f = parseFields(ok(table));
      assert.match(table.err, /not verified here/);
      const m = JSON.parse(ok(await s.cli("attestation-reader", "vm", "launch-measurement", name, "--json")));
      assert.equal(f.get("launch-measure-blob"), m.measurement);
      // The printed values are exactly `owner verify-measurement`'s flags; the firmware is the owner's own copy.
      const firmware = join(dir, `${name}-uefi.fd`);
      writeFileSync(firmware, builtinUefiImage());
      const verify = await s.cli(
        null,
        "owner",
        "verify-measurement",
        "--tik",
        join(dir, `${name}_tik.bin`),
        "--launch-measure-blob",
        f.get("launch-measure-blob") ?? "",
        "--api-major",
        f.get("api-major") ?? "",
        "--api-minor",
        f.get("api-minor") ?? "",
        "--build",
        f.get("build") ?? "",
        "--policy",
        f.get("policy") ?? "",
        "--firmware",
        firmware,
        // Plain SEV measures the firmware only; SEV-ES also the VMSAs of the vCPUs.
        ...(mode === "sev-es" ? ["--vcpus", "1", "--vcpu-type", "EPYC-Rome", "--vmm", "qemu-legacy"] : []),
      );
      assert.match(ok(verify), /launch measurement matches/);

      const secretFile = join(dir, `${name}-disk.key`);
      writeFileSync(secretFile, "CVSECRET: the disk key");
      ok(
        await s.cli(
          null,
          "owner",
          "secret",
          "build",
          "--tik",
          join(dir, `${name}_tik.bin`),
          "--tek",
          join(dir, `${name}_tek.bin`),
          "--launch-measure-blob",
          m.measurement,
          "--secret",
          `736869e5-84f0-4973-92ec-06879ce3da0b:${secretFile}`,
          "--out-header",
          join(dir, `${name}-hdr.b64`),
          "--out-secret",
          join(dir, `${name}-sec.b64`),
        ),
      );
      // A tampered payload, given as raw bytes: the firmware refuses the MAC and the VM stays paused.
      const payload = Buffer.from(readFileSync(join(dir, `${name}-sec.b64`), "utf8").trim(), "base64");
      payload[0]! ^= 1;
      writeFileSync(join(dir, `${name}-bad.bin`), payload);
      const bad = await s.cli(
        "attestation-admin",
        "vm",
        "launch-secret",
        name,
        "--header",
        join(dir, `${name}-hdr.b64`),
        "--secret",
        join(dir, `${name}-bad.bin`),
      );
      fails(bad, ExitCode.REFUSED, "BAD_MEASUREMENT", /LAUNCH_SECRET/);
      assert.equal((await s.vms()).get(name)?.powerState, "paused");

      const good = await s.cli(
        "attestation-admin",
        "vm",
        "launch-secret",
        name,
        "--header",
        join(dir, `${name}-hdr.b64`),
        "--secret",
        join(dir, `${name}-sec.b64`),
      );
      const g = parseFields(ok(good));
      assert.equal(g.get("power"), "running");
      assert.equal(g.get("attestation"), "secret-injected");
      // The guest's efi_secret driver printed the secret's hash on its console; any reader sees the hash, not the key.
      const digest = createHash("sha256").update("CVSECRET: the disk key").digest("hex");
      const shown = ok(await s.cli("viewer", "vm", "console", name));
      assert.ok(
        shown.includes(
          `efi_secret: secret 736869e5-84f0-4973-92ec-06879ce3da0b (22 bytes) sha256 ${digest}\n`,
        ),
        shown,
      );
      assert.equal(shown.includes("CVSECRET"), false);
      const sessionB64 = readFileSync(join(dir, `${name}_session.b64`), "utf8").trim();
      const secretB64 = readFileSync(join(dir, `${name}-sec.b64`), "utf8").trim();
      for (const r of [set, table, bad, good]) {
        assert.equal(`${r.out}${r.err}`.includes(sessionB64), false);
        assert.equal(`${r.out}${r.err}`.includes(secretB64), false);
      }
    });
  }

  it("prints what the launch measured and an `owner measure` line that rebuilds the digest (qemu host)", async () => {
    ok(
      await s.cli(
        "admin",
        "host",
        "add",
        "--name",
        "rome-init2",
        "--generation",
        "rome",
        "--vmm-profile",
        "qemu",
      ),
    );
    assert.equal(
      parseFields(ok(await s.cli("viewer", "host", "get", "rome-init2"))).get("VMM profile"),
      "qemu",
    );
    const hostId = (await s.inventory.hosts.getByName("rome-init2"))?.id ?? "";
    const vm = await s.vm("es2", "sev-es", {
      hostId,
      spec: { vcpus: 2, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 },
    });
    const info = parseFields(ok(await s.cli("attestation-reader", "host", "sev-info", "rome-init2")));
    assert.equal(info.get("vmm-profile"), "qemu");
    assert.equal(info.get("vcpu-type"), "EPYC-Rome");
    assert.match(info.get("vcpu-sig") ?? "", /^0x830f10 \(family 23, model 49, stepping 0\)$/);
    ok(await s.cli("attestation-reader", "host", "sev-info", "rome-init2", "--out", join(dir, "init2")));
    const pdh = join(dir, "init2", "pdh.cert");
    const policy = `0x${vm.policy.toString(16)}`;
    ok(
      await s.cli(null, "owner", "session", "--pdh", pdh, "--policy", policy, "--name", "es2", "--out", dir),
    );
    ok(
      await s.cli(
        "attestation-admin",
        "vm",
        "launch-session",
        "es2",
        "--godh",
        join(dir, "es2_godh.b64"),
        "--session",
        join(dir, "es2_session.b64"),
      ),
    );
    ok(await s.cli("operator", "vm", "start", "es2"));

    const r = await s.cli("attestation-reader", "vm", "launch-measurement", "es2");
    const f = parseFields(ok(r));
    assert.equal(f.get("mode"), "sev-es");
    assert.equal(f.get("vmm-profile"), "qemu");
    assert.equal(f.get("vcpus"), "2");
    assert.equal(f.get("vcpu-type"), "EPYC-Rome");
    assert.match(f.get("firmware") ?? "", /^builtin-uefi sha256 [0-9a-f]{64}$/);
    const line = r.out.split("\n").find((l) => l.startsWith("ciphervisor owner measure "));
    assert.equal(
      line,
      "ciphervisor owner measure --firmware FIRMWARE --mode sev-es --vcpus 2 --vcpu-sig 0x830f10 --vmm qemu",
    );
    assert.match(r.err, /firmware export --out FIRMWARE/);

    // The owner's copy of the firmware stands in for FIRMWARE; every other word is the server's report.
    const firmware = join(dir, "owner-uefi.fd");
    ok(await s.cli(null, "firmware", "export", "--out", firmware));
    const args = (line ?? "")
      .split(" ")
      .slice(1)
      .map((w) => (w === "FIRMWARE" ? firmware : w));
    const digest = ok(await s.cli(null, ...args)).trim();
    const hostSide = await (await s.driver.connect("rome-init2")).status(vm.id);
    assert.equal(digest, hostSide?.launchDigest, "`owner measure` gives the digest the host measured");

    const verify = (imageFlags: string[]) =>
      s.cli(
        null,
        "owner",
        "verify-measurement",
        "--tik",
        join(dir, "es2_tik.bin"),
        "--launch-measure-blob",
        f.get("launch-measure-blob") ?? "",
        "--api-major",
        f.get("api-major") ?? "",
        "--api-minor",
        f.get("api-minor") ?? "",
        "--build",
        f.get("build") ?? "",
        "--policy",
        f.get("policy") ?? "",
        ...imageFlags,
      );
    const image = args.slice(2); // the image flags, without `owner measure`
    assert.match(ok(await verify(image)), /launch measurement matches/);
    const legacy = image.map((w) => (w === "qemu" ? "qemu-legacy" : w));
    fails(await verify(legacy), ExitCode.ERROR, "MEASUREMENT_MISMATCH");
  });

  it("splits permissions and fails with one line and a documented exit code", async () => {
    const hostId = await s.host("rome-rbac", "rome");
    await s.vm("locked", "sev", { hostId });
    await s.vm("plain", "none", { hostId });
    const godh = join(dir, "g.b64");
    const sess = join(dir, "s.b64");
    writeFileSync(godh, Buffer.alloc(0x824).toString("base64"));
    writeFileSync(sess, Buffer.alloc(0x80));
    fails(
      await s.cli("attestation-reader", "vm", "launch-session", "locked", "--godh", godh, "--session", sess),
      ExitCode.AUTH,
      "FORBIDDEN",
    );
    fails(await s.cli("operator", "vm", "launch-measurement", "locked"), ExitCode.AUTH, "FORBIDDEN");
    fails(await s.cli("attestation-reader", "vm", "launch-finish", "locked"), ExitCode.AUTH, "FORBIDDEN");
    fails(await s.cli("operator", "host", "sev-info", "rome-rbac"), ExitCode.AUTH, "FORBIDDEN");
    fails(
      await s.cli("attestation-reader", "vm", "launch-measurement", "locked"),
      ExitCode.REFUSED,
      "CONFLICT",
      /not paused/,
    );
    fails(
      await s.cli("attestation-admin", "vm", "launch-session", "locked", "--godh", godh, "--session", sess),
      ExitCode.USAGE,
      "INVALID_INPUT",
      /godhCert/,
    );
    fails(
      await s.cli(
        "attestation-admin",
        "vm",
        "launch-session",
        "locked",
        "--godh",
        join(dir, "missing"),
        "--session",
        sess,
      ),
      ExitCode.ERROR,
      "IO",
      /--godh/,
    );
    writeFileSync(join(dir, "short.bin"), Buffer.from([0xff, 0xfe, 0x00]));
    fails(
      await s.cli(
        "attestation-admin",
        "vm",
        "launch-session",
        "locked",
        "--godh",
        godh,
        "--session",
        join(dir, "short.bin"),
      ),
      ExitCode.USAGE,
      "INVALID_INPUT",
      /--session/,
    );
    fails(await s.cli("attestation-admin", "vm", "launch-finish", "nope"), ExitCode.NOT_FOUND, "NOT_FOUND");
    fails(
      await s.cli("attestation-admin", "vm", "launch-finish", "plain"),
      ExitCode.REFUSED,
      "CONFLICT",
      /ordinary/,
    );
  });
});
