/**
 * The libvirt driver against libvirt's real test driver (`virsh -c test:///default`, Debian `libvirt-clients`),
 * through the DriverHost interface. Without virsh the tests say so loudly; under CI=true that is a failure.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isCiphervisorError } from "../../../errors.ts";
import type { LaunchSpec } from "../../../hypervisor/types.ts";
import { type DriverHost, DriverRegistry } from "../driver.ts";
import { LibvirtDriver, virshOnPath } from "./driver.ts";
import { LIBVIRT_UNSUPPORTED } from "./virsh-errors.ts";

const haveVirsh = virshOnPath();
if (!haveVirsh) {
  const say = "virsh is not on PATH: the libvirt driver is NOT tested (install Debian's libvirt-clients)";
  console.error(`\n*** ${say} ***\n`);
  if (process.env.CI === "true") {
    it("virsh is installed (CI)", () => assert.fail(say));
  }
}

const spec = (name: string, security: LaunchSpec["security"]): LaunchSpec => ({
  name,
  vcpus: 1,
  memoryMiB: 512,
  firmware: { kind: "efi" },
  hardwareVersion: 19,
  guestOs: "linux-5.19",
  devices: [{ kind: "virtio-disk" }, { kind: "virtio-net" }],
  security,
});

const code = (c: string) => (e: unknown) => isCiphervisorError(e) && e.code === c;

describe("libvirt driver on test:///default", { skip: haveVirsh ? false : "virsh is not installed" }, () => {
  const driver = new LibvirtDriver({ timeoutMs: 10_000 });
  let host: DriverHost;

  before(async () => {
    host = await new DriverRegistry([driver]).connect("libvirt", "test:///default");
  });
  after(() => driver.close());

  it("one session per URI: connect again gives the same host and state", async () => {
    assert.equal(await driver.connect("test:///default"), host);
    assert.deepEqual(
      (await host.list()).map((v) => [v.name, v.power]),
      [["test", "running"]],
    );
  });

  it("defines, starts, resets, stops and undefines an ordinary VM and an SEV VM", async () => {
    for (const [name, security] of [
      ["plain-1", "none"],
      ["sev-1", "sev"],
      ["sev-es-1", "sev-es"],
    ] as const) {
      const d = await host.define(spec(name, security));
      assert.equal(d.power, "defined");
      assert.equal(d.security, security);
      await assert.rejects(host.define(spec(name, security)), code("CONFLICT"));
      const s = await host.start(name);
      assert.equal(s.status.power, "running");
      assert.equal((await host.status(name))?.power, "running");
      await assert.rejects(host.start(name), code("CONFLICT"));
      assert.equal((await host.reset(name)).power, "running");
      await assert.rejects(host.undefine(name), code("CONFLICT"));
      assert.equal((await host.stop(name)).power, "stopped");
      await assert.rejects(host.stop(name), code("CONFLICT"));
    }
    assert.deepEqual((await host.list()).map((v) => `${v.name}:${v.security}:${v.power}`).sort(), [
      "plain-1:none:stopped",
      "sev-1:sev:stopped",
      "sev-es-1:sev-es:stopped",
      "test:none:running",
    ]);
    for (const name of ["plain-1", "sev-1", "sev-es-1"]) await host.undefine(name);
    assert.equal(await host.status("sev-1"), undefined);
    assert.deepEqual(
      (await host.list()).map((v) => v.name),
      ["test"],
    );
    await assert.rejects(host.undefine("sev-1"), code("NOT_FOUND"));
  });

  it("applies the operation table before sending anything, and names what this host cannot do", async () => {
    await host.define(spec("sev-ops", "sev"));
    await host.start("sev-ops");
    await assert.rejects(host.perform("sev-ops", "suspend"), code("SUSPEND_UNSUPPORTED"));
    await assert.rejects(host.liveMigrate("sev-ops", host), code("LIVE_MIGRATION_UNSUPPORTED"));
    await assert.rejects(host.perform("sev-ops", "cold-clone"), code(LIBVIRT_UNSUPPORTED));
    await assert.rejects(host.launchMeasurement("sev-ops"), code("CONFLICT"));
    await host.stop("sev-ops");
    await assert.rejects(host.coldMigrate("sev-ops", host), code(LIBVIRT_UNSUPPORTED));
    await host.undefine("sev-ops");
  });

  it("an attested launch answers that the test driver has no launch measurement, and leaves the VM off", async () => {
    await host.define({ ...spec("sev-att", "sev"), attestation: true });
    await assert.rejects(host.start("sev-att"), code(LIBVIRT_UNSUPPORTED));
    // The test driver reports a destroyed paused domain as "shut off (unknown)": off either way.
    assert.match((await host.status("sev-att"))?.power ?? "", /^(defined|stopped)$/);
    await host.undefine("sev-att");
  });

  it("reports no SEV and an unknown generation where the connection has no domcapabilities, and requirement checks say so", async () => {
    const caps = await host.capabilities();
    assert.equal(caps.sevSupported, false);
    assert.equal(caps.generation, "unknown");
    assert.deepEqual([caps.pools.sev.size, caps.pools.sevEs.size], [0, 0]);
    assert.match(caps.sevEsUnavailableReason ?? "", /domain capabilities/);
    for (const mode of ["sev", "sev-es"] as const) {
      const findings = await host.requirementFindings(spec("x", mode));
      // Only the one true reason: no "not initialized", no CPU generation, no empty pool.
      assert.deepEqual(
        findings.map((f) => f.code),
        ["SEV_UNSUPPORTED"],
      );
      assert.match(
        findings[0]?.message ?? "",
        /reports no SEV \(CPU generation unknown: .*domain capabilities/,
      );
      assert.doesNotMatch(findings[0]?.message ?? "", /naples/);
    }
    assert.deepEqual(await host.requirementFindings(spec("x", "none")), []);
  });

  it("bad URIs and unreachable hosts fail with one-line errors", async () => {
    await assert.rejects(driver.connect("not a uri"), code("INVALID_INPUT"));
    await assert.rejects(driver.connect("qemu+ssh://root:pw@h/system"), code("INVALID_INPUT"));
    await assert.rejects(
      driver.connect("bogus:///nowhere"),
      (e) => code("IO")(e) && !String((e as Error).message).includes("\n"),
    );
  });

  it("close() ends the session; later calls fail with IO and connect opens a fresh one", async () => {
    const d = new LibvirtDriver();
    const h = await d.connect("test:///default");
    await d.close();
    await assert.rejects(h.list(), code("IO"));
    const again = await d.connect("test:///default");
    assert.notEqual(again, h);
    await d.close();
  });
});
