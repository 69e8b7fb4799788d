import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ownerMeasureArgs as cliArgs } from "../../../src/cli/commands/vm-attest.ts";
import { ownerMeasureArgs, ownerMeasureLine } from "./attestation.ts";
import type { LaunchMeasurement } from "./types.ts";

const base: LaunchMeasurement = {
  vm: "v",
  host: "rome-1",
  measurement: "AAAA",
  apiMajor: 0,
  apiMinor: 24,
  build: 15,
  policy: 5,
  loaderSha256: "ab",
  attestationState: "measured",
  securityMode: "sev-es",
  vmmProfile: "qemu",
  vcpus: 2,
  cpuSignature: { value: 0x830f10 },
  images: { firmware: { name: "OVMF.fd", sha256: "ab" }, kernel: { sha256: "cd" } },
};

describe("web: the guest owner's measure line", () => {
  it("is the CLI's line, for SEV-ES with a signature, SEV, and a vCPU type", () => {
    for (const m of [
      base,
      { ...base, securityMode: "sev" },
      { ...base, cpuSignature: undefined, vcpuType: "EPYC-v4" },
    ] as LaunchMeasurement[]) {
      assert.deepEqual(ownerMeasureArgs(m), cliArgs(m as never));
    }
    assert.equal(
      ownerMeasureLine(base),
      "ciphervisor owner measure --firmware FIRMWARE --kernel KERNEL --mode sev-es --vcpus 2 --vcpu-sig 0x830f10 --vmm qemu",
    );
  });
});
