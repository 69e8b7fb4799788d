/**
 * The emulated Secure Processor's SEV-SNP report and the emulated manufacturer's VCEK (SNP ABI 56860 section 7.3; VCEK
 * specification 57230): the report parses back field for field through the verifier's own parser, its signature
 * verifies under the VCEK the emulated KDS issues for that chip and TCB, and the VCEK has the shape of AMD's real
 * Milan VCEK (same names, same extension OIDs in the same order, serial 0, RSA-PSS SHA-384 salt 48). Node's own
 * X.509 code (OpenSSL) agrees the ASK signed it.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { fixture } from "../../../test/certs/support.ts";
import {
  decodeSnpTcb,
  encodeSnpTcb,
  parseSnpReport,
  snpReportSignature,
  snpReportSignedRegion,
} from "../../certs/snp-report.ts";
import { parseVcek } from "../../certs/vcek.ts";
import { parsePemCertificates, parseX509 } from "../../certs/x509.ts";
import { ecdsaVerify } from "../../crypto/ec.ts";
import { isCiphervisorError } from "../../errors.ts";
import { emulatedSnpRootCerts, emulatedVcekCert, vcekProductName } from "../manufacturer/emulated-snp.ts";
import { emulatedChipReport, reportCpuid } from "./report-signer.ts";

const chipId = new Uint8Array(64).map((_, i) => 255 - i);
const spl = { bootloader: 2, tee: 0, snp: 0x17, microcode: 0xd1 };
const tcb = encodeSnpTcb(spl, "milan");

describe("emulated SNP attestation report", () => {
  it("round-trips every field through parseSnpReport, v3 with CPUID, and verifies under the chip's VCEK", () => {
    const fields = {
      version: 3 as const,
      guestSvn: 7,
      policy: 0x30000n,
      familyId: new Uint8Array(16).fill(1),
      imageId: new Uint8Array(16).fill(2),
      vmpl: 0,
      currentTcb: tcb + 1n,
      platformInfo: 0x3n,
      authorKeyEn: true,
      reportData: new Uint8Array(64).fill(3),
      measurement: new Uint8Array(48).fill(4),
      hostData: new Uint8Array(32).fill(5),
      idKeyDigest: new Uint8Array(48).fill(6),
      authorKeyDigest: new Uint8Array(48).fill(7),
      reportId: new Uint8Array(32).fill(8),
      reportIdMa: new Uint8Array(32).fill(0xff),
      reportedTcb: tcb,
      cpuid: reportCpuid("genoa"),
      committedTcb: tcb,
      currentVersion: { major: 1, minor: 55, build: 21 },
      committedVersion: { major: 1, minor: 55, build: 20 },
      launchTcb: tcb,
    };
    const bytes = emulatedChipReport("genoa", chipId, fields);
    assert.deepEqual(emulatedChipReport("genoa", chipId, fields), bytes, "deterministic");
    const r = parseSnpReport(bytes);
    for (const [k, v] of Object.entries(fields)) assert.deepEqual(r[k as keyof typeof r], v, k);
    assert.deepEqual(r.cpuid, { family: 0x19, model: 0x11, stepping: 1 });
    assert.equal(r.signatureAlgo, 1);
    assert.equal(r.signingKey, 0);
    assert.equal(r.maskChipKey, false);
    assert.deepEqual(r.chipId, chipId);
    assert.ok(
      r.bytes.subarray(0x2a0 + 144).every((b) => b === 0),
      "zeros after r and s",
    );
    const vcek = parseVcek(emulatedVcekCert("genoa", chipId, spl));
    assert.deepEqual(vcek.hwId, chipId);
    assert.deepEqual(vcek.tcb, spl);
    assert.deepEqual(decodeSnpTcb(r.reportedTcb, "milan"), { raw: tcb, ...spl });
    const sig = snpReportSignature(r);
    assert.ok(sig && ecdsaVerify(vcek.pub, "sha384", snpReportSignedRegion(r), sig));
    // Another TCB is another key.
    const other = parseVcek(emulatedVcekCert("genoa", chipId, { ...spl, microcode: spl.microcode + 1 }));
    assert.ok(!ecdsaVerify(other.pub, "sha384", snpReportSignedRegion(r), sig));
  });

  it("MASK_CHIP_KEY reports zeros for chip_id; fields of the wrong size are refused", () => {
    const base = {
      version: 2 as const,
      policy: 0x30000n,
      currentTcb: tcb,
      reportedTcb: tcb,
      committedTcb: tcb,
      launchTcb: tcb,
      measurement: new Uint8Array(48),
    };
    const masked = parseSnpReport(emulatedChipReport("milan", chipId, { ...base, maskChipKey: true }));
    assert.equal(masked.maskChipKey, true);
    assert.ok(masked.chipId.every((b) => b === 0));
    assert.equal(masked.cpuid, undefined);
    assert.throws(
      () => emulatedChipReport("milan", chipId, { ...base, measurement: new Uint8Array(32) }),
      (e: unknown) => isCiphervisorError(e, "INVALID_INPUT") && /measurement is 48 bytes/.test(e.message),
    );
  });
});

describe("emulated VCEK, ASK and ARK: AMD's shape", () => {
  const real = parseX509(fixture("milan-snp/vcek_milan.der"), "real VCEK");
  const emu = parseX509(emulatedVcekCert("milan", chipId, spl), "emulated VCEK");

  it("has AMD's names, serial 0, algorithm and the AMD extensions in AMD's order", () => {
    assert.deepEqual(emu.issuer, real.issuer, "issuer DER is AMD's SEV-Milan name");
    assert.deepEqual(emu.subject, real.subject, "subject DER is AMD's SEV-VCEK name");
    assert.deepEqual([...emu.serial], [0]);
    assert.deepEqual(emu.signatureAlgorithm, real.signatureAlgorithm);
    assert.deepEqual([...emu.extensions.keys()], [...real.extensions.keys()]);
    assert.equal(emu.version, 3);
    assert.equal(parseVcek(emu.der).productName, vcekProductName("milan"));
    assert.equal(vcekProductName("milan"), "Milan-B1");
    assert.equal(vcekProductName("genoa"), "Genoa-B1");
  });

  it("the ARK and ASK are named ARK-<Product> / SEV-<Product>, and OpenSSL verifies ARK → ASK → VCEK", () => {
    for (const generation of ["milan", "genoa"] as const) {
      const product = generation === "milan" ? "Milan" : "Genoa";
      const { ark, ask } = emulatedSnpRootCerts(generation);
      const arkX = new X509Certificate(Buffer.from(ark));
      const askX = new X509Certificate(Buffer.from(ask));
      const vcekX = new X509Certificate(Buffer.from(emulatedVcekCert(generation, chipId, spl)));
      assert.match(arkX.subject, new RegExp(`CN=ARK-${product}`));
      assert.match(askX.subject, new RegExp(`CN=SEV-${product}`));
      assert.equal(askX.issuer, arkX.subject);
      assert.equal(vcekX.issuer, askX.subject);
      assert.equal(askX.serialNumber, "010001");
      assert.ok(arkX.verify(arkX.publicKey), "ARK self-signed");
      assert.ok(askX.verify(arkX.publicKey), "ARK → ASK");
      assert.ok(vcekX.verify(askX.publicKey), "ASK → VCEK");
      assert.ok(!vcekX.verify(arkX.publicKey));
      assert.ok(askX.ca && arkX.ca);
      // AMD's real Milan ASK did not sign it.
      const [amdAsk] = parsePemCertificates(new TextDecoder().decode(fixture("milan-snp/cert_chain_milan")));
      assert.ok(!vcekX.verify(new X509Certificate(Buffer.from(amdAsk!)).publicKey));
    }
  });
});
