/**
 * SEV-SNP ciphertext hiding (SNP ABI 56860, SNP_INIT_EX CIPHERTEXT_HIDING_EN and MAX_SNP_ASID; SNP_PLATFORM_STATUS
 * CIPHERTEXT_HIDING_CAP / _EN; the report's PLATFORM_INFO bit 4; docs/sev-interface.md §14): a Zen 5 (Turin) part
 * accepts it and reports it, Milan and Genoa refuse the flag with INVALID_PARAM, and a guest policy that requires
 * it launches only where SNP_INIT_EX enabled it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSnpReport } from "../../certs/snp-report.ts";
import { CPU_MODELS } from "../../machine/cpu-models.ts";
import { SevFirmwareError } from "../errors.ts";
import { SevStatus } from "../status.ts";
import { SnpClient } from "./client.ts";
import { SnpGuestChannel } from "./guest-channel.ts";
import { SnpMsgType } from "./guest-message.ts";
import { decodeReportResponse, encodeReportRequest } from "./guest-request-messages.ts";
import { SnpPolicyBit } from "./policy.ts";
import { decodeSecretsPage } from "./secrets-page.ts";
import { GCTX_PA, type LaunchedGuest, launchOvmf, type SnpHost, snpHost } from "./test-support.ts";

const CTH_POLICY = 0x30000n | SnpPolicyBit.CIPHERTEXT_HIDING;
const REQ_PA = 0x380000;
const RES_PA = 0x381000;

/** The guest's MSG_REPORT_REQ through VMPCK0, as the guest sends it; the report bytes of the answer. */
function requestReport(h: SnpHost, g: LaunchedGuest): Uint8Array {
  const secrets = decodeSecretsPage(
    h.sp.keySlots.decrypt(g.asid, g.secretsPa, h.dram.read(g.secretsPa, 4096)),
  );
  const ch = new SnpGuestChannel(secrets.vmpck);
  const page = new Uint8Array(4096);
  page.set(ch.request(SnpMsgType.REPORT_REQ, encodeReportRequest({}), 0));
  h.dram.write(REQ_PA, page);
  assert.equal(h.client.guestRequest(g.gctx, REQ_PA, RES_PA), SevStatus.SUCCESS);
  const rsp = decodeReportResponse(ch.response(h.dram.read(RES_PA, 4096)));
  assert.equal(rsp.status, 0);
  return rsp.report!;
}

describe("SNP_INIT_EX with CIPHERTEXT_HIDING_EN", () => {
  it("Turin: enables it with MAX_SNP_ASID; PLATFORM_STATUS reports CAP and EN; SNP_INIT and a plain INIT_EX clear it", () => {
    const h = snpHost({ generation: "turin", init: false });
    assert.equal(h.client.platformStatus().ciphertextHidingCap, true, "the part offers it");
    assert.equal(h.client.platformStatus().ciphertextHidingEn, false);
    h.client.initEx({ maxSnpAsid: 100 });
    const st = h.client.platformStatus();
    assert.equal(st.state, "INIT");
    assert.deepEqual([st.ciphertextHidingCap, st.ciphertextHidingEn], [true, true]);
    assert.deepEqual([h.sp.snpSnapshot()?.ciphertextHiding, h.sp.snpSnapshot()?.maxSnpAsid], [true, 100]);
    h.client.shutdown();
    h.client.initEx();
    assert.equal(h.client.platformStatus().ciphertextHidingEn, false);
    assert.equal(h.sp.snpSnapshot()?.maxSnpAsid, 0);
    h.client.shutdown();
    h.client.initEx({ maxSnpAsid: 1 });
    h.client.shutdown();
    h.client.init();
    assert.equal(h.client.platformStatus().ciphertextHidingEn, false, "SNP_INIT has no such option");
  });

  it("Turin: MAX_SNP_ASID must be 1..min_sev_asid − 1 (the SEV-ES range it is carved from), else INVALID_PARAM", () => {
    const min = CPU_MODELS.turin.defaultMinSevAsid;
    for (const bad of [0, min, min + 1, 0xffff]) {
      const h = snpHost({ generation: "turin", init: false });
      const status = h.client.status("SNP_INIT_EX", SnpClient.initExBuffer({ maxSnpAsid: bad }));
      assert.equal(status, SevStatus.INVALID_PARAM, `MAX_SNP_ASID ${bad}`);
      assert.equal(h.sp.snpSnapshot()?.state, "UNINIT", "nothing changed");
    }
    const h = snpHost({ generation: "turin", init: false });
    h.client.initEx({ maxSnpAsid: min - 1 });
    assert.equal(h.sp.snpSnapshot()?.maxSnpAsid, min - 1);
  });

  for (const generation of ["milan", "genoa"] as const) {
    it(`${generation}: the flag is INVALID_PARAM and PLATFORM_STATUS shows no capability`, () => {
      const h = snpHost({ generation, init: false });
      const status = h.client.status("SNP_INIT_EX", SnpClient.initExBuffer({ maxSnpAsid: 50 }));
      assert.equal(status, SevStatus.INVALID_PARAM);
      const st = h.client.platformStatus();
      assert.deepEqual([st.state, st.ciphertextHidingCap, st.ciphertextHidingEn], ["UNINIT", false, false]);
      assert.throws(
        () => h.client.initEx({ maxSnpAsid: 50 }),
        (e: unknown) => e instanceof SevFirmwareError && e.status === SevStatus.INVALID_PARAM,
      );
      h.client.initEx();
      assert.equal(h.client.platformStatus().state, "INIT", "the same command without the flag succeeds");
    });
  }
});

describe("ciphertext hiding in the guest policy and the report", () => {
  it("a policy requiring it fails SNP_LAUNCH_START unless SNP_INIT_EX enabled it (POLICY_FAILURE)", () => {
    const off = snpHost({ generation: "turin" });
    off.client.gctxCreate(GCTX_PA);
    assert.throws(
      () => off.client.launchStart(GCTX_PA, { policy: CTH_POLICY }),
      (e: unknown) => e instanceof SevFirmwareError && e.status === SevStatus.POLICY_FAILURE,
    );
    const on = snpHost({ generation: "turin", init: false });
    on.client.initEx({ maxSnpAsid: 100 });
    on.client.gctxCreate(GCTX_PA);
    on.client.launchStart(GCTX_PA, { policy: CTH_POLICY });
    assert.equal(on.client.guestStatus(GCTX_PA).policy, CTH_POLICY);
  });

  it("the report's PLATFORM_INFO has bit 4 set exactly when ciphertext hiding is enabled", () => {
    const infoOf = (maxSnpAsid: number | undefined) => {
      const h = snpHost({ generation: "turin", init: false });
      h.client.initEx(maxSnpAsid === undefined ? {} : { maxSnpAsid });
      const g = launchOvmf(h);
      h.client.launchFinish(g.gctx);
      return parseSnpReport(requestReport(h, g)).platformInfo;
    };
    assert.equal(infoOf(100) & 0x10n, 0x10n);
    assert.equal(infoOf(undefined) & 0x10n, 0n);
    assert.equal(infoOf(100) & 1n, 1n, "SMT still reported");
  });
});
