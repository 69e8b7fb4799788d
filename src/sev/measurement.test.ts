/**
 * The launch measurement (docs/threat-model.md §8 item 7): random launches cross-checked against an HMAC computed here
 * from docs/sev-interface.md §8.2 alone; permuted placement of measured regions keeps the SEV digest (undeSErVed trust:
 * the digest covers content, never addresses); every single policy-bit flip changes the measurement.
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { measurementMac } from "../measure/measurement.ts";
import { createLaunchSession } from "../owner/session.ts";
import { createEmulatedPlatform, GUEST_BASE } from "./emulated-platform.ts";

/** §8.2 written out independently of src/measure. */
function referenceMeasure(
  tik: Uint8Array,
  api: [number, number, number],
  policy: number,
  ld: Buffer,
  mnonce: Uint8Array,
) {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(policy >>> 0);
  return createHmac("sha256", tik)
    .update(Buffer.from([0x04, ...api]))
    .update(p)
    .update(ld)
    .update(mnonce)
    .digest();
}

describe("launch measurement", () => {
  const policy = 0x01;
  const p = createEmulatedPlatform({ seed: "measure" });
  const owner = createLaunchSession(p.client.pdhCertExport().pdh, policy, seededRandom("measure-owner"));
  const st = p.client.platformStatus();
  const api: [number, number, number] = [st.apiMajor, st.apiMinor, st.build];

  /** Launches with the owner's session, loads `regions` (address, bytes) in order, returns MEASURE ‖ MNONCE. */
  function launch(regions: [number, Uint8Array][]): Uint8Array {
    const { handle } = p.client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
    const asid = p.asids.allocate("sev");
    p.client.activate(handle, asid);
    for (const [pa, bytes] of regions) {
      p.dram.write(pa, bytes);
      p.client.launchUpdateData(handle, pa, bytes.length);
    }
    const blob = p.client.launchMeasure(handle);
    p.client.deactivate(handle);
    p.asids.release(asid, true);
    p.client.decommission(handle);
    return blob;
  }

  it("1,000 random launches match an independent HMAC over the submitted bytes", () => {
    const rng = seededRandom("random-launches");
    for (let i = 0; i < 1000; i++) {
      const n = 1 + (rng.bytes(1)[0]! % 3);
      const regions: [number, Uint8Array][] = [];
      const ld = createHash("sha256");
      for (let r = 0; r < n; r++) {
        const len = 16 * (1 + (rng.bytes(1)[0]! % 32));
        const bytes = rng.bytes(len);
        regions.push([GUEST_BASE + r * 0x1000, bytes]);
        ld.update(bytes);
      }
      const blob = launch(regions);
      const expected = referenceMeasure(owner.keys.tik, api, policy, ld.digest(), blob.subarray(32));
      assert.deepEqual(Buffer.from(blob.subarray(0, 32)), expected, `launch ${i}`);
    }
  });

  it("500 permutations of where two measured regions live give the same digest (content only, §8.1)", () => {
    const rng = seededRandom("permutations");
    for (let i = 0; i < 500; i++) {
      const a = rng.bytes(64);
      const b = rng.bytes(32);
      const ld = createHash("sha256").update(a).update(b).digest();
      const slot = (k: number) => GUEST_BASE + 0x10000 + ((rng.bytes(1)[0]! + k * 7) % 64) * 0x1000;
      const [pa1, pa2] = [slot(0), slot(1) === slot(0) ? slot(0) + 0x100000 : slot(1)];
      for (const [first, second] of [
        [pa1, pa2],
        [pa2, pa1],
      ] as const) {
        const blob = launch([
          [first, a],
          [second, b],
        ]);
        const expected = referenceMeasure(owner.keys.tik, api, policy, ld, blob.subarray(32));
        assert.deepEqual(Buffer.from(blob.subarray(0, 32)), expected, `permutation ${i}`);
      }
    }
  });

  it("every single policy-bit flip changes the measurement (32 bits × 100 launches)", () => {
    const rng = seededRandom("policy-flips");
    for (let i = 0; i < 100; i++) {
      const input = {
        apiMajor: 0,
        apiMinor: 24,
        build: 15,
        policy: 0x05,
        launchDigest: rng.bytes(32),
        mnonce: rng.bytes(16),
      };
      const tik = rng.bytes(16);
      const base = measurementMac(tik, input);
      for (let bit = 0; bit < 32; bit++) {
        const flipped = measurementMac(tik, { ...input, policy: (input.policy ^ (1 << bit)) >>> 0 });
        assert.notDeepEqual(flipped, base, `bit ${bit}`);
      }
    }
  });
});
