/**
 * Every single-bit flip inside a signed region must fail verification, with an error naming the link in which
 * the tampered certificate is the subject (docs/threat-model.md E-PARSER-FUZZ: 100% of flips). Exhaustive over the PDH
 * and ASK signed regions; every byte once (at a seeded bit) for CEK, OCA, PEK and the ARK.
 *
 * The untouched certificates are parsed once and one SevChainCache is shared: untouched links are answered from
 * the cache and imported signer keys reused, so each flip costs at most one signature verification.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { realChain, sampler } from "../../test/certs/support.ts";
import { isCiphervisorError } from "../errors.ts";
import { AMD_HEADER_SIZE } from "./amd-cert.ts";
import {
  LINK_OF_ROLE,
  parseSevChain,
  parseSevChainCert,
  SevChainCache,
  type SevChainRole,
  verifySevChain,
} from "./chain.ts";
import { loadBuiltinRoot } from "./roots.ts";
import { SEV_CERT_SIGNED_SIZE, Usage, verifySevCertSignature } from "./sev-cert.ts";

const rome = realChain("rome");
const parsed = parseSevChain(rome);
const roots = [loadBuiltinRoot("amd", "rome")];
const cache = new SevChainCache();

/** Flips `bit` of `role`'s file; returns the failure detail, or fails the test if the chain still verifies. */
function flipFails(role: SevChainRole, bit: number): string {
  const bytes = rome[role].slice();
  bytes[bit >> 3]! ^= 1 << (bit & 7);
  const link = LINK_OF_ROLE[role];
  try {
    verifySevChain({ ...parsed, [role]: parseSevChainCert(role, bytes) }, { roots, cache });
  } catch (e) {
    if (!isCiphervisorError(e) || (e.code !== "CHAIN_INVALID" && e.code !== "CERT_INVALID")) throw e;
    if (!e.message.startsWith(`${link}: `)) {
      assert.fail(`${role} bit ${bit}: "${e.message}" does not name ${link}`);
    }
    return e.message.slice(link.length + 2);
  }
  return assert.fail(`${role}: flipping bit ${bit} (byte 0x${(bit >> 3).toString(16)}) still verifies`);
}

/** Failure details grouped with numbers and ids blanked, to see which check caught the flips. */
function tally(details: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const d of details) {
    const k = d.replace(/[0-9a-f]{8,}/g, "…").replace(/0x[0-9a-f]+|\d+/g, "N");
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

describe("single-bit flips in signed regions (real Rome chain)", () => {
  it("the untampered chain verifies (and primes the cache)", () => {
    verifySevChain(parsed, { roots, cache });
  });

  it("every bit of the PDH signed region [0, 0x414) fails at PEK → PDH", () => {
    const details: string[] = [];
    for (let bit = 0; bit < SEV_CERT_SIGNED_SIZE * 8; bit++) details.push(flipFails("pdh", bit));
    const t = tally(details);
    // Each kind of check took part: must-be-zero padding, curve membership, parse, and the signature itself.
    assert.equal(t.get("PDH public key padding [N, N) is not zero"), (0x414 - 0xa4) * 8, [...t].join("\n"));
    assert.ok((t.get("PDH public key is not a point on P-N") ?? 0) > 700, [...t].join("\n"));
    assert.ok((t.get("signature does not verify") ?? 0) >= 16, [...t].join("\n"));
  });

  it("the PEK signature alone catches a flip in every byte of the PDH signed region", () => {
    // Bypasses the structural checks above: the signature must not depend on them.
    const pek = parsed.pek;
    if (pek.key.kind !== "ecc") assert.fail("PEK is not ECC");
    const signer = { kind: "ecc" as const, pub: pek.key.pub, keyObject: cache.ecKey(pek.key.pub) };
    assert.ok(verifySevCertSignature(parsed.pdh, Usage.PEK, signer));
    const pick = sampler(0x9d4);
    for (let byte = 0; byte < SEV_CERT_SIGNED_SIZE; byte++) {
      const bytes = rome.pdh.slice();
      bytes[byte]! ^= 1 << pick(8);
      // Same signature slots, tampered signed bytes: no parsing or structural check in the way.
      assert.equal(
        verifySevCertSignature({ ...parsed.pdh, bytes }, Usage.PEK, signer),
        false,
        `byte 0x${byte.toString(16)}`,
      );
    }
  });

  it("every bit of the ASK signed region (header, exponent, modulus) fails at ARK → ASK", () => {
    const signed = AMD_HEADER_SIZE + 512 + 512;
    assert.equal(rome.ask.length, signed + 512);
    const details: string[] = [];
    for (let bit = 0; bit < signed * 8; bit++) details.push(flipFails("ask", bit));
    assert.ok((tally(details).get("signature does not verify") ?? 0) > 8000, [...tally(details)].join("\n"));
  });

  for (const role of ["cek", "oca", "pek"] as const) {
    it(`every byte of the ${role.toUpperCase()} signed region, at a seeded bit, fails at ${LINK_OF_ROLE[role]}`, () => {
      const pick = sampler(0x5e7 + role.charCodeAt(0));
      for (let byte = 0; byte < SEV_CERT_SIGNED_SIZE; byte++) flipFails(role, byte * 8 + pick(8));
    });
  }

  it("every byte of the ARK, at a seeded bit, fails at ARK (it must be the pinned root)", () => {
    const pick = sampler(0xa4c);
    for (let byte = 0; byte < rome.ark.length; byte++) flipFails("ark", byte * 8 + pick(8));
  });
});
