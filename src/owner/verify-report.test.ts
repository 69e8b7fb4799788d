import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixture, sampler } from "../../test/certs/support.ts";
import { parseDer } from "../certs/der.ts";
import { loadBuiltinRoot } from "../certs/roots.ts";
import { decodeSnpReportInput, decodeSnpTcb, parseSnpReport, SNP_REPORT_SIZE } from "../certs/snp-report.ts";
import { parseVcek } from "../certs/vcek.ts";
import { parsePemCertificates, parseX509, verifyX509Signature } from "../certs/x509.ts";
import { isCiphervisorError } from "../errors.ts";
import { toHex } from "../lib/bytes.ts";
import { checkSnpReport, SNP_REPORT_LINKS, verifySnpReport } from "./verify-report.ts";

const reportHex = fixture("milan-snp/report_milan.hex");
const report = decodeSnpReportInput(reportHex);
const vcek = fixture("milan-snp/vcek_milan.der");
const chain = fixture("milan-snp/cert_chain_milan");

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

describe("SNP report codec (docs/sev-interface.md §14)", () => {
  it("decodes the real Milan report from hex text", () => {
    assert.equal(report.length, SNP_REPORT_SIZE);
    assert.deepEqual(decodeSnpReportInput(report), report, "raw bytes pass through");
    const r = parseSnpReport(report);
    assert.equal(r.version, 2);
    assert.equal(r.policy, 0x30000n);
    assert.equal(r.signatureAlgo, 1);
    assert.equal(r.vmpl, 0);
    assert.match(toHex(r.measurement), /^7a1e5c26.*841f$/);
    assert.match(toHex(r.chipId), /^d49554ec.*1eb6$/);
    assert.equal(r.reportedTcb, 0x7308000000000003n);
    assert.equal(r.cpuid, undefined, "v2 reports carry no CPUID fields");
    assert.deepEqual(r.currentVersion, { major: 1, minor: 0x34, build: 4 });
    assert.deepEqual(decodeSnpTcb(r.reportedTcb, "milan"), {
      raw: 0x7308000000000003n,
      bootloader: 3,
      tee: 0,
      snp: 8,
      microcode: 0x73,
    });
    assert.deepEqual(decodeSnpTcb(0x7300000008000403n, "turin"), {
      raw: 0x7300000008000403n,
      fmc: 3,
      bootloader: 4,
      tee: 0,
      snp: 8,
      microcode: 0x73,
    });
  });

  it("refuses wrong sizes, including the empty report (docs/threat-model.md §6)", () => {
    expectError(
      () => parseSnpReport(new Uint8Array(0)),
      "REPORT_INVALID",
      "SNP report: an SNP attestation report is 1184 bytes, this one is 0",
    );
    expectError(
      () => decodeSnpReportInput(new Uint8Array(0)),
      "REPORT_INVALID",
      "SNP report: hex text decodes to 0 bytes",
    );
    expectError(
      () => decodeSnpReportInput(reportHex.subarray(0, 100)),
      "REPORT_INVALID",
      "SNP report: hex text decodes to 50 bytes",
    );
    expectError(() => decodeSnpReportInput(vcek), "REPORT_INVALID", "SNP report: 1360 bytes is neither");
    expectError(() => verifySnpReport({ report: report.subarray(1), vcek }), "REPORT_INVALID", "SNP report:");
  });
});

describe("X.509 and the VCEK", () => {
  it("parses the Milan VCEK: serial 0 (docs/sev-interface.md §15 pitfall 22), product, TCB and hwID extensions", () => {
    const v = parseVcek(vcek);
    assert.deepEqual([...v.cert.serial], [0]);
    assert.equal(v.productName, "Milan-B0");
    assert.equal(v.generation, "milan");
    assert.deepEqual(v.tcb, { bootloader: 3, tee: 0, snp: 8, microcode: 0x73 });
    assert.equal(toHex(v.hwId), toHex(parseSnpReport(report).chipId));
    assert.equal(v.cert.issuerCn, "SEV-Milan");
    assert.deepEqual(v.cert.signatureAlgorithm, {
      kind: "rsa-pss",
      hash: "sha384",
      mgf1Hash: "sha384",
      saltLength: 48,
      trailerField: 1,
    });
  });

  it("the X.509 ARK/ASK hold the same RSA keys as the legacy Milan ARK/ASK (docs/sev-interface.md §15 pitfall 23)", () => {
    const [askDer, arkDer] = parsePemCertificates(new TextDecoder().decode(chain));
    const ask = parseX509(askDer!, "ASK");
    const ark = parseX509(arkDer!, "ARK");
    const legacy = loadBuiltinRoot("amd", "milan");
    assert.equal(ark.subjectCn, "ARK-Milan");
    assert.ok(ark.publicKey.kind === "rsa" && ask.publicKey.kind === "rsa");
    assert.equal(toHex(ark.publicKey.pub.modulus), toHex(legacy.ark.pub.modulus));
    assert.equal(toHex(ask.publicKey.pub.modulus), toHex(legacy.ask.pub.modulus));
    assert.ok(verifyX509Signature(ark, ark.publicKey.pub));
    assert.ok(verifyX509Signature(ask, ark.publicKey.pub));
    assert.ok(!verifyX509Signature(ask, ask.publicKey.pub));
  });

  it("AMD's Turin X.509 ARK/ASK hold the legacy Turin keys and chain ARK → ASK → the real Turin VCEK (docs/sev-interface.md §15 pitfall 23)", () => {
    const pem = (n: string) => parsePemCertificates(new TextDecoder().decode(fixture(`turin-snp/${n}`)));
    const [askDer, arkDer] = pem("cert_chain_turin");
    assert.deepEqual(pem("ark.pem"), [arkDer], "ark.pem is the chain's ARK");
    assert.deepEqual(pem("ask.pem"), [askDer], "ask.pem is the chain's ASK");
    const ark = parseX509(arkDer!, "ARK");
    const ask = parseX509(askDer!, "ASK");
    const legacy = loadBuiltinRoot("amd", "turin");
    assert.deepEqual(fixture("turin-snp/ark.cert"), legacy.ark.bytes);
    assert.deepEqual(fixture("turin-snp/ask.cert"), legacy.ask.bytes);
    assert.equal(ark.subjectCn, "ARK-Turin");
    assert.equal(ask.subjectCn, "SEV-Turin");
    assert.ok(ark.publicKey.kind === "rsa" && ask.publicKey.kind === "rsa");
    assert.equal(toHex(ark.publicKey.pub.modulus), toHex(legacy.ark.pub.modulus));
    assert.equal(toHex(ask.publicKey.pub.modulus), toHex(legacy.ask.pub.modulus));
    assert.ok(verifyX509Signature(ark, ark.publicKey.pub));
    assert.ok(verifyX509Signature(ask, ark.publicKey.pub));
    const v = parseVcek(fixture("turin-snp/vcek_turin.der"));
    assert.deepEqual([v.generation, v.productName, v.hwId.length], ["turin", "Turin", 8]);
    assert.equal(v.tcb.fmc, 0);
    assert.equal(v.cert.issuerCn, "SEV-Turin");
    assert.ok(verifyX509Signature(v.cert, ask.publicKey.pub));
    assert.ok(!verifyX509Signature(v.cert, ark.publicKey.pub));
  });

  it("the DER reader refuses indefinite, overlong and truncated lengths with CERT_INVALID", () => {
    expectError(
      () => parseDer(new Uint8Array([0x30, 0x80, 0, 0]), "x"),
      "CERT_INVALID",
      "x: malformed DER: indefinite",
    );
    expectError(
      () => parseDer(new Uint8Array([0x30, 0x81, 0x05, 0, 0, 0, 0, 0]), "x"),
      "CERT_INVALID",
      "x: malformed DER: non-minimal",
    );
    expectError(
      () => parseDer(new Uint8Array([0x30, 0x05, 0]), "x"),
      "CERT_INVALID",
      "x: malformed DER: element at 0 claims 5",
    );
    expectError(
      () => parseDer(new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xf5]), "x"),
      "CERT_INVALID",
      "x: malformed DER",
    );
    expectError(() => parseVcek(vcek.subarray(0, 700)), "CERT_INVALID", "VCEK: malformed DER");
    expectError(
      () => parseVcek(new TextEncoder().encode("hello")),
      "CERT_INVALID",
      "VCEK: neither a DER nor a PEM",
    );
  });
});

describe("SNP report verification", () => {
  it("verifies the real Milan report with the PEM chain and with the built-in roots", () => {
    for (const input of [
      { report, vcek, chain },
      { report, vcek },
    ]) {
      const v = verifySnpReport(input);
      assert.equal(v.ok, true);
      assert.equal(v.generation, "milan");
      assert.deepEqual(
        v.links.map((l) => l.ok),
        SNP_REPORT_LINKS.map(() => true),
      );
    }
    assert.equal(verifySnpReport({ report, vcek, chain }).chainSource, "pem");
  });

  it("a flipped bit anywhere in the report fails (every other byte of the signed region and r, s; every 8th after)", () => {
    const pick = sampler(0x5e9);
    for (let byte = 0; byte < SNP_REPORT_SIZE; byte += byte < 0x330 ? 2 : 8) {
      const bad = report.slice();
      bad[byte]! ^= 1 << pick(8);
      expectError(() => verifySnpReport({ report: bad, vcek }), "REPORT_INVALID", "VCEK → report: ");
    }
  });

  it("names chip_id and reported_tcb mismatches in the per-step results", () => {
    const bad = report.slice();
    bad[0x1a0]! ^= 1;
    bad[0x180]! ^= 1; // bootloader SPL 3 → 2
    const c = checkSnpReport({ report: bad, vcek });
    assert.deepEqual(
      c.links.filter((l) => !l.ok).map((l) => l.link),
      ["VCEK → report", "chip_id", "reported_tcb"],
    );
    assert.match(c.links.find((l) => l.link === "reported_tcb")!.detail, /bootloader 2 ≠ VCEK 3/);
  });

  it("a tampered VCEK fails: CHAIN_INVALID at ASK → VCEK, or CERT_INVALID when it no longer parses", () => {
    const tbsEnd = 4 + 4 + 763;
    const pick = sampler(0x7c3);
    let chainInvalid = 0;
    for (let byte = 4; byte < tbsEnd; byte++) {
      const bad = vcek.slice();
      bad[byte]! ^= 1 << pick(8);
      try {
        verifySnpReport({ report, vcek: bad });
        assert.fail(`VCEK byte ${byte} flipped still verifies`);
      } catch (e) {
        assert.ok(isCiphervisorError(e), String(e));
        if (e.code === "CHAIN_INVALID") {
          assert.match(e.message, /^ASK → VCEK: /);
          chainInvalid++;
        } else {
          assert.ok(["CERT_INVALID", "REPORT_INVALID"].includes(e.code), e.message);
        }
      }
    }
    assert.ok(chainInvalid > 400, `${chainInvalid}`);
  });

  it("a tampered or foreign chain fails at the link it breaks", () => {
    const text = new TextDecoder().decode(chain);
    const [askDer, arkDer] = parsePemCertificates(text);
    const pem = (...ders: Uint8Array[]) =>
      new TextEncoder().encode(
        ders
          .map(
            (d) =>
              `-----BEGIN CERTIFICATE-----\n${Buffer.from(d).toString("base64")}\n-----END CERTIFICATE-----\n`,
          )
          .join(""),
      );
    // Either order works: the ARK is the self-issued one.
    verifySnpReport({ report, vcek, chain: pem(arkDer!, askDer!) });
    const ask = askDer!.slice();
    ask[300]! ^= 1;
    expectError(
      () => verifySnpReport({ report, vcek, chain: pem(ask, arkDer!) }),
      "CHAIN_INVALID",
      "ARK → ASK: ",
    );
    // An ARK with another key (one modulus byte changed) is not AMD's, whatever it says about itself.
    const ark = parseX509(arkDer!, "ARK");
    const foreign = arkDer!.slice();
    const modulusAt = Buffer.from(foreign).indexOf(
      Buffer.from(ark.publicKey.kind === "rsa" ? ark.publicKey.pub.modulus.subarray(0, 16) : []),
    );
    assert.ok(modulusAt > 0);
    foreign[modulusAt + 100]! ^= 1;
    expectError(
      () => verifySnpReport({ report, vcek, chain: pem(askDer!, foreign) }),
      "CHAIN_INVALID",
      "ARK: the chain's ARK (ARK-Milan) is not AMD's milan ARK",
    );
    expectError(
      () => verifySnpReport({ report, vcek, chain: pem(askDer!, askDer!) }),
      "CERT_INVALID",
      "certificate chain: expected one self-issued ARK",
    );
    expectError(
      () => verifySnpReport({ report, vcek, chain: pem(askDer!) }),
      "CERT_INVALID",
      "certificate chain: expected 2 certificates",
    );
  });
});
