import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emulatedChain, fixture, realChain } from "../../test/certs/support.ts";
import { isCiphervisorError } from "../errors.ts";
import { concat, toHex } from "../lib/bytes.ts";
import { parseAmdCert } from "./amd-cert.ts";
import {
  checkSevChain,
  parseArkCert,
  parseSevChain,
  SEV_CHAIN_LINKS,
  type SevChainBytes,
  splitAskArk,
  splitSevctlChain,
  verifySevChain,
} from "./chain.ts";
import { describeAmdCert, describeSevCert, formatCertDescription } from "./print.ts";
import {
  AMD_KEY_IDS,
  amdGenerationOfArkKeyId,
  EMULATED_GENERATIONS,
  GENERATIONS,
  isEmulatedKeyId,
  loadBuiltinRoot,
  loadBuiltinRoots,
} from "./roots.ts";
import { parseSevCert, Usage, verifySevCertSignature } from "./sev-cert.ts";

const amd = () => loadBuiltinRoots("amd");

/** Runs `fn`, expecting a CiphervisorError with `code` whose message starts with `prefix`. */
function expectError(fn: () => unknown, code: string, prefix: string): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isCiphervisorError(e), `not a CiphervisorError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.startsWith(prefix), `"${e.message}" does not start with "${prefix}"`);
    return e.message;
  }
  assert.fail(`expected ${code} "${prefix}…", but it succeeded`);
}

describe("built-in roots (docs/sev-interface.md §11.2)", () => {
  it("loads every AMD generation with the pinned key ids, and the ARKs and ASKs verify", () => {
    for (const g of GENERATIONS) {
      const root = loadBuiltinRoot("amd", g);
      assert.equal(toHex(root.ark.keyId), AMD_KEY_IDS[g].ark);
      assert.equal(toHex(root.ask.keyId), AMD_KEY_IDS[g].ask);
      assert.equal(amdGenerationOfArkKeyId(root.ark.keyId), g);
      assert.equal(root.ark.modulusBits, g === "naples" ? 2048 : 4096);
    }
  });

  it("loads the emulated roots, whose key ids are CVEMU-prefixed and not AMD's", () => {
    const roots = loadBuiltinRoots("emulated");
    assert.deepEqual(
      roots.map((r) => r.generation),
      [...EMULATED_GENERATIONS],
    );
    for (const r of roots) {
      assert.ok(isEmulatedKeyId(r.ark.keyId) && isEmulatedKeyId(r.ask.keyId));
      assert.equal(amdGenerationOfArkKeyId(r.ark.keyId), undefined);
    }
    // Every generation, Turin included, has an emulated root (the emulated fleet has all five).
    assert.deepEqual([...EMULATED_GENERATIONS], [...GENERATIONS]);
    assert.equal(loadBuiltinRoot("emulated", "turin").ark.modulusBits, 4096);
  });
});

describe("SEV chain: real AMD chains (docs/sev-interface.md §11.3, §17)", () => {
  it("verifies the real Rome chain ARK→ASK→CEK→PEK→PDH and OCA→PEK, inferring Rome from the ARK key id", () => {
    const report = verifySevChain(parseSevChain(realChain("rome")), { roots: amd() });
    assert.equal(report.ok, true);
    assert.equal(report.root?.generation, "rome");
    assert.deepEqual(
      report.links.map((l) => [l.link, l.ok]),
      SEV_CHAIN_LINKS.map((l) => [l, true]),
    );
  });

  it("verifies the real Naples chain (RSA-2048, RSA-PSS SHA-256 CEK)", () => {
    const report = verifySevChain(parseSevChain(realChain("naples")), {
      roots: [loadBuiltinRoot("amd", "naples")],
    });
    assert.equal(report.root?.generation, "naples");
  });

  it("uses the trusted root's ARK and ASK when the chain has none", () => {
    const { cek, oca, pek, pdh } = realChain("rome");
    const report = verifySevChain(parseSevChain({ cek, oca, pek, pdh }), {
      roots: [loadBuiltinRoot("amd", "rome")],
    });
    assert.match(report.links[1]!.detail, /built-in ASK/);
    // With several candidate roots and nothing to tell them apart, it refuses rather than guessing.
    expectError(
      () => verifySevChain(parseSevChain({ cek, oca, pek, pdh }), { roots: amd() }),
      "CHAIN_INVALID",
      "ARK: the chain has neither an ARK nor an ASK",
    );
  });

  it("does not verify the Naples CEK under the Rome ASK (cross-generation regression)", () => {
    const naples = realChain("naples");
    const rome = realChain("rome");
    // The raw signature check alone fails …
    const romeAsk = parseAmdCert(rome.ask);
    const naplesCek = parseSevCert(naples.cek);
    assert.equal(
      verifySevCertSignature(naplesCek, Usage.ASK, { kind: "rsa", pub: romeAsk.pub, modulusBits: 4096 }),
      false,
    );
    // … and the chain names the link.
    expectError(
      () => verifySevChain(parseSevChain({ ...rome, cek: naples.cek }), { roots: amd() }),
      "CHAIN_INVALID",
      "ASK → CEK: ",
    );
    expectError(
      () => verifySevChain(parseSevChain({ ...naples, ask: rome.ask, ark: rome.ark }), { roots: amd() }),
      "CHAIN_INVALID",
      "ASK → CEK: ",
    );
  });

  it("never trusts an unknown root, and refuses a chain rooted in a generation not asked for", () => {
    expectError(
      () => verifySevChain(parseSevChain(realChain("rome")), { roots: [loadBuiltinRoot("amd", "milan")] }),
      "CHAIN_INVALID",
      "ARK: the chain's ARK key id e6002122fb58419399d15fee7b131351 is not a trusted root",
    );
    const msg = expectError(
      () => verifySevChain(parseSevChain(realChain("rome")), { roots: loadBuiltinRoots("emulated") }),
      "CHAIN_INVALID",
      "ARK: ",
    );
    assert.match(msg, /AMD's rome root/);
  });

  it("refuses an ARK that differs from the pinned root in a reserved header byte", () => {
    const rome = realChain("rome");
    const ark = rome.ark.slice();
    ark[0x30]! ^= 1; // reserved byte inside the signed region: same key id, different certificate
    expectError(
      () => verifySevChain(parseSevChain({ ...rome, ark }), { roots: amd() }),
      "CHAIN_INVALID",
      "ARK: the chain's ARK is not the pinned AMD rome root",
    );
  });

  it("reports per-link results without stopping at the first failure", () => {
    const rome = realChain("rome");
    const pdh = rome.pdh.slice();
    pdh[5]! ^= 0x01; // api_minor: inside the signed region, structurally harmless
    const cek = rome.cek.slice();
    cek[0x200]! ^= 0x80; // must-be-zero key padding
    const report = checkSevChain(parseSevChain({ ...rome, pdh, cek }), { roots: amd() });
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.links.filter((l) => !l.ok).map((l) => [l.link, l.detail]),
      [
        ["ASK → CEK", "CEK public key padding [0xa4, 0x414) is not zero"],
        ["PEK → PDH", "signature does not verify"],
      ],
    );
  });

  it("names the link of a swapped certificate by usage", () => {
    const rome = realChain("rome");
    expectError(
      () => verifySevChain(parseSevChain({ ...rome, pek: rome.pdh, pdh: rome.pek }), { roots: amd() }),
      "CHAIN_INVALID",
      "CEK → PEK: certificate key usage is PDH, expected PEK",
    );
    expectError(
      () => verifySevChain(parseSevChain({ ...rome, cek: rome.oca }), { roots: amd() }),
      "CHAIN_INVALID",
      "ASK → CEK: certificate key usage is OCA, expected CEK",
    );
  });

  it("tolerates the malformed empty SIG2_USAGE 0x0010 of a real signed CEK (AMDESE/AMDSEV#18), outside the signed region", () => {
    const rome = realChain("rome");
    const cek = rome.cek.slice();
    new DataView(cek.buffer).setUint32(0x61c, 0x0010, true);
    verifySevChain(parseSevChain({ ...rome, cek }), { roots: amd() });
  });

  it("explains the unsigned CEK that PDH_CERT_EXPORT returns (docs/sev-interface.md §15 pitfall 18)", () => {
    const rome = realChain("rome");
    const cek = rome.cek.slice();
    new DataView(cek.buffer).setUint32(0x414, 0x1000, true);
    new DataView(cek.buffer).setUint32(0x418, 0, true);
    const msg = expectError(
      () => verifySevChain(parseSevChain({ ...rome, cek }), { roots: amd() }),
      "CHAIN_INVALID",
      "ASK → CEK: no signature slot carries the ASK usage",
    );
    assert.match(msg, /KDS/);
  });
});

describe("the unsigned Naples ARK (docs/sev-interface.md §15 pitfall 19)", () => {
  const bad = fixture("naples/ark.cert.bad");

  it("is the complete ARK minus its signature", () => {
    assert.equal(bad.length, 576);
    assert.deepEqual(concat(bad, fixture("naples/ark.cert.sig")), fixture("naples/ark.cert"));
  });

  it("is accepted only as the pinned Naples root", () => {
    const naples = realChain("naples");
    const report = verifySevChain(parseSevChain({ ...naples, ark: bad }), { roots: amd() });
    assert.match(report.links[0]!.detail, /unsigned ARK .* accepted/);
    // Not pinned: another generation is trusted.
    expectError(
      () =>
        verifySevChain(parseSevChain({ ...naples, ark: bad }), { roots: [loadBuiltinRoot("amd", "rome")] }),
      "CHAIN_INVALID",
      "ARK: ",
    );
    // Not equal to the pinned key: one modulus bit changed.
    const forged = bad.slice();
    forged[0x40 + 256 + 10]! ^= 1;
    expectError(
      () => verifySevChain(parseSevChain({ ...naples, ark: forged }), { roots: amd() }),
      "CHAIN_INVALID",
      "ARK: the chain's ARK is not the pinned AMD naples root",
    );
  });

  it("is parsed only in its exact 576-byte form; other short ARKs or ASKs are CERT_INVALID", () => {
    assert.equal(parseArkCert(bad).signature, undefined);
    expectError(
      () => parseArkCert(fixture("rome/ark.cert").subarray(0, 1088)),
      "CERT_INVALID",
      "ARK: truncated",
    );
    expectError(
      () => parseSevChain({ ...realChain("naples"), ask: fixture("naples/ask.cert").subarray(0, 576) }),
      "CERT_INVALID",
      "ARK → ASK: ask.cert: truncated",
    );
  });
});

describe("malformed input", () => {
  it("a truncated certificate is CERT_INVALID naming the link and file", () => {
    const rome = realChain("rome");
    const msg = expectError(
      () => parseSevChain({ ...rome, pdh: rome.pdh.subarray(0, 2000) }),
      "CERT_INVALID",
      "PEK → PDH: pdh.cert: a SEV certificate is 2084 bytes, this one is 2000",
    );
    assert.ok(!msg.includes("\n"));
    expectError(() => parseSevChain({ ...rome, ark: new Uint8Array(0) }), "CERT_INVALID", "ARK: ark.cert:");
    expectError(() => parseSevChain({ ...rome, cek: rome.ark }), "CERT_INVALID", "ASK → CEK: cek.cert:");
  });
});

describe("chain encodings (sevctl, AMD KDS)", () => {
  it("splits sevctl's PDH ‖ PEK ‖ OCA ‖ CEK ‖ ASK ‖ ARK and AMD's ASK ‖ ARK", () => {
    const rome = realChain("rome");
    const full = concat(rome.pdh, rome.pek, rome.oca, rome.cek, rome.ask, rome.ark);
    const split = splitSevctlChain(full);
    assert.deepEqual(split, rome);
    verifySevChain(parseSevChain(split), { roots: amd() });
    const short: SevChainBytes = splitSevctlChain(full.subarray(0, 4 * 0x824));
    assert.equal(short.ark, undefined);
    assert.deepEqual(splitAskArk(concat(rome.ask, rome.ark)), { ask: rome.ask, ark: rome.ark });
    expectError(() => splitSevctlChain(full.subarray(0, 100)), "CERT_INVALID", "chain file: 100 bytes");
    expectError(
      () => splitAskArk(rome.ask),
      "CERT_INVALID",
      "ASK ‖ ARK bundle: the ARK after the ASK is missing",
    );
  });
});

describe("emulated root (docs/sev-interface.md §15 pitfall 24)", () => {
  for (const gen of ["naples", "rome"] as const) {
    it(`accepts a ${gen} chain whose CEK is signed by the emulated ASK, only when the emulated roots are trusted`, () => {
      const chain = parseSevChain(emulatedChain(gen));
      const report = verifySevChain(chain, { roots: loadBuiltinRoots("emulated") });
      assert.equal(report.root?.trust, "emulated");
      assert.equal(report.root?.generation, gen);
      const msg = expectError(() => verifySevChain(chain, { roots: amd() }), "CHAIN_INVALID", "ARK: ");
      assert.match(msg, /emulated root/);
      // The emulated root is chosen by the ASK's certifying id even without an ARK in the chain.
      const { ark: _ark, ...noArk } = emulatedChain(gen);
      verifySevChain(parseSevChain(noArk), { roots: loadBuiltinRoots("emulated") });
    });
  }

  it("refuses an emulated CEK under an AMD ASK and vice versa", () => {
    const emu = emulatedChain("rome");
    const rome = realChain("rome");
    expectError(
      () => verifySevChain(parseSevChain({ ...emu, cek: rome.cek }), { roots: loadBuiltinRoots("emulated") }),
      "CHAIN_INVALID",
      "ASK → CEK: signature does not verify",
    );
  });
});

describe("certificate descriptions", () => {
  it("describes SEV and AMD certificates without surprises", () => {
    const rome = realChain("rome");
    const pek = describeSevCert(parseSevCert(rome.pek));
    assert.equal(pek.role, "PEK");
    assert.equal(pek.apiVersion, "0.22");
    assert.deepEqual(pek.signatures, ["OCA (ECDSA_SHA256)", "CEK (ECDSA_SHA256)"]);
    const pdh = describeSevCert(parseSevCert(rome.pdh));
    assert.equal(pdh.key, "ECDH P-384");
    const ark = describeAmdCert(parseAmdCert(rome.ark));
    assert.equal(ark.key, "RSA-4096");
    assert.equal(ark.keyId, AMD_KEY_IDS.rome.ark);
    assert.deepEqual(ark.signatures, ["self"]);
    assert.match(
      formatCertDescription(pek),
      /^PEK {3}ECDSA P-384 \(ECDSA_SHA256\) {2}API 0\.22 {2}key sha256:[0-9a-f]{16}…/,
    );
    assert.deepEqual(describeAmdCert(parseArkCert(fixture("naples/ark.cert.bad"))).signatures.length, 1);
  });
});
