/**
 * Secret readback: the guest owner injects a secret table through LAUNCH_SECRET, the guest kernel's efi_secret
 * driver reads it from the firmware's secret area (through its own C-bit mappings) and prints each entry's SHA-256
 * on the serial console — the only way the owner learns the secret arrived, without the platform seeing it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import type { SecurityMode } from "../machine/vmcb.ts";
import { buildLaunchSecret } from "../owner/secret.ts";
import { createLaunchSession } from "../owner/session.ts";
import { Host } from "./host.ts";
import { vmSpec } from "./test-support.ts";

const GUID = "736869e5-84f0-4973-92ec-06879ce3da0b";
const DATA = new TextEncoder().encode("disk passphrase: correct horse battery staple");
const DIGEST = createHash("sha256").update(DATA).digest("hex");

function launchWithSecret(mode: SecurityMode, guestOs: string, tamper = false) {
  const host = new Host({ name: "milan-secret", generation: "milan", seed: 7 });
  const policy = mode === "sev-es" ? 0x05 : 0x01;
  const session = createLaunchSession(host.firmware.pdhCertExport().pdh, policy, seededRandom("owner"));
  host.define(
    vmSpec("guest", {
      security: mode,
      guestOs,
      policy,
      session: { godhCert: session.godhCert, session: session.session },
      attestation: true,
    }),
  );
  assert.equal(host.start("guest").status.power, "paused");
  const blob = Buffer.from(host.launchMeasurement("guest"), "base64");
  const packet = buildLaunchSecret({
    tek: session.keys.tek,
    tik: session.keys.tik,
    measure: new Uint8Array(blob.subarray(0, 32)),
    entries: [{ guid: GUID, data: DATA }],
    rng: seededRandom("iv"),
  });
  if (tamper) packet.payload[0]! ^= 1;
  return { host, status: host.finishLaunch("guest", packet) };
}

describe("secret readback on the guest console", () => {
  for (const mode of ["sev", "sev-es"] as const) {
    it(`${mode}: an efi_secret kernel prints the entry's GUID, size and SHA-256, never the secret`, () => {
      const { status } = launchWithSecret(mode, "linux-5.19");
      assert.equal(status.power, "running", status.reason);
      const console = status.console ?? "";
      assert.ok(
        console.startsWith(`efi_secret: secret ${GUID} (${DATA.length} bytes) sha256 ${DIGEST}\n`),
        console,
      );
      assert.ok(console.endsWith("OK\n"), "then the program runs as usual");
      assert.ok(!console.includes("passphrase"), "the console never carries the secret itself");
    });
  }

  it("a kernel without efi_secret (Linux 5.10) says nothing about secrets", () => {
    const { status } = launchWithSecret("sev-es", "linux-5.10");
    assert.equal(status.power, "running", status.reason);
    assert.equal(status.console, "OK\n");
  });

  it("a secret whose MAC fails is refused by the firmware (BAD_MEASUREMENT), so nothing reaches the guest", () => {
    assert.throws(
      () => launchWithSecret("sev-es", "linux-5.19", true),
      /LAUNCH_SECRET failed: BAD_MEASUREMENT/,
    );
  });

  for (const mode of ["sev", "sev-es"] as const) {
    it(`${mode}: the hypervisor reading every guest page finds neither the secret nor its table in plaintext`, () => {
      const view = launchWithSecret(mode, "linux-5.19").host.view("guest");
      assert.ok(view);
      const needle = Buffer.from(DATA.subarray(0, 16));
      for (const [gpa, e] of view.guest.npt.entries()) {
        const page: Buffer = Buffer.from(view.readPhysical(e.hpa, 4096));
        assert.equal(page.indexOf(needle), -1, `secret visible at GPA 0x${gpa.toString(16)}`);
      }
    });
  }
});
