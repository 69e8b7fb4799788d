/**
 * An SEV-SNP report is tied to one TCB: its reported_tcb must equal the TCB the VCEK was issued for (SNP ABI 56860,
 * the ATTESTATION_REPORT and TCB_VERSION structures; docs/sev-interface.md §14). A report whose microcode, SNP or
 * TEE security patch level is below the VCEK's is one from older, possibly vulnerable firmware presented with a
 * newer VCEK — a rollback — and must be refused at the reported_tcb step, naming the field.
 *
 * No one outside AMD can issue a VCEK, so the case is built from the real Milan pair (test/fixtures/certs/milan-snp,
 * bl 3, tee 0, snp 8, ucode 0x73) in the two ways that leave the report's own signature checkable:
 * - the VCEK's SPL extension raised by one (its key is unchanged, so VCEK → report still verifies; only its own AMD
 *   signature and reported_tcb fail);
 * - the report's TCB byte lowered by one (its signature fails too), where a field allows it.
 * checkSnpReport judges each step on its own, so the reported_tcb verdict is not hidden behind the earlier failure.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixture } from "../../test/certs/support.ts";
import { decodeSnpReportInput } from "../certs/snp-report.ts";
import { parseVcek } from "../certs/vcek.ts";
import { isCiphervisorError } from "../errors.ts";
import { checkSnpReport, verifySnpReport } from "./verify-report.ts";

const report = decodeSnpReportInput(fixture("milan-snp/report_milan.hex"));
const vcek = fixture("milan-snp/vcek_milan.der");

/** DER of the OID 1.3.6.1.4.1.3704.1.3.<arc> (AMD's SPL extensions) followed by OCTET STRING { INTEGER (1 byte) }. */
function splValueOffset(der: Uint8Array, arc: number): number {
  const pattern = [
    0x06,
    0x0a,
    0x2b,
    0x06,
    0x01,
    0x04,
    0x01,
    0x9c,
    0x78,
    0x01,
    0x03,
    arc,
    0x04,
    0x03,
    0x02,
    0x01,
  ];
  const hits: number[] = [];
  for (let i = 0; i + pattern.length < der.length; i++)
    if (pattern.every((b, j) => der[i + j] === b)) hits.push(i + pattern.length);
  assert.equal(hits.length, 1, `one SPL extension .3.${arc}`);
  return hits[0]!;
}

/** Milan TCB_VERSION bytes (SNP ABI 56860 table "TCB_VERSION"): 0 boot loader, 1 TEE, 6 SNP, 7 microcode. */
const FIELDS = [
  { name: "microcode", arc: 8, tcbByte: 7, vcek: 0x73 },
  { name: "snp", arc: 3, tcbByte: 6, vcek: 8 },
  { name: "tee", arc: 2, tcbByte: 1, vcek: 0 },
  { name: "bootloader", arc: 1, tcbByte: 0, vcek: 3 },
] as const;
const REPORTED_TCB = 0x180;

function failing(input: { report: Uint8Array; vcek: Uint8Array }): { links: string[]; tcb: string } {
  const c = checkSnpReport(input);
  assert.equal(c.ok, false);
  return {
    links: c.links.filter((l) => !l.ok).map((l) => l.link),
    tcb: c.links.find((l) => l.link === "reported_tcb")?.detail ?? "",
  };
}

describe("SNP report TCB below the VCEK's is refused at reported_tcb", () => {
  it("the untouched pair verifies (so each refusal below is the TCB alone)", () => {
    const v = verifySnpReport({ report, vcek });
    assert.deepEqual(v.vcekTcb, { bootloader: 3, tee: 0, snp: 8, microcode: 0x73 });
    assert.equal(v.links.find((l) => l.link === "reported_tcb")?.ok, true);
  });

  for (const f of FIELDS) {
    it(`${f.name}: a VCEK issued for ${f.name} ${f.vcek + 1} refuses the report at ${f.name} ${f.vcek}`, () => {
      const raised = vcek.slice();
      const at = splValueOffset(raised, f.arc);
      assert.equal(raised[at], f.vcek);
      raised[at] = f.vcek + 1;
      assert.equal(parseVcek(raised).tcb[f.name], f.vcek + 1);
      const r = failing({ report, vcek: raised });
      // The report's signature still verifies under the (same) VCEK key: only the VCEK's AMD signature and the
      // TCB comparison fail.
      assert.deepEqual(r.links, ["ASK → VCEK", "reported_tcb"]);
      assert.match(
        r.tcb,
        new RegExp(`^0x7308000000000003 does not match: ${f.name} ${f.vcek} ≠ VCEK ${f.vcek + 1}$`),
      );
      assert.throws(
        () => verifySnpReport({ report, vcek: raised }),
        (e: unknown) => isCiphervisorError(e, "CHAIN_INVALID"),
      );
    });
  }

  for (const f of FIELDS.filter((x) => x.vcek > 0)) {
    it(`${f.name}: a report claiming ${f.name} ${f.vcek - 1} under the genuine VCEK is refused`, () => {
      const lowered = report.slice();
      lowered[REPORTED_TCB + f.tcbByte]! -= 1;
      const r = failing({ report: lowered, vcek });
      assert.deepEqual(r.links, ["VCEK → report", "reported_tcb"]);
      assert.match(r.tcb, new RegExp(`does not match: ${f.name} ${f.vcek - 1} ≠ VCEK ${f.vcek}$`));
      assert.throws(
        () => verifySnpReport({ report: lowered, vcek }),
        (e: unknown) => isCiphervisorError(e, "REPORT_INVALID"),
      );
    });
  }
});
