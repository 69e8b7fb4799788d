/**
 * Guest-owner ECDH keys at LAUNCH_START (docs/threat-model.md §8 item 14; the CVE-2019-9836 class): 10,000 invalid GODH
 * public keys — random off-curve points, coordinates ≥ p, the point at infinity encoded as (0, 0), wrong curve ids,
 * wrong usage — are all refused with INVALID_CERTIFICATE and no guest context; 100 valid ones are all accepted.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Algo, encodeSevCert, Usage } from "../certs/sev-cert.ts";
import { P384 } from "../crypto/ec.ts";
import { seededRandom } from "../crypto/random.ts";
import { bigToBE, bigToLE } from "../lib/bytes.ts";
import { createLaunchSession } from "../owner/session.ts";
import { createEmulatedPlatform } from "./emulated-platform.ts";
import { formatStatus, SevStatus } from "./status.ts";
import { statusOf } from "./test-support.ts";

describe("GODH keys at LAUNCH_START", () => {
  const p = createEmulatedPlatform({ seed: "ecdh-input" });
  const pdh = p.client.pdhCertExport().pdh;
  const valid = createLaunchSession(pdh, 0, seededRandom("valid-0"));

  it("10,000 invalid keys are refused before any guest exists", () => {
    const rng = seededRandom("invalid-keys");
    const kinds = ["random", "x>=p", "y>=p", "infinity", "curve", "usage"] as const;
    for (let i = 0; i < 10_000; i++) {
      const kind = kinds[i % kinds.length]!;
      let cert: Uint8Array;
      const pub = { x: rng.bytes(48), y: rng.bytes(48) };
      if (kind === "x>=p") pub.x = bigToBE(P384.p + (BigInt(i) % 1000n), 48);
      if (kind === "y>=p") pub.y = bigToBE(P384.p + (BigInt(i) % 1000n), 48);
      if (kind === "infinity") {
        pub.x = new Uint8Array(48);
        pub.y = new Uint8Array(48);
      }
      cert = encodeSevCert({ apiMajor: 0, apiMinor: 0, usage: Usage.PDH, algo: Algo.ECDH_SHA256, pub });
      if (kind === "curve" || kind === "usage") {
        // A valid point with a wrong curve id (P-256 = 1) or a wrong key usage.
        cert = valid.godhCert.slice();
        if (kind === "curve") cert.set(bigToLE(1n, 4), 0x10);
        else cert.set(bigToLE(BigInt(Usage.PEK), 4), 0x08);
      }
      const status = statusOf(() =>
        p.client.launchStart({ policy: 0, godhCert: cert, session: valid.session }),
      );
      assert.equal(formatStatus(status), formatStatus(SevStatus.INVALID_CERTIFICATE), `${kind} #${i}`);
    }
    assert.equal(p.client.platformStatus().guestCount, 0);
  });

  it("100 valid owner keys are all accepted", () => {
    for (let i = 0; i < 100; i++) {
      const s = createLaunchSession(pdh, 0x01, seededRandom(`valid-${i}`));
      const { handle } = p.client.launchStart({ policy: 0x01, godhCert: s.godhCert, session: s.session });
      assert.equal(p.client.guestStatus(handle).state, "LUPDATE");
      p.client.decommission(handle);
    }
  });
});
