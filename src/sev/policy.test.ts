/**
 * The policy matrix (docs/sev-interface.md §6): all 64 combinations of the six policy bits × nine governed operations
 * (docs/threat-model.md §8 item 11: 576 cases) — debug (NODBG), key sharing (NOKS), VMSA measurement and ASID class (ES), sending
 * (NOSEND), same-domain targets (DOMAIN) and AMD-rooted targets (SEV).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Algo, encodeSevCert, signSevCertEcdsa, Usage } from "../certs/sev-cert.ts";
import { generateEcKeyPair } from "../crypto/ec.ts";
import { seededRandom } from "../crypto/random.ts";
import { concat } from "../lib/bytes.ts";
import { createEmulatedPlatform, type EmulatedPlatform } from "./emulated-platform.ts";
import { PolicyBit } from "./policy.ts";
import { formatStatus, SevStatus } from "./status.ts";
import { DBG_DST, IMAGE_LEN, IMAGE_PA, receiverCerts, statusOf, VMSA_PA } from "./test-support.ts";

function eq(actual: number, expected: number, what: string): void {
  assert.equal(formatStatus(actual), formatStatus(expected), what);
}

/** An owner's OCA imported into a platform (PEK_CSR → sign → PEK_CERT_IMPORT). */
function takeOwnership(p: EmulatedPlatform, ocaSeed: string): void {
  const oca = generateEcKeyPair(seededRandom(ocaSeed));
  const ocaCert = signSevCertEcdsa(
    encodeSevCert({ apiMajor: 0, apiMinor: 0, usage: Usage.OCA, algo: Algo.ECDSA_SHA256, pub: oca.pub }),
    1,
    Usage.OCA,
    oca.d,
  );
  p.client.pekCertImport(signSevCertEcdsa(p.client.pekCsr(), 1, Usage.OCA, oca.d), ocaCert);
}

describe("policy matrix: 64 combinations × governed operations", () => {
  const a = createEmulatedPlatform({ seed: "sender" });
  const otherDomain = createEmulatedPlatform({ seed: "other-domain" });
  const sameDomain = createEmulatedPlatform({ seed: "same-domain" });
  takeOwnership(a, "owner-oca");
  takeOwnership(sameDomain, "owner-oca");
  const toOther = receiverCerts(otherDomain);
  const toSame = receiverCerts(sameDomain);
  // A receiver with an older firmware API (naples, 0.17) and a platform INITed without SEV-ES.
  const toOlder = receiverCerts(createEmulatedPlatform({ seed: "older", generation: "naples" }));
  const noEs = createEmulatedPlatform({ seed: "no-es", init: false });
  noEs.client.init({ es: false });
  // An ASK ‖ ARK ending in a root this firmware does not trust: the ASK posing as its own ARK.
  const ask = toOther.amdCerts.subarray(0, toOther.amdCerts.length / 2);
  const untrustedAmd = concat(ask, ask);

  for (let policy = 0; policy < 64; policy++) {
    const bit = (b: number) => (policy & b) !== 0;
    it(`policy 0x${policy.toString(16).padStart(2, "0")}`, () => {
      const es = bit(PolicyBit.ES);
      const { handle } = a.client.launchStart({ policy });
      // ES: the guest must get an ASID of its class.
      const asid = a.asids.allocate(es ? "es" : "sev");
      const wrongClass = es ? a.sp.pools.sev.first : 1;
      eq(
        statusOf(() => a.client.activate(handle, wrongClass)),
        SevStatus.INVALID_ASID,
        "wrong ASID class",
      );
      a.client.activate(handle, asid);

      // NOKS: another context may share this key only without NOKS.
      const share = statusOf(() => a.client.launchStart({ policy, shareWith: handle }));
      eq(share, bit(PolicyBit.NOKS) ? SevStatus.POLICY_FAILURE : SevStatus.SUCCESS, "key sharing");
      // ES: LAUNCH_UPDATE_VMSA only for ES guests.
      a.client.launchUpdateData(handle, IMAGE_PA, IMAGE_LEN);
      eq(
        statusOf(() => a.client.launchUpdateVmsa(handle, VMSA_PA)),
        es ? SevStatus.SUCCESS : SevStatus.UNSUPPORTED,
        "LAUNCH_UPDATE_VMSA",
      );
      a.client.launchMeasure(handle);
      a.client.launchFinish(handle);

      // NODBG: every debug command refused, destination untouched.
      const before = a.dram.read(DBG_DST, 64);
      eq(
        statusOf(() => a.client.dbgDecrypt(handle, IMAGE_PA, DBG_DST, 64)),
        bit(PolicyBit.NODBG) ? SevStatus.POLICY_FAILURE : SevStatus.SUCCESS,
        "DBG_DECRYPT",
      );
      if (bit(PolicyBit.NODBG))
        assert.deepEqual(a.dram.read(DBG_DST, 64), before, "NODBG left the destination");

      const send = (to: typeof toOther) => {
        const s = statusOf(() => a.client.sendStart(handle, to));
        if (s === SevStatus.SUCCESS) a.client.sendCancel(handle);
        return s;
      };
      const nosend = bit(PolicyBit.NOSEND);
      // SEV: the target's chain must reach a trusted ARK.
      eq(
        send({ ...toOther, amdCerts: untrustedAmd }),
        nosend
          ? SevStatus.POLICY_FAILURE
          : bit(PolicyBit.SEV)
            ? SevStatus.INVALID_CERTIFICATE
            : bit(PolicyBit.DOMAIN)
              ? SevStatus.POLICY_FAILURE
              : SevStatus.SUCCESS,
        "SEND_START, untrusted AMD root",
      );
      // DOMAIN: a platform with another OCA is refused, one with the same OCA accepted.
      eq(
        send(toOther),
        nosend || bit(PolicyBit.DOMAIN) ? SevStatus.POLICY_FAILURE : SevStatus.SUCCESS,
        "SEND_START, other domain",
      );
      eq(send(toSame), nosend ? SevStatus.POLICY_FAILURE : SevStatus.SUCCESS, "SEND_START, same domain");
      // The policy's minimum API is 0.0 here, so an older receiver is refused only by NOSEND or DOMAIN.
      eq(
        send(toOlder),
        nosend || bit(PolicyBit.DOMAIN) ? SevStatus.POLICY_FAILURE : SevStatus.SUCCESS,
        "SEND_START, older receiver",
      );
      // ES needs a platform INITed with SEV-ES.
      const onNoEs = statusOf(() => noEs.client.launchStart({ policy }));
      eq(onNoEs, es ? SevStatus.POLICY_FAILURE : SevStatus.SUCCESS, "launch on a platform without SEV-ES");
      for (const g of noEs.sp.snapshot().guests) noEs.client.decommission(g.handle);

      a.client.deactivate(handle);
      for (const g of a.sp.snapshot().guests) {
        if (g.active) a.client.deactivate(g.handle);
        a.client.decommission(g.handle);
      }
      a.asids.release(asid, true);
    });
  }
});

describe("policy: reserved bits and minimum API version", () => {
  it("reserved bits 6–15 are refused at LAUNCH_START", () => {
    const { client } = createEmulatedPlatform();
    for (let bit = 6; bit < 16; bit++) {
      eq(
        statusOf(() => client.launchStart({ policy: 1 << bit })),
        SevStatus.POLICY_FAILURE,
        `bit ${bit}`,
      );
    }
    assert.equal(client.platformStatus().guestCount, 0);
  });

  it("a minimum API above the firmware's is refused; equal or lower is accepted", () => {
    const { client } = createEmulatedPlatform({ generation: "rome" }); // API 0.24
    const api = (major: number, minor: number) => (major << 16) | (minor << 24);
    eq(
      statusOf(() => client.launchStart({ policy: api(0, 25) })),
      SevStatus.POLICY_FAILURE,
      "0.25 > 0.24",
    );
    eq(
      statusOf(() => client.launchStart({ policy: api(1, 0) })),
      SevStatus.POLICY_FAILURE,
      "1.0 > 0.24",
    );
    eq(
      statusOf(() => client.launchStart({ policy: api(0, 24) })),
      SevStatus.SUCCESS,
      "0.24",
    );
  });

  it("SEND_START refuses a receiver whose API is below the policy minimum", () => {
    const a = createEmulatedPlatform({ generation: "milan", seed: "m" }); // 1.51
    const older = createEmulatedPlatform({ generation: "rome", seed: "r" }); // 0.24
    const policy = (1 << 16) | (0 << 24);
    const { handle } = a.client.launchStart({ policy });
    a.client.activate(handle, a.asids.allocate("sev"));
    a.client.launchMeasure(handle);
    a.client.launchFinish(handle);
    eq(
      statusOf(() => a.client.sendStart(handle, receiverCerts(older))),
      SevStatus.POLICY_FAILURE,
      "0.24 < 1.0",
    );
    eq(
      statusOf(() => a.client.sendStart(handle, receiverCerts(a))),
      SevStatus.SUCCESS,
      "1.51 ≥ 1.0",
    );
  });

  it("SEV-ES needs the hardware: Naples refuses the ES INIT flag and ES-policy guests", () => {
    const naples = createEmulatedPlatform({ generation: "naples", init: false });
    eq(
      statusOf(() => naples.client.init({ es: true, tmrPa: 0x200000 })),
      SevStatus.INVALID_CONFIG,
      "INIT with ES",
    );
    naples.client.init({ es: false });
    eq(
      statusOf(() => naples.client.launchStart({ policy: PolicyBit.ES })),
      SevStatus.POLICY_FAILURE,
      "ES guest",
    );
  });
});
