/** The `owner measure` arguments the server reports, for each shape of launch a host can report. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ownerMeasureArgs } from "./owner-measure.ts";

const base = {
  securityMode: "sev-es" as const,
  vmmProfile: "qemu" as const,
  vcpus: 2,
  cpuSignature: { family: 0x17, model: 0x31, stepping: 0, value: 0x830f10 },
  images: { firmware: { name: "OVMF.fd", sha256: "ab" }, kernel: { sha256: "cd" } },
};

describe("ownerMeasureArgs", () => {
  it("names every input the digest depends on, with placeholders for the owner's files", () => {
    assert.deepEqual(ownerMeasureArgs(base), [
      "--firmware",
      "FIRMWARE",
      "--kernel",
      "KERNEL",
      "--mode",
      "sev-es",
      "--vcpus",
      "2",
      "--vcpu-sig",
      "0x830f10",
      "--vmm",
      "qemu",
    ]);
    // SEV measures no VMSA: no vCPU or VMM flags.
    assert.deepEqual(ownerMeasureArgs({ ...base, securityMode: "sev", images: undefined }), [
      "--firmware",
      "FIRMWARE",
      "--mode",
      "sev",
    ]);
    // Without a reported signature, the vCPU model (or a placeholder for it).
    const noSig = { ...base, cpuSignature: undefined, images: undefined };
    assert.deepEqual(ownerMeasureArgs({ ...noSig, vcpuType: "EPYC-v4" }).slice(-4), [
      "--vcpu-type",
      "EPYC-v4",
      "--vmm",
      "qemu",
    ]);
    assert.deepEqual(ownerMeasureArgs(noSig).slice(-4), ["--vcpu-type", "VCPU_TYPE", "--vmm", "qemu"]);
    // Direct boot with an initrd and a command line.
    const direct = {
      ...base,
      images: { ...base.images, initrd: { sha256: "ef" }, cmdline: { sha256: "01" } },
    };
    assert.deepEqual(ownerMeasureArgs(direct).slice(0, 8), [
      "--firmware",
      "FIRMWARE",
      "--kernel",
      "KERNEL",
      "--initrd",
      "INITRD",
      "--append",
      "CMDLINE",
    ]);
  });
});
