/**
 * Launching Debian's real OVMF (package `ovmf`, installed by .ci/run): the host's launch digest equals the one the
 * guest owner's toolkit computes independently from the same file, and the measurement verifies under the owner's
 * TIK. Without the package the test fails under CI=true and says so loudly elsewhere.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { sha256 } from "../crypto/hash.ts";
import { seededRandom } from "../crypto/random.ts";
import { toHex } from "../lib/bytes.ts";
import { computeLaunchDigest } from "../measure/launch-digest.ts";
import { vcpuSignatureOf } from "../measure/vcpu-types.ts";
import { HOST_VMM_PROFILES, type HostVmmProfile } from "../measure/vmsa.ts";
import { createLaunchSession } from "../owner/session.ts";
import { checkLaunchMeasurement } from "../owner/verify-measurement.ts";
import { Host } from "./host.ts";
import { vmSpec } from "./test-support.ts";

const OVMF = "/usr/share/OVMF/OVMF_CODE.fd";
const present = existsSync(OVMF);
if (!present) {
  const msg = `Debian's OVMF is missing (${OVMF}): install the 'ovmf' package — the real-firmware launch test cannot run`;
  if (process.env["CI"] === "true") throw new Error(msg);
  console.error(`\n*** ${msg} ***\n`);
}

describe("launching Debian's OVMF_CODE.fd", { skip: present ? false : `${OVMF} not installed` }, () => {
  const firmware = present ? new Uint8Array(readFileSync(OVMF)) : new Uint8Array();

  for (const vmm of HOST_VMM_PROFILES) {
    it(`SEV-ES with 2 vCPUs on a ${vmm} host: the host's digest equals the owner toolkit's, and the measurement verifies`, () => {
      sevEsOnOvmf(vmm);
    });
  }

  function sevEsOnOvmf(vmm: HostVmmProfile): void {
    const host = new Host({ name: "rome-ovmf", generation: "rome", seed: 21, vmmProfile: vmm });
    const chain = host.firmware.pdhCertExport();
    const policy = 0x05;
    const session = createLaunchSession(chain.pdh, policy, seededRandom("ovmf-owner"));
    host.define(
      vmSpec("ovmf-es", {
        security: "sev-es",
        vcpus: 2,
        policy,
        firmware: { kind: "efi", image: firmware, imageName: OVMF },
        session: { godhCert: session.godhCert, session: session.session },
        attestation: true,
      }),
    );
    const started = host.start("ovmf-es");
    assert.equal(started.status.power, "paused");
    const expected = computeLaunchDigest({
      mode: "sev-es",
      firmware,
      vcpus: 2,
      vcpuSignature: vcpuSignatureOf("EPYC-Rome"),
      vmm,
    });
    assert.equal(started.status.launchDigest, toHex(expected));
    const other = computeLaunchDigest({
      mode: "sev-es",
      firmware,
      vcpus: 2,
      vcpuSignature: vcpuSignatureOf("EPYC-Rome"),
      vmm: vmm === "qemu" ? "qemu-legacy" : "qemu",
    });
    assert.notEqual(toHex(other), toHex(expected), "the two profiles measure different VMSAs");
    const st = host.firmware.platformStatus();
    const check = checkLaunchMeasurement({
      tik: session.keys.tik,
      launchMeasureBlob: new Uint8Array(Buffer.from(started.launchMeasurement!, "base64")),
      apiMajor: st.apiMajor,
      apiMinor: st.apiMinor,
      build: st.build,
      policy,
      launchDigest: expected,
    });
    assert.equal(check.match, true);
    assert.equal(host.finishLaunch("ovmf-es").power, "running");
  }

  it("plain SEV: the digest is SHA-256 of the file", () => {
    const host = new Host({ name: "milan-ovmf", generation: "milan", seed: 22 });
    host.define(vmSpec("ovmf-sev", { security: "sev", firmware: { kind: "efi", image: firmware } }));
    assert.equal(host.start("ovmf-sev").status.launchDigest, toHex(sha256(firmware)));
  });
});
