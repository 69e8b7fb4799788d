/**
 * The emulated manufacturer's Turin (Zen 5) SEV-SNP certificates against AMD's real Turin VCEK (virtee/sev
 * tests/certs_data/vcek_turin.der, test/fixtures/certs/turin-snp): the same names, serial, algorithm and AMD
 * extensions in the same order (fmcSPL .3.9 second after productName, no .3.4), structVersion 1, productName
 * "Turin" and an 8-byte hwID; and an emulated Turin chip's report, with Turin's TCB layout and its hwID-only
 * CHIP_ID, verifies with `owner verify-report` under the VCEK and chain the emulated KDS serves
 * (docs/sev-interface.md §11.5, §14).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { fixture } from "../../../test/certs/support.ts";
import { decodeSnpTcb, parseSnpReport } from "../../certs/snp-report.ts";
import { parseVcek } from "../../certs/vcek.ts";
import { parsePemCertificates, parseX509 } from "../../certs/x509.ts";
import { isCiphervisorError } from "../../errors.ts";
import { toHex } from "../../lib/bytes.ts";
import { verifySnpReport } from "../../owner/verify-report.ts";
import { emulatedChipId } from "../secure-processor.ts";
import { SnpGuestChannel } from "../snp/guest-channel.ts";
import { SnpMsgType } from "../snp/guest-message.ts";
import { decodeReportResponse, encodeReportRequest } from "../snp/guest-request-messages.ts";
import { decodeSecretsPage } from "../snp/secrets-page.ts";
import { EMULATED_SNP_SPL, emulatedSnpTcb } from "../snp/tcb.ts";
import { launchOvmf, snpHost } from "../snp/test-support.ts";
import { SevStatus } from "../status.ts";
import { EmulatedKds, KDS_PRODUCTS } from "./emulated-kds.ts";
import {
  emulatedSnpRootCerts,
  emulatedVcekCert,
  SNP_KDS_PRODUCTS,
  snpHwId,
  snpReportChipId,
  vcekProductName,
} from "./emulated-snp.ts";

const chipId = new Uint8Array(64).map((_, i) => 0x80 + i);
const spl = { fmc: 2, bootloader: 1, tee: 3, snp: 4, microcode: 9 };

describe("emulated Turin VCEK, ASK and ARK: AMD's Turin shape", () => {
  const real = parseX509(fixture("turin-snp/vcek_turin.der"), "real Turin VCEK");
  const emuDer = emulatedVcekCert("turin", chipId, spl);
  const emu = parseX509(emuDer, "emulated Turin VCEK");

  it("has AMD's Turin names, serial 0, algorithm and extensions in AMD's Turin order", () => {
    assert.deepEqual(emu.issuer, real.issuer, "issuer DER is AMD's SEV-Turin name");
    assert.deepEqual(emu.subject, real.subject);
    assert.deepEqual([...emu.serial], [0]);
    assert.deepEqual(emu.signatureAlgorithm, real.signatureAlgorithm);
    assert.deepEqual([...emu.extensions.keys()], [...real.extensions.keys()]);
    const structVersion = (c: typeof real) => toHex(c.extensions.get("1.3.6.1.4.1.3704.1.1")!.value);
    assert.equal(structVersion(emu), structVersion(real), "structVersion 1, as AMD's Turin VCEK");
    const [r, e] = [parseVcek(real.der), parseVcek(emuDer)];
    assert.deepEqual([r.productName, e.productName], ["Turin", vcekProductName("turin")]);
    assert.equal(vcekProductName("turin"), "Turin");
    assert.deepEqual([r.hwId.length, e.hwId.length], [8, 8]);
    assert.deepEqual(e.hwId, chipId.subarray(0, 8));
    assert.equal(e.generation, "turin");
    assert.deepEqual(e.tcb, spl);
  });

  it("the hwID is the chip id's first 8 bytes; a Turin report's CHIP_ID is that, then zeros", () => {
    assert.deepEqual(snpHwId("turin", chipId), chipId.subarray(0, 8));
    assert.deepEqual(snpHwId("genoa", chipId), chipId);
    const reported = snpReportChipId("turin", chipId);
    assert.equal(reported.length, 64);
    assert.deepEqual(reported.subarray(0, 8), chipId.subarray(0, 8));
    assert.ok(reported.subarray(8).every((b) => b === 0));
    assert.deepEqual(snpReportChipId("milan", chipId), chipId);
    // The VCEK is the same whether the KDS got the chip id or its 8-byte hwID.
    assert.deepEqual(emulatedVcekCert("turin", chipId.subarray(0, 8), spl), emuDer);
  });

  it("ARK-Turin → SEV-Turin → VCEK verifies in OpenSSL; AMD's real Turin ASK did not sign it", () => {
    const { ark, ask } = emulatedSnpRootCerts("turin");
    const arkX = new X509Certificate(Buffer.from(ark));
    const askX = new X509Certificate(Buffer.from(ask));
    const vcekX = new X509Certificate(Buffer.from(emuDer));
    assert.match(arkX.subject, /CN=ARK-Turin/);
    assert.match(askX.subject, /CN=SEV-Turin/);
    assert.equal(vcekX.issuer, askX.subject);
    assert.ok(arkX.verify(arkX.publicKey), "ARK self-signed");
    assert.ok(askX.verify(arkX.publicKey), "ARK → ASK");
    assert.ok(vcekX.verify(askX.publicKey), "ASK → VCEK");
    const [amdAsk] = parsePemCertificates(new TextDecoder().decode(fixture("turin-snp/cert_chain_turin")));
    assert.ok(!vcekX.verify(new X509Certificate(Buffer.from(amdAsk!)).publicKey));
    assert.deepEqual([SNP_KDS_PRODUCTS.turin, KDS_PRODUCTS.turin], ["Turin", "Turin"]);
  });
});

describe("an emulated Turin chip's report, end to end", () => {
  const SEED = "turin-1";
  const id = emulatedChipId(SEED);
  const hwid = toHex(id.subarray(0, 8));
  const kds = new EmulatedKds((c) => (toHex(c) === hwid || toHex(c) === toHex(id) ? "turin" : undefined));
  const t = EMULATED_SNP_SPL.turin;
  const query = {
    fmcSPL: String(t.fmc),
    blSPL: String(t.bootloader),
    teeSPL: String(t.tee),
    snpSPL: String(t.snp),
    ucodeSPL: String(t.microcode),
  };

  it("carries Turin's TCB layout and hwID CHIP_ID, and verifies under the KDS's VCEK and chain", () => {
    const h = snpHost({ generation: "turin", seed: SEED });
    const g = launchOvmf(h);
    h.client.launchFinish(g.gctx);
    const secrets = decodeSecretsPage(
      h.sp.keySlots.decrypt(g.asid, g.secretsPa, h.dram.read(g.secretsPa, 4096)),
    );
    const ch = new SnpGuestChannel(secrets.vmpck);
    const page = new Uint8Array(4096);
    page.set(ch.request(SnpMsgType.REPORT_REQ, encodeReportRequest({}), 0));
    h.dram.write(0x380000, page);
    assert.equal(h.client.guestRequest(g.gctx, 0x380000, 0x381000), SevStatus.SUCCESS);
    const report = decodeReportResponse(ch.response(h.dram.read(0x381000, 4096))).report!;
    const r = parseSnpReport(report);
    assert.deepEqual(r.chipId, snpReportChipId("turin", id));
    assert.equal(r.reportedTcb, emulatedSnpTcb("turin"));
    assert.deepEqual(decodeSnpTcb(r.reportedTcb, "turin"), { raw: r.reportedTcb, ...t });
    assert.deepEqual(r.cpuid, { family: 0x1a, model: 2, stepping: 1 });

    const vcek = kds.vcek("Turin", hwid, query);
    assert.deepEqual(kds.vcek("turin", hwid.toUpperCase(), query), vcek, "any case");
    const chain = new TextEncoder().encode(kds.vcekCertChain("Turin"));
    const v = verifySnpReport({
      report,
      vcek,
      chain,
      trust: "emulated",
      policy: { crl: kds.vcekCrl("Turin"), minimumTcb: t, measurement: g.expected.launchDigest },
    });
    assert.equal(v.generation, "turin");
    assert.throws(() => verifySnpReport({ report, vcek, chain }), { code: "CHAIN_INVALID" });
    // A VCEK for another FMC SPL is another key.
    const other = kds.vcek("Turin", hwid, { ...query, fmcSPL: String(t.fmc! + 1) });
    assert.throws(() => verifySnpReport({ report, vcek: other, chain, trust: "emulated" }), {
      code: "REPORT_INVALID",
    });
  });

  it("the Turin KDS takes a 16-digit hwid and needs fmcSPL", () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        if (isCiphervisorError(e)) return [e.code, e.message] as const;
        throw e;
      }
      assert.fail("expected a refusal");
    };
    const [c1, m1] = code(() => kds.vcek("Turin", toHex(id), query));
    assert.equal(c1, "INVALID_INPUT");
    assert.match(m1, /first 8 bytes of the chip id as 16 hex digits/);
    const { fmcSPL: _, ...noFmc } = query;
    const [c2, m2] = code(() => kds.vcek("Turin", hwid, noFmc));
    assert.equal(c2, "INVALID_INPUT");
    assert.match(m2, /needs fmcSPL/);
    const unknown = (hwid[0] === "0" ? "1" : "0") + hwid.slice(1);
    assert.equal(code(() => kds.vcek("Turin", unknown, query))[0], "NOT_FOUND");
    // Milan still takes the full chip id and no fmcSPL.
    assert.equal(code(() => kds.vcek("Milan", hwid, query))[0], "INVALID_INPUT");
  });
});
