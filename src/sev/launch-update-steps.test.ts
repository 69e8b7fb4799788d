/**
 * LAUNCH_UPDATE_DATA over a range larger than the firmware's step (src/sev/handlers/launch.ts `UPDATE_DATA_STEP`):
 * the host hands whole firmware images over in one command (docs/sev-interface.md §8.1), the firmware measures and
 * encrypts them a step at a time, and the result must be exactly one pass — the digest SHA-256 over all the bytes in
 * order, the ciphertext the memory engine's over the whole range — and a refused command changes nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sha256 } from "../crypto/hash.ts";
import { seededRandom } from "../crypto/random.ts";
import { measurementMac } from "../measure/measurement.ts";
import { createEmulatedPlatform, GUEST_BASE } from "./emulated-platform.ts";
import { SevFirmwareError } from "./errors.ts";
import { UPDATE_DATA_STEP } from "./handlers/launch.ts";
import { SevStatus } from "./status.ts";
import { ownerSession } from "./test-support.ts";

describe("LAUNCH_UPDATE_DATA in steps", () => {
  const policy = 0x01;
  /** Not a whole number of steps: the last one is short (but whole 16-byte blocks). */
  const length = 2 * UPDATE_DATA_STEP + 3 * 4096 + 48;

  it("measures and encrypts a multi-step range exactly as one pass over it", () => {
    const { dram, client, asids, sp } = createEmulatedPlatform({ seed: "steps" });
    const owner = ownerSession(client.pdhCertExport().pdh, policy);
    const { handle } = client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
    const asid = asids.allocate("sev");
    client.activate(handle, asid);
    const image = seededRandom("steps-image").bytes(length);
    dram.write(GUEST_BASE, image);
    client.launchUpdateData(handle, GUEST_BASE, image.length);

    // The memory engine over the whole range in one call is the reference for every step's ciphertext.
    assert.deepEqual(dram.read(GUEST_BASE, length), sp.keySlots.encrypt(asid, GUEST_BASE, image));
    assert.deepEqual(sp.keySlots.decrypt(asid, GUEST_BASE, dram.read(GUEST_BASE, length)), image);

    const blob = client.launchMeasure(handle);
    const st = client.platformStatus();
    const expected = measurementMac(owner.keys.tik, {
      apiMajor: st.apiMajor,
      apiMinor: st.apiMinor,
      build: st.build,
      policy,
      launchDigest: sha256(image),
      mnonce: blob.subarray(32),
    });
    assert.deepEqual(blob.subarray(0, 32), expected);
  });

  it("gives the digest of the same bytes loaded page by page", () => {
    const image = seededRandom("steps-pages").bytes(length);
    const digestOf = (commands: [number, number][]) => {
      const { dram, client, asids } = createEmulatedPlatform({ seed: "steps-same" });
      const owner = ownerSession(client.pdhCertExport().pdh, policy);
      const { handle } = client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
      client.activate(handle, asids.allocate("sev"));
      dram.write(GUEST_BASE, image);
      for (const [o, n] of commands) client.launchUpdateData(handle, GUEST_BASE + o, n);
      return client.launchMeasure(handle);
    };
    const pages: [number, number][] = [];
    for (let o = 0; o < length; o += 4096) pages.push([o, Math.min(4096, length - o)]);
    // Same seed, same commands before LAUNCH_MEASURE: the MNONCE is the same draw, so the whole blob must match.
    assert.deepEqual(digestOf([[0, length]]), digestOf(pages));
  });

  it("measures and encrypts alike whether the range lies in one piece of DRAM (in place) or in scattered frames (copied)", () => {
    const image = seededRandom("steps-layout").bytes(length);
    const run = (stage: (dram: { write(pa: number, b: Uint8Array): void }) => void) => {
      const { dram, client, asids } = createEmulatedPlatform({ seed: "steps-layout" });
      const owner = ownerSession(client.pdhCertExport().pdh, policy);
      const { handle } = client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
      client.activate(handle, asids.allocate("sev"));
      stage(dram);
      const viewed = dram.view(GUEST_BASE, UPDATE_DATA_STEP) !== undefined;
      client.launchUpdateData(handle, GUEST_BASE, length);
      return { viewed, memory: dram.read(GUEST_BASE, length), blob: client.launchMeasure(handle) };
    };
    const whole = run((dram) => dram.write(GUEST_BASE, image));
    // Page by page, last page first: every frame is its own allocation, so no step is one piece of memory.
    const scattered = run((dram) => {
      for (let o = Math.floor((length - 1) / 4096) * 4096; o >= 0; o -= 4096)
        dram.write(GUEST_BASE + o, image.subarray(o, Math.min(o + 4096, length)));
    });
    assert.deepEqual([whole.viewed, scattered.viewed], [true, false], "the two layouts take the two paths");
    assert.deepEqual(scattered.memory, whole.memory);
    assert.deepEqual(scattered.blob, whole.blob);
  });

  it("refuses a range whose length is not whole 16-byte blocks before touching a byte", () => {
    const { dram, client, asids } = createEmulatedPlatform({ seed: "steps-refused" });
    const owner = ownerSession(client.pdhCertExport().pdh, policy);
    const { handle } = client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
    client.activate(handle, asids.allocate("sev"));
    const image = seededRandom("steps-refused-image").bytes(length);
    dram.write(GUEST_BASE, image);
    assert.throws(
      () => client.launchUpdateData(handle, GUEST_BASE, length - 8),
      (e: unknown) => e instanceof SevFirmwareError && e.status === SevStatus.INVALID_LENGTH,
    );
    assert.deepEqual(dram.read(GUEST_BASE, length), image);
  });
});
