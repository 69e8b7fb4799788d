/**
 * An emulated SEV-SNP launch end to end (SNP ABI 56860, sections 8.16–8.18 and 8.26): the firmware's own launch
 * digest of the AmdSev OVMF fixture equals what `owner measure --mode snp` computes from the image
 * (docs/sev-interface.md §14.1); the guest's MSG_REPORT_REQ answer verifies with `owner verify-report` against the
 * emulated chain; ID blocks, policies, secrets page and guest messages behave as the ABI says.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { parseSnpReport } from "../../certs/snp-report.ts";
import { generateEcKeyPair } from "../../crypto/ec.ts";
import { seededRandom } from "../../crypto/random.ts";
import { toHex } from "../../lib/bytes.ts";
import { computeSnpLaunchDigest } from "../../measure/snp-launch-digest.ts";
import { verifySnpReport } from "../../owner/verify-report.ts";
import { EmulatedKds } from "../manufacturer/emulated-kds.ts";
import { emulatedVcekCert } from "../manufacturer/emulated-snp.ts";
import { emulatedChipId } from "../secure-processor.ts";
import { SevStatus } from "../status.ts";
import { SnpGuestChannel } from "./guest-channel.ts";
import { decodeGuestMessageHeader, SnpMsgType, sealGuestMessage } from "./guest-message.ts";
import {
  decodeKeyResponse,
  decodeReportResponse,
  encodeKeyRequest,
  encodeReportRequest,
  GuestFieldSelect,
} from "./guest-request-messages.ts";
import { encodeIdBlock, encodeSnpPublicKey, ID_AUTH_LAYOUT, signIdAuth, snpKeyDigest } from "./id-block.ts";
import { FirmwareLaunchDigest } from "./page-info.ts";
import { decodeSecretsPage } from "./secrets-page.ts";
import { EMULATED_SNP_SPL, emulatedSnpTcb } from "./tcb.ts";
import {
  AMDSEV_OVMF,
  EPYC_V4,
  type LaunchedGuest,
  launchOvmf,
  type SnpHost,
  snpHost,
} from "./test-support.ts";

const SEED = "snp-1";
const HOST_DATA = new Uint8Array(32).map((_, i) => i + 1);
const REQ_PA = 0x380000;
const RES_PA = 0x381000;

/** The guest reads its secrets page through its own key (the host sees only ciphertext). */
function guestSecrets(h: SnpHost, g: LaunchedGuest) {
  const cipher = h.dram.read(g.secretsPa, 4096);
  return { cipher, fields: decodeSecretsPage(h.sp.keySlots.decrypt(g.asid, g.secretsPa, cipher)) };
}

function exchange(h: SnpHost, g: LaunchedGuest, request: Uint8Array): number {
  const page = new Uint8Array(4096);
  page.set(request);
  h.dram.write(REQ_PA, page);
  return h.client.guestRequest(g.gctx, REQ_PA, RES_PA);
}

function requestReport(h: SnpHost, g: LaunchedGuest, ch: SnpGuestChannel, reportData: Uint8Array, vmpck = 0) {
  const req = ch.request(SnpMsgType.REPORT_REQ, encodeReportRequest({ reportData, vmpl: vmpck }), vmpck);
  assert.equal(exchange(h, g, req), SevStatus.SUCCESS);
  return decodeReportResponse(ch.response(h.dram.read(RES_PA, 4096)));
}

function chainPem(): Uint8Array {
  return new TextEncoder().encode(new EmulatedKds(() => "milan").vcekCertChain("Milan"));
}

describe("SEV-SNP launch on the emulated Secure Processor", () => {
  it("measures the AmdSev OVMF launch exactly as owner measure --mode snp, and the signed report verifies", () => {
    const h = snpHost({ seed: SEED });
    const g = launchOvmf(h);
    assert.equal(h.sp.snpSnapshot()?.guests[0]?.state, "LAUNCH");
    h.client.launchFinish(g.gctx, { hostData: HOST_DATA });
    assert.deepEqual(h.client.guestStatus(g.gctx), { policy: g.policy, asid: 1, state: "RUNNING" });

    const expected = computeSnpLaunchDigest({ firmware: AMDSEV_OVMF, vcpuSignature: EPYC_V4 });
    assert.equal(toHex(g.expected.launchDigest), toHex(expected));

    const { cipher, fields } = guestSecrets(h, g);
    for (const k of fields.vmpck) assert.ok(!toHex(cipher).includes(toHex(k)), "VMPCKs are not in the clear");
    assert.equal(fields.version, 2);
    assert.equal(new Set(fields.vmpck.map(toHex)).size, 4, "four distinct VMPCKs");

    const ch = new SnpGuestChannel(fields.vmpck);
    const reportData = new Uint8Array(64).fill(0xab);
    const rsp = requestReport(h, g, ch, reportData);
    assert.equal(rsp.status, 0);
    const report = rsp.report!;
    const parsed = parseSnpReport(report);
    assert.equal(toHex(parsed.measurement), toHex(expected), "report measurement = owner's expected digest");
    assert.equal(parsed.policy, g.policy);
    assert.deepEqual(parsed.hostData, HOST_DATA);
    assert.deepEqual(parsed.reportData, reportData);
    assert.deepEqual(parsed.chipId, emulatedChipId(SEED));
    assert.equal(parsed.reportedTcb, emulatedSnpTcb("milan"));

    const vcek = emulatedVcekCert("milan", emulatedChipId(SEED), EMULATED_SNP_SPL.milan);
    const v = verifySnpReport({
      report,
      vcek,
      chain: chainPem(),
      trust: "emulated",
      policy: { measurement: expected, hostData: HOST_DATA },
    });
    assert.equal(toHex(v.report.measurement), toHex(expected));
    // The same report under AMD's roots is refused.
    assert.throws(() => verifySnpReport({ report, vcek, trust: "amd" }));
  });

  it("a second vCPU changes the digest the same way on both sides", () => {
    const h = snpHost({ seed: SEED });
    const g = launchOvmf(h, { vcpus: 2 });
    h.client.launchFinish(g.gctx);
    const ch = new SnpGuestChannel(guestSecrets(h, g).fields.vmpck);
    const r = parseSnpReport(requestReport(h, g, ch, new Uint8Array(64)).report!);
    assert.equal(
      toHex(r.measurement),
      toHex(computeSnpLaunchDigest({ firmware: AMDSEV_OVMF, vcpus: 2, vcpuSignature: EPYC_V4 })),
    );
  });

  it("LAUNCH_FINISH checks the ID block: good signatures accepted and reported, wrong ones refused", () => {
    const rng = seededRandom("id-keys");
    const idKey = generateEcKeyPair(rng);
    const authorKey = generateEcKeyPair(rng);
    const other = generateEcKeyPair(rng);
    const make = (h: SnpHost) => launchOvmf(h);
    const block = (g: LaunchedGuest, over: Partial<Parameters<typeof encodeIdBlock>[0]> = {}) =>
      encodeIdBlock({
        ld: g.expected.launchDigest,
        familyId: new Uint8Array(16).fill(1),
        imageId: new Uint8Array(16).fill(2),
        version: 1,
        guestSvn: 3,
        policy: g.policy,
        ...over,
      });

    // Refusals, each on a fresh launch, each changing nothing (the guest stays in LAUNCH).
    const refusals: {
      name: string;
      status: number;
      input: (g: LaunchedGuest) => Parameters<SnpHost["client"]["launchFinish"]>[1];
    }[] = [
      {
        name: "ID block signed by another key",
        status: SevStatus.BAD_SIGNATURE,
        input: (g) => {
          const b = block(g);
          const auth = signIdAuth(b, idKey);
          auth.set(
            signIdAuth(b, other).subarray(ID_AUTH_LAYOUT.idBlockSig, ID_AUTH_LAYOUT.idBlockSig + 0x200),
            ID_AUTH_LAYOUT.idBlockSig,
          );
          return { idBlock: b, idAuth: auth };
        },
      },
      {
        name: "ID key not signed by the author key",
        status: SevStatus.BAD_SIGNATURE,
        input: (g) => {
          const b = block(g);
          const auth = signIdAuth(b, idKey, authorKey);
          auth.set(encodeSnpPublicKey(other.pub), ID_AUTH_LAYOUT.authorKey);
          return { idBlock: b, idAuth: auth, authorKeyEn: true };
        },
      },
      {
        name: "a tampered ID block",
        status: SevStatus.BAD_SIGNATURE,
        input: (g) => {
          const b = block(g);
          const auth = signIdAuth(b, idKey);
          b[0x54] = 9;
          return { idBlock: b, idAuth: auth };
        },
      },
      {
        name: "another launch digest",
        status: SevStatus.BAD_MEASUREMENT,
        input: (g) => {
          const b = block(g, { ld: new Uint8Array(48) });
          return { idBlock: b, idAuth: signIdAuth(b, idKey) };
        },
      },
      {
        name: "another policy",
        status: SevStatus.POLICY_FAILURE,
        input: (g) => {
          const b = block(g, { policy: g.policy | (1n << 19n) });
          return { idBlock: b, idAuth: signIdAuth(b, idKey) };
        },
      },
      {
        name: "ID block version 2",
        status: SevStatus.INVALID_PARAM,
        input: (g) => {
          const b = block(g, { version: 2 });
          return { idBlock: b, idAuth: signIdAuth(b, idKey) };
        },
      },
      {
        name: "AUTH_KEY_EN without an ID block",
        status: SevStatus.INVALID_PARAM,
        input: () => ({ authorKeyEn: true }),
      },
    ];
    for (const r of refusals) {
      const h = snpHost({ seed: SEED });
      const g = make(h);
      assert.equal(h.client.launchFinishStatus(g.gctx, r.input(g)), r.status, r.name);
      assert.equal(h.client.guestStatus(g.gctx).state, "LAUNCH", r.name);
    }

    const h = snpHost({ seed: SEED });
    const g = make(h);
    const b = block(g);
    h.client.launchFinish(g.gctx, { idBlock: b, idAuth: signIdAuth(b, idKey, authorKey), authorKeyEn: true });
    const ch = new SnpGuestChannel(guestSecrets(h, g).fields.vmpck);
    const r = parseSnpReport(requestReport(h, g, ch, new Uint8Array(64)).report!);
    assert.deepEqual(r.idKeyDigest, snpKeyDigest(encodeSnpPublicKey(idKey.pub)));
    assert.deepEqual(r.authorKeyDigest, snpKeyDigest(encodeSnpPublicKey(authorKey.pub)));
    assert.equal(r.authorKeyEn, true);
    assert.deepEqual(r.familyId, new Uint8Array(16).fill(1));
    assert.equal(r.guestSvn, 3);
  });

  it("guest messages: replays, wrong VMPCKs and tampered tags are refused; key requests derive stable keys", () => {
    const h = snpHost({ seed: SEED });
    const g = launchOvmf(h);
    h.client.launchFinish(g.gctx);
    const vmpck = guestSecrets(h, g).fields.vmpck;
    const ch = new SnpGuestChannel(vmpck);

    const first = ch.request(SnpMsgType.REPORT_REQ, encodeReportRequest({}));
    assert.equal(decodeGuestMessageHeader(first).seqno, 1n);
    assert.equal(exchange(h, g, first), SevStatus.SUCCESS);
    const rspPage = h.dram.read(RES_PA, 4096);
    assert.equal(decodeGuestMessageHeader(rspPage).seqno, 2n);
    assert.equal(decodeGuestMessageHeader(rspPage).msgType, SnpMsgType.REPORT_RSP);
    ch.response(rspPage);
    // The host replays the first request: refused, no new response.
    h.dram.write(RES_PA, new Uint8Array(4096));
    assert.equal(exchange(h, g, first), SevStatus.INVALID_PARAM, "replay");
    assert.ok(
      h.dram.read(RES_PA, 4096).every((b) => b === 0),
      "nothing written",
    );

    // Sealed under VMPCK1 but labelled VMPCK0.
    const forged = sealGuestMessage(vmpck[1]!, {
      seqno: 3n,
      msgType: SnpMsgType.REPORT_REQ,
      msgVersion: 1,
      vmpck: 0,
      payload: encodeReportRequest({}),
    });
    assert.equal(exchange(h, g, forged), SevStatus.BAD_SIGNATURE, "wrong VMPCK");

    const good = ch.request(SnpMsgType.REPORT_REQ, encodeReportRequest({}));
    const tampered = good.slice();
    tampered[0x60] = tampered[0x60]! ^ 1;
    assert.equal(exchange(h, g, tampered), SevStatus.BAD_SIGNATURE, "tampered payload");
    const badTag = good.slice();
    badTag[0] = badTag[0]! ^ 1;
    assert.equal(exchange(h, g, badTag), SevStatus.BAD_SIGNATURE, "tampered tag");
    // The genuine message still goes through at the same sequence number.
    assert.equal(exchange(h, g, good), SevStatus.SUCCESS);
    assert.equal(decodeReportResponse(ch.response(h.dram.read(RES_PA, 4096))).status, 0);

    // A request at VMPL 0 under VMPCK1 is answered INVALID_PARAM in the response.
    const ch1 = new SnpGuestChannel(vmpck);
    const low = ch1.request(SnpMsgType.REPORT_REQ, encodeReportRequest({ vmpl: 0 }), 1);
    assert.equal(exchange(h, g, low), SevStatus.SUCCESS);
    assert.equal(
      decodeReportResponse(ch1.response(h.dram.read(RES_PA, 4096))).status,
      SevStatus.INVALID_PARAM,
    );

    const key = (sel: bigint) => {
      assert.equal(
        exchange(h, g, ch.request(SnpMsgType.KEY_REQ, encodeKeyRequest({ guestFieldSelect: sel }))),
        0,
      );
      return decodeKeyResponse(ch.response(h.dram.read(RES_PA, 4096)));
    };
    const k1 = key(GuestFieldSelect.MEASUREMENT);
    const k2 = key(GuestFieldSelect.MEASUREMENT);
    const k3 = key(GuestFieldSelect.MEASUREMENT | GuestFieldSelect.POLICY);
    assert.equal(k1.status, 0);
    assert.deepEqual(k1.key, k2.key);
    assert.notDeepEqual(k1.key, k3.key);
    const svn = ch.request(SnpMsgType.KEY_REQ, encodeKeyRequest({ guestSvn: 1 }));
    assert.equal(exchange(h, g, svn), 0);
    assert.equal(decodeKeyResponse(ch.response(h.dram.read(RES_PA, 4096))).status, SevStatus.INVALID_PARAM);
  });
});

describe("PAGE_INFO byte layout", () => {
  it("places VMPL3, VMPL2, VMPL1 permissions at 0x64–0x66 and the reserved byte at 0x67", () => {
    const d = new FirmwareLaunchDigest();
    d.extend({
      pageType: 1,
      contents: new Uint8Array(48).fill(0xaa),
      gpa: 0x1000n,
      imi: false,
      vmplPerms: [1, 2, 3],
    });
    const expected = new Uint8Array(0x70);
    expected.fill(0xaa, 0x30, 0x60);
    const v = new DataView(expected.buffer);
    v.setUint16(0x60, 0x70, true);
    expected[0x62] = 1;
    expected.set([3, 2, 1, 0], 0x64);
    v.setBigUint64(0x68, 0x1000n, true);
    assert.deepEqual(d.value, new Uint8Array(createHash("sha384").update(expected).digest()));
  });
});
