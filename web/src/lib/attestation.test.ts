import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ownerMeasureLine } from "./attestation.ts";
import type { LaunchMeasurement } from "./types.ts";

describe("web: the guest owner's measure line", () => {
  it("is the server's arguments after 'ciphervisor owner measure', as they came", () => {
    const m = {
      ownerMeasure: ["--firmware", "FIRMWARE", "--mode", "sev-es", "--vcpus", "2", "--vmm", "qemu"],
    } as unknown as LaunchMeasurement;
    assert.equal(
      ownerMeasureLine(m),
      "ciphervisor owner measure --firmware FIRMWARE --mode sev-es --vcpus 2 --vmm qemu",
    );
  });
});
