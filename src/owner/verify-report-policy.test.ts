/**
 * `verifySnpReport` with an owner's policy and a chosen root (docs/sev-interface.md §14): a report the emulated
 * Secure Processor signed verifies against the emulated chain the emulated KDS serves, and never under AMD's roots;
 * AMD's real Milan report verifies under AMD's roots and never under the emulated ones. The policy checks (debug,
 * VMPL, minimum TCB, measurement, host_data) and the CRL check of the ASK each refuse with their own link name.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixture } from "../../test/certs/support.ts";
import { parseCrl } from "../certs/crl.ts";
import { decodeSnpReportInput, encodeSnpTcb } from "../certs/snp-report.ts";
import { isCiphervisorError } from "../errors.ts";
import { toHex } from "../lib/bytes.ts";
import { EmulatedKds } from "../sev/manufacturer/emulated-kds.ts";
import { EMULATED_SNP_SERIAL, emulatedSnpCrl } from "../sev/manufacturer/emulated-snp.ts";
import { emulatedChipReport, type SnpReportFields } from "../sev/snp/report-signer.ts";
import {
  checkSnpReport,
  SNP_REPORT_LINKS,
  type VerifySnpReportInput,
  verifySnpReport,
} from "./verify-report.ts";

const chipId = new Uint8Array(64).map((_, i) => (i * 37 + 11) & 0xff);
const kds = new EmulatedKds((id) => (toHex(id) === toHex(chipId) ? "milan" : undefined));
const spl = { bootloader: 3, tee: 0, snp: 8, microcode: 0x73 };
const tcb = encodeSnpTcb(spl, "milan");
const query = { blSPL: "3", teeSPL: "0", snpSPL: "8", ucodeSPL: "115" };
const vcek = kds.vcek("Milan", toHex(chipId), query);
const chain = new TextEncoder().encode(kds.vcekCertChain("Milan"));
const measurement = new Uint8Array(48).fill(0x5a);
const hostData = new Uint8Array(32).fill(0x42);

function report(over: Partial<Omit<SnpReportFields, "chipId">> = {}): Uint8Array {
  return emulatedChipReport("milan", chipId, {
    version: 2,
    policy: 0x30000n,
    currentTcb: tcb,
    reportedTcb: tcb,
    committedTcb: tcb,
    launchTcb: tcb,
    measurement,
    hostData,
    reportData: new Uint8Array(64).fill(1),
    ...over,
  });
}

const real = {
  report: decodeSnpReportInput(fixture("milan-snp/report_milan.hex")),
  vcek: fixture("milan-snp/vcek_milan.der"),
  chain: fixture("milan-snp/cert_chain_milan"),
};

/** Asserts `verifySnpReport` throws `code` at `link`, and returns the message. */
function refused(input: VerifySnpReportInput, code: string, link: string): string {
  try {
    verifySnpReport(input);
  } catch (e) {
    assert.ok(isCiphervisorError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.details?.link, link, e.message);
    assert.ok(e.message.startsWith(`${link}: `), e.message);
    return e.message;
  }
  assert.fail(`expected ${code} at ${link}, but it verified`);
}

describe("emulated SNP reports and the root they verify under", () => {
  it("an emulated report verifies with the emulated KDS chain and with the built-in emulated roots", () => {
    for (const input of [
      { report: report(), vcek, chain, trust: "emulated" as const },
      { report: report(), vcek, trust: "emulated" as const },
    ]) {
      const v = verifySnpReport({ ...input, policy: { measurement, hostData, minimumTcb: spl } });
      assert.equal(v.ok, true);
      assert.equal(v.trust, "emulated");
      assert.equal(v.productName, "Milan-B1");
      assert.deepEqual(
        v.links.map((l) => l.link),
        [...SNP_REPORT_LINKS],
      );
    }
  });

  it("an emulated report is refused under AMD's roots, with or without the emulated chain", () => {
    const m = refused({ report: report(), vcek, chain }, "CHAIN_INVALID", "ARK");
    assert.match(m, /is not AMD's milan ARK/);
    refused({ report: report(), vcek }, "CHAIN_INVALID", "ASK → VCEK");
    // AMD's real chain does not sign the emulated VCEK either.
    refused({ report: report(), vcek, chain: real.chain }, "CHAIN_INVALID", "ASK → VCEK");
  });

  it("AMD's real Milan report verifies under AMD's roots and not under the emulated ones", () => {
    assert.equal(verifySnpReport(real).trust, "amd");
    assert.equal(verifySnpReport({ ...real, trust: "amd" }).ok, true);
    const m = refused({ ...real, trust: "emulated" }, "CHAIN_INVALID", "ARK");
    assert.match(m, /is not the emulated milan ARK/);
    refused({ report: real.report, vcek: real.vcek, trust: "emulated" }, "CHAIN_INVALID", "ASK → VCEK");
    // The real VCEK under the emulated chain: the ASK did not sign it.
    refused(
      { report: real.report, vcek: real.vcek, chain, trust: "emulated" },
      "CHAIN_INVALID",
      "ASK → VCEK",
    );
  });

  it("a VCEK for another TCB or another chip does not verify the report", () => {
    const other = kds.vcek("Milan", toHex(chipId), { ...query, snpSPL: "9" });
    const c = checkSnpReport({ report: report(), vcek: other, chain, trust: "emulated" });
    assert.deepEqual(
      c.links.filter((l) => !l.ok).map((l) => l.link),
      ["VCEK → report", "reported_tcb"],
    );
    const foreign = emulatedChipReport("milan", new Uint8Array(64).fill(9), {
      version: 2,
      policy: 0x30000n,
      currentTcb: tcb,
      reportedTcb: tcb,
      committedTcb: tcb,
      launchTcb: tcb,
      measurement,
    });
    const f = checkSnpReport({ report: foreign, vcek, chain, trust: "emulated" });
    assert.deepEqual(
      f.links.filter((l) => !l.ok).map((l) => l.link),
      ["VCEK → report", "chip_id"],
    );
  });
});

describe("the owner's policy (verify-report)", () => {
  const base = { vcek, chain, trust: "emulated" as const };

  it("refuses a reported TCB below the minimum, per component, naming it", () => {
    for (const [name, value] of Object.entries(spl)) {
      const m = refused(
        { ...base, report: report(), policy: { minimumTcb: { [name]: value + 1 } } },
        "REPORT_INVALID",
        "minimum TCB",
      );
      assert.match(m, new RegExp(`${name} ${value} < ${value + 1}$`));
    }
    const ok = verifySnpReport({ ...base, report: report(), policy: { minimumTcb: spl } });
    assert.match(ok.links.find((l) => l.link === "minimum TCB")!.detail, /meets bootloader ≥ 3/);
  });

  it("refuses a guest whose policy allows debugging unless the owner allows it", () => {
    const debug = report({ policy: 0x30000n | (1n << 19n) });
    const m = refused({ ...base, report: debug }, "REPORT_INVALID", "debug");
    assert.match(m, /bit 19/);
    refused({ ...base, report: debug, policy: { measurement } }, "REPORT_INVALID", "debug");
    assert.equal(verifySnpReport({ ...base, report: debug, policy: { allowDebug: true } }).ok, true);
  });

  it("requires VMPL 0 by default", () => {
    const vmpl1 = report({ vmpl: 1 });
    assert.match(
      refused({ ...base, report: vmpl1 }, "REPORT_INVALID", "vmpl"),
      /VMPL 1, the policy requires VMPL 0/,
    );
    assert.equal(verifySnpReport({ ...base, report: vmpl1, policy: { vmpl: 1 } }).ok, true);
    assert.equal(verifySnpReport({ ...base, report: vmpl1, policy: { vmpl: "any" } }).ok, true);
  });

  it("refuses a wrong measurement or host_data", () => {
    const other = measurement.slice();
    other[47]! ^= 1;
    refused({ ...base, report: report(), policy: { measurement: other } }, "REPORT_INVALID", "measurement");
    const otherHost = hostData.slice();
    otherHost[0]! ^= 0x80;
    refused({ ...base, report: report(), policy: { hostData: otherHost } }, "REPORT_INVALID", "host_data");
    // Malformed expectations are the caller's error, not a verdict.
    assert.throws(
      () => verifySnpReport({ ...base, report: report(), policy: { measurement: new Uint8Array(32) } }),
      (e: unknown) => isCiphervisorError(e, "INVALID_INPUT"),
    );
  });

  it("checks the ASK against the product's CRL: the KDS's passes, one revoking the ASK is refused", () => {
    const crl = kds.vcekCrl("Milan");
    assert.equal(parseCrl(crl).revokedSerials.length, 0);
    const v = verifySnpReport({ ...base, report: report(), policy: { crl } });
    assert.match(v.links.find((l) => l.link === "ASK revocation")!.detail, /^not revoked/);

    const revoking = emulatedSnpCrl("milan", [EMULATED_SNP_SERIAL.ask]);
    const m = refused(
      { ...base, report: report(), policy: { crl: revoking } },
      "CHAIN_INVALID",
      "ASK revocation",
    );
    assert.match(m, /revokes the ASK \(SEV-Milan, serial 0x010001\)/);
    // A CRL revoking some other serial does not touch the ASK.
    const otherSerial = emulatedSnpCrl("milan", [0x4242n]);
    assert.equal(verifySnpReport({ ...base, report: report(), policy: { crl: otherSerial } }).ok, true);
  });

  it("refuses a CRL the ARK did not sign, and a CRL without the PEM chain", () => {
    const genoaCrl = emulatedSnpCrl("genoa");
    assert.match(
      refused({ ...base, report: report(), policy: { crl: genoaCrl } }, "CHAIN_INVALID", "ASK revocation"),
      /issuer is not the ARK/,
    );
    const tampered = kds.vcekCrl("Milan");
    tampered[tampered.length - 10]! ^= 1;
    assert.match(
      refused({ ...base, report: report(), policy: { crl: tampered } }, "CHAIN_INVALID", "ASK revocation"),
      /signature does not verify/,
    );
    assert.throws(
      () =>
        verifySnpReport({ report: report(), vcek, trust: "emulated", policy: { crl: kds.vcekCrl("Milan") } }),
      (e: unknown) => isCiphervisorError(e, "INVALID_INPUT") && /needs the PEM chain/.test(e.message),
    );
    assert.throws(
      () => verifySnpReport({ ...base, report: report(), policy: { crl: new Uint8Array([0x30, 0x00]) } }),
      (e: unknown) => isCiphervisorError(e, "CERT_INVALID"),
    );
  });
});
