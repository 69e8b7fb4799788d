/**
 * `GET /v1/vms/{id}/launch-measurement` reports everything a guest owner needs to recompute the launch digest
 * (docs/sev-interface.md §8.1, §8.5, §12.2): the mode, the host's VMM profile, the vCPU count, the vCPU model and
 * its CPUID signature, and the SHA-256 of every measured image. For SEV-ES on a `qemu-legacy` host and on a `qemu`
 * host, the owner's digest computed from ONLY those values and their own copy of the firmware equals what the host
 * measured, and the owner's measurement check passes; with the other profile it fails. The profile is chosen when
 * the host is registered, stored, and shown in host info and sev-info.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sha256 } from "../../crypto/hash.ts";
import { seededRandom } from "../../crypto/random.ts";
import { builtinUefiImage } from "../../hypervisor/builtin-uefi.ts";
import { toHex } from "../../lib/bytes.ts";
import { computeLaunchDigest } from "../../measure/launch-digest.ts";
import { cpuSignature, vcpuSignatureOf } from "../../measure/vcpu-types.ts";
import { HOST_VMM_PROFILES, type HostVmmProfile } from "../../measure/vmsa.ts";
import { createLaunchSession } from "../../owner/session.ts";
import { checkLaunchMeasurement } from "../../owner/verify-measurement.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const linuxish = {
  vcpus: 2,
  memoryMiB: 32,
  guestOs: "linux-5.19",
  firmware: "efi",
  hardwareVersion: 19,
} as const;

/** Registers an emulated Rome host through the API, with `vmm` when given. */
async function addHost(a: ApiFixture, name: string, vmm?: HostVmmProfile): Promise<string> {
  const r = await a.call("admin", "POST", "/v1/hosts", {
    name,
    emulated: { generation: "rome", ...(vmm ? { vmmProfile: vmm } : {}) },
  });
  assert.equal(r.statusCode, 201, r.body);
  return String(json(r).id);
}

/** An attested VM of `mode` on `hostId`, powered on (paused); its launch-measurement answer and the owner's TIK. */
async function measured(a: ApiFixture, hostId: string, name: string, mode: "sev" | "sev-es") {
  const vm = await a.vm(name, mode, { hostId, spec: linuxish });
  const info = json(await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`));
  const pdh = new Uint8Array(Buffer.from(String(info.pdh), "base64"));
  const session = createLaunchSession(pdh, vm.policy, seededRandom(`owner-${name}`));
  const put = await a.call("attestation-admin", "PUT", `/v1/vms/${vm.id}/launch-session`, {
    godhCert: b64(session.godhCert),
    session: b64(session.session),
  });
  assert.equal(put.statusCode, 200, put.body);
  const on = await a.call("operator", "POST", `/v1/vms/${vm.id}/power-on`);
  assert.equal(on.statusCode, 200, on.body);
  const m = await a.call("attestation-reader", "GET", `/v1/vms/${vm.id}/launch-measurement`);
  assert.equal(m.statusCode, 200, m.body);
  return { vm, facts: json(m) as Record<string, unknown>, tik: session.keys.tik, info };
}

/** The owner's check from the reported facts alone, with `vmm` as the VMSA profile. */
function ownerCheck(facts: Record<string, unknown>, tik: Uint8Array, vmm: HostVmmProfile) {
  const sig = facts.cpuSignature as { value: number } | undefined;
  const launchDigest = computeLaunchDigest({
    mode: facts.securityMode as "sev" | "sev-es",
    firmware: builtinUefiImage(), // the owner's own copy (`ciphervisor firmware export`)
    vcpus: Number(facts.vcpus),
    vcpuSignature: sig?.value,
    vmm,
  });
  const check = checkLaunchMeasurement({
    tik,
    launchMeasureBlob: new Uint8Array(Buffer.from(String(facts.measurement), "base64")),
    apiMajor: Number(facts.apiMajor),
    apiMinor: Number(facts.apiMinor),
    build: Number(facts.build),
    policy: Number(facts.policy),
    launchDigest,
  });
  return { launchDigest: toHex(launchDigest), match: check.match };
}

describe("launch-measurement: the owner recomputes the digest from the reported values", () => {
  for (const vmm of HOST_VMM_PROFILES) {
    it(`SEV-ES on a ${vmm} host: the reported values rebuild the measured digest, the other profile does not`, () =>
      withApi(async (a) => {
        const hostId = await addHost(a, `rome-${vmm}`, vmm);
        const host = json(await a.call("viewer", "GET", `/v1/hosts/${hostId}`));
        assert.equal(host.vmmProfile, vmm, "host info shows the profile");
        const { vm, facts, tik, info } = await measured(a, hostId, `es-${vmm}`, "sev-es");
        assert.equal(info.vmmProfile, vmm, "sev-info shows the profile");
        assert.deepEqual(info.guestCpu, {
          type: "EPYC-Rome",
          family: 23,
          model: 49,
          stepping: 0,
          signature: 0x00830f10,
        });

        assert.equal(facts.securityMode, "sev-es");
        assert.equal(facts.vmmProfile, vmm);
        assert.equal(facts.vcpus, 2);
        assert.equal(facts.vcpuType, "EPYC-Rome");
        const sig = facts.cpuSignature as { family: number; model: number; stepping: number; value: number };
        assert.equal(
          sig.value,
          cpuSignature(sig.family, sig.model, sig.stepping),
          "one identity, two spellings",
        );
        assert.equal(sig.value, vcpuSignatureOf(String(facts.vcpuType)));
        const fwHash = toHex(sha256(builtinUefiImage()));
        assert.deepEqual(facts.images, { firmware: { name: "builtin-uefi", sha256: fwHash } });
        assert.equal(facts.loaderSha256, fwHash);

        const owner = ownerCheck(facts, tik, facts.vmmProfile as HostVmmProfile);
        const hostSide = await (await a.driver.connect(`rome-${vmm}`)).status(vm.id);
        assert.equal(owner.launchDigest, hostSide?.launchDigest, "the owner's digest is the host's");
        assert.equal(owner.match, true, "the owner's measurement check passes");
        const wrong = ownerCheck(facts, tik, vmm === "qemu" ? "qemu-legacy" : "qemu");
        assert.equal(wrong.match, false, "with the other VMSA profile the check fails");
      }));
  }

  it("plain SEV: no VMSA, so the profile does not matter; hosts default to qemu-legacy", () =>
    withApi(async (a) => {
      const hostId = await addHost(a, "rome-default");
      assert.equal(json(await a.call("viewer", "GET", `/v1/hosts/${hostId}`)).vmmProfile, "qemu-legacy");
      assert.equal((await a.inventory.hosts.get(hostId))?.vmmProfile, "qemu-legacy", "stored");
      const { facts, tik } = await measured(a, hostId, "sev-plain", "sev");
      assert.equal(facts.securityMode, "sev");
      assert.equal(facts.vmmProfile, "qemu-legacy");
      for (const vmm of HOST_VMM_PROFILES) assert.equal(ownerCheck(facts, tik, vmm).match, true, vmm);
    }));

  it("refuses an unknown profile at registration, naming the field", () =>
    withApi(async (a) => {
      const r = await a.call("admin", "POST", "/v1/hosts", {
        name: "rome-bad",
        emulated: { generation: "rome", vmmProfile: "ec2" },
      });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(json(r).code, "INVALID_INPUT");
      assert.match(r.body, /vmmProfile/);
    }));
});
