/**
 * The host's VMM profile (docs/sev-interface.md §8.5, §12.2): a host is `qemu-legacy` (QEMU's default `sev-guest`,
 * legacy KVM_SEV_ES_INIT: MXCSR and FCW 0) unless built as `qemu` (KVM_SEV_INIT2: MXCSR 0x1F80, FCW 0x037F), and
 * every SEV-ES launch on it measures the VMSAs of that profile. Checked against upstream data, not against our own
 * VMSA builder: on a Milan host the guest's vCPU is EPYC-Milan (signature 0xA00F11), the one sevctl's
 * `vmsa0.bin` / `vmsa1.bin` were taken with, so with sevctl's OVMF a legacy host's launch digest must be
 * SHA-256(OVMF ‖ vmsa0.bin ‖ vmsa1.bin × 3) byte for byte, and an INIT2 host's the same pages with MXCSR and FCW
 * patched in at the §12.1 offsets. Each launch also records what it measured (`LaunchInputs`).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { sha256 } from "../crypto/hash.ts";
import { isCiphervisorError } from "../errors.ts";
import { toHex } from "../lib/bytes.ts";
import { decodeVmsa, HOST_VMM_PROFILES, type HostVmmProfile } from "../measure/vmsa.ts";
import { Host } from "./host.ts";
import { vmSpec } from "./test-support.ts";

const fixture = (p: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/measure/sevctl/${p}`, import.meta.url)));
const OVMF = fixture("OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");
const VMSA0 = fixture("vmsa0.bin");
const VMSA1 = fixture("vmsa1.bin");

/** sevctl's legacy page with the INIT2 x87/SSE reset state written at the §12.1 offsets (mxcsr 0x408, fcw 0x410). */
function init2(page: Uint8Array): Uint8Array {
  const p = page.slice();
  const v = new DataView(p.buffer);
  v.setUint32(0x408, 0x1f80, true);
  v.setUint16(0x410, 0x037f, true);
  return p;
}

/** Launches an SEV-ES VM paused after LAUNCH_MEASURE on a Milan host of `vmm`, with sevctl's OVMF. */
function launchEs(vmm: HostVmmProfile | undefined, vcpus: number) {
  const host = new Host({
    name: `milan-${vmm ?? "default"}`,
    generation: "milan",
    seed: 31,
    ...(vmm ? { vmmProfile: vmm } : {}),
  });
  host.define(
    vmSpec("es", {
      security: "sev-es",
      vcpus,
      policy: 0x05,
      firmware: { kind: "efi", image: OVMF, imageName: "sevctl-ovmf.fd" },
      attestation: true,
    }),
  );
  const started = host.start("es");
  assert.equal(started.status.power, "paused");
  return { host, status: started.status };
}

describe("the host's VMM profile (docs/sev-interface.md §8.5)", () => {
  it("is qemu-legacy unless chosen, is reported, and an unknown one is refused", () => {
    const legacy = new Host({ name: "rome-a", generation: "rome", seed: 1 });
    assert.equal(legacy.vmmProfile, "qemu-legacy");
    assert.equal(legacy.capabilities().vmmProfile, "qemu-legacy");
    assert.deepEqual(legacy.capabilities().guestCpu, {
      type: "EPYC-Rome",
      family: 23,
      model: 49,
      stepping: 0,
      signature: 0x00830f10,
    });
    const init2Host = new Host({ name: "rome-b", generation: "rome", seed: 1, vmmProfile: "qemu" });
    assert.equal(init2Host.capabilities().vmmProfile, "qemu");
    assert.deepEqual(HOST_VMM_PROFILES, ["qemu-legacy", "qemu"]);
    assert.throws(
      () => new Host({ name: "x", generation: "rome", seed: 1, vmmProfile: "ec2" as HostVmmProfile }),
      (e) => isCiphervisorError(e, "INVALID_INPUT") && /VMM profile 'ec2'/.test(e.message),
    );
  });

  it("a qemu-legacy host measures sevctl's vmsa0.bin and vmsa1.bin (MXCSR and FCW 0)", () => {
    for (const vmm of [undefined, "qemu-legacy"] as const) {
      const { status } = launchEs(vmm, 4);
      const expected = sha256(OVMF, VMSA0, VMSA1, VMSA1, VMSA1);
      assert.equal(status.launchDigest, toHex(expected), `${vmm ?? "default"} profile`);
    }
    const bsp = decodeVmsa(VMSA0);
    assert.deepEqual([bsp.mxcsr, bsp.x87Fcw, bsp.rdx], [0, 0, 0xa00f11n], "what the fixture holds");
  });

  it("a qemu (KVM_SEV_INIT2) host measures the same pages with MXCSR 0x1F80 and FCW 0x037F", () => {
    const { status } = launchEs("qemu", 4);
    const ap = init2(VMSA1);
    assert.equal(status.launchDigest, toHex(sha256(OVMF, init2(VMSA0), ap, ap, ap)));
    const d = decodeVmsa(init2(VMSA0));
    assert.deepEqual([d.mxcsr, d.x87Fcw], [0x1f80, 0x037f]);
    assert.notEqual(status.launchDigest, toHex(sha256(OVMF, VMSA0, VMSA1, VMSA1, VMSA1)));
  });

  it("records what each launch measured: mode, profile, vCPUs, the guest CPU and the image hashes", () => {
    const { host, status } = launchEs("qemu", 2);
    assert.deepEqual(status.launchInputs, {
      security: "sev-es",
      vmmProfile: "qemu",
      vcpus: 2,
      cpu: { type: "EPYC-Milan", family: 25, model: 1, stepping: 1, signature: 0x00a00f11 },
      images: { firmware: { name: "sevctl-ovmf.fd", sha256: toHex(sha256(OVMF)) } },
    });
    host.stop("es");
    assert.equal(host.status("es").launchInputs, undefined, "only while launched");
  });

  it("a measured direct boot reports the kernel-hashes entries, and its digest is sevctl's (§16.3 case 3)", () => {
    const host = new Host({ name: "milan-db", generation: "milan", seed: 32 });
    const kernel = fixture("vmlinuz-fake");
    const initrd = fixture("initrd-fake");
    const cmdline = "foo bar baz fake kernel=cmdline";
    host.define(
      vmSpec("db", {
        security: "sev",
        policy: 0x03,
        firmware: { kind: "efi", image: OVMF, imageName: "sevctl-ovmf.fd" },
        directBoot: { kernel, initrd, cmdline },
        attestation: true,
      }),
    );
    const { status } = host.start("db");
    assert.equal(status.launchDigest, "4b47fec6f851487c33714c8a00a832a1b705ad0a7cac4a647388eccfa9f0c570");
    assert.deepEqual(status.launchInputs?.images, {
      firmware: { name: "sevctl-ovmf.fd", sha256: toHex(sha256(OVMF)) },
      kernel: { sha256: toHex(sha256(kernel)) },
      initrd: { sha256: toHex(sha256(initrd)) },
      cmdline: { sha256: toHex(sha256(new TextEncoder().encode(`${cmdline}\0`))) },
    });
    assert.equal(status.launchInputs?.security, "sev");
    assert.equal(status.launchInputs?.vmmProfile, "qemu-legacy");
  });
});
