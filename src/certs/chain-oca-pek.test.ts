/**
 * The PEK carries two signatures, one by the CEK and one by the OCA, and both must verify (docs/sev-interface.md
 * §11 and §15 pitfall 4; the certificate format of SEV API 55766). chain-tamper.test.ts flips bits inside
 * certificates, which breaks an OCA's self-signature or the PEK's signed body (and so its CEK slot first); this
 * file builds the case where the OCA → PEK signature is the only fault: a well-formed, correctly self-signed OCA of
 * another platform next to an otherwise genuine chain. Every other link still holds, so a verifier that skipped the
 * OCA slot would accept it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emulatedChain, realChain } from "../../test/certs/support.ts";
import { isCiphervisorError } from "../errors.ts";
import {
  checkSevChain,
  parseSevChain,
  SEV_CHAIN_LINKS,
  type SevChainBytes,
  verifySevChain,
} from "./chain.ts";
import { loadBuiltinRoot, type TrustedRoot } from "./roots.ts";

function onlyOcaPekFails(chain: Required<SevChainBytes>, roots: TrustedRoot[]): void {
  const report = checkSevChain(parseSevChain(chain), { roots });
  assert.equal(report.ok, false);
  assert.deepEqual(
    report.links.map((l) => [l.link, l.ok]),
    SEV_CHAIN_LINKS.map((l) => [l, l !== "OCA → PEK"]),
    "every link but OCA → PEK holds (the foreign OCA is itself a valid self-signed OCA)",
  );
  assert.equal(report.links.find((l) => l.link === "OCA → PEK")?.detail, "signature does not verify");
  assert.throws(
    () => verifySevChain(parseSevChain(chain), { roots }),
    (e: unknown) =>
      isCiphervisorError(e, "CHAIN_INVALID") &&
      e.message === "OCA → PEK: signature does not verify" &&
      e.details?.link === "OCA → PEK",
  );
}

describe("a chain whose only fault is the OCA → PEK signature", () => {
  it("real Rome chain with the real Naples platform's OCA: refused at OCA → PEK", () => {
    const rome = realChain("rome");
    // The genuine chain verifies, so the refusal below is the OCA swap alone.
    assert.equal(verifySevChain(parseSevChain(rome), { roots: [loadBuiltinRoot("amd", "rome")] }).ok, true);
    onlyOcaPekFails({ ...rome, oca: realChain("naples").oca }, [loadBuiltinRoot("amd", "rome")]);
  });

  it("emulated Milan chain with the OCA of another emulated Milan platform: refused at OCA → PEK", () => {
    const roots = [loadBuiltinRoot("emulated", "milan")];
    const mine = emulatedChain("milan", "platform-a");
    const other = emulatedChain("milan", "platform-b");
    assert.equal(verifySevChain(parseSevChain(mine), { roots }).ok, true);
    assert.equal(verifySevChain(parseSevChain(other), { roots }).ok, true);
    onlyOcaPekFails({ ...mine, oca: other.oca }, roots);
  });
});
