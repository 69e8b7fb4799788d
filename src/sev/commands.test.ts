/**
 * Command behaviour beyond the state tables: debug round trips, migration between two platforms, and buffer
 * validation (wrong lengths, misaligned or unmapped addresses, unknown handles, bad certificates, off-curve keys,
 * output buffers too small) — each returns its spec status and changes nothing.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { parseSevCert } from "../certs/sev-cert.ts";
import { seededRandom } from "../crypto/random.ts";
import { ByteReader, ByteWriter } from "../lib/bytes.ts";
import { Cmd } from "./commands.ts";
import { createEmulatedPlatform, type EmulatedPlatform, GUEST_BASE } from "./emulated-platform.ts";
import { PolicyBit } from "./policy.ts";
import { formatStatus, SevStatus } from "./status.ts";
import {
  DBG_DST,
  IMAGE_LEN,
  IMAGE_PA,
  ownerSession,
  receiverCerts,
  scenario,
  statusOf,
  VMSA_PA,
} from "./test-support.ts";

function eq(actual: number, expected: number, what: string): void {
  assert.equal(formatStatus(actual), formatStatus(expected), what);
}

function fingerprint(p: EmulatedPlatform): string {
  const mem = createHash("sha256").update(p.dram.read(GUEST_BASE, 0x50000)).digest("hex");
  return JSON.stringify({ snap: p.sp.snapshot(), status: p.client.platformStatus(), mem });
}

/** Issues `cmd` with a hand-made command buffer at a fixed spot, for malformed requests. */
function raw(
  p: EmulatedPlatform,
  cmd: number,
  size: number,
  fill: (w: ByteWriter) => void,
): { status: number; out: ByteReader } {
  const w = new ByteWriter(size);
  fill(w);
  const pa = 0x1f0000;
  p.dram.write(pa, w.bytes);
  const status = p.sp.issue(cmd, pa);
  return { status, out: new ByteReader(p.dram.read(pa, size)) };
}

describe("DBG_DECRYPT / DBG_ENCRYPT", () => {
  it("round-trip guest memory when the policy allows debug", () => {
    const s = scenario("RUNNING", { policy: 0 });
    const { client, dram } = s.a;
    client.dbgDecrypt(s.handle, IMAGE_PA, DBG_DST, IMAGE_LEN);
    assert.deepEqual(dram.read(DBG_DST, IMAGE_LEN), seededRandom("image").bytes(IMAGE_LEN));
    const secret = seededRandom("poke").bytes(64);
    dram.write(DBG_DST, secret);
    client.dbgEncrypt(s.handle, DBG_DST, IMAGE_PA + 0x100, 64);
    client.dbgDecrypt(s.handle, IMAGE_PA + 0x100, DBG_DST + 0x1000, 64);
    assert.deepEqual(dram.read(DBG_DST + 0x1000, 64), secret);
  });

  it("with NODBG every call is POLICY_FAILURE and the destination is untouched", () => {
    const s = scenario("RUNNING", { policy: PolicyBit.NODBG });
    const { client, dram } = s.a;
    for (const [src, dst, len] of [
      [IMAGE_PA, DBG_DST, 16],
      [IMAGE_PA, DBG_DST, IMAGE_LEN],
      [IMAGE_PA + 0x10, DBG_DST + 0x20, 0x30],
    ] as const) {
      const before = fingerprint(s.a);
      eq(
        statusOf(() => client.dbgDecrypt(s.handle, src, dst, len)),
        SevStatus.POLICY_FAILURE,
        "DBG_DECRYPT",
      );
      eq(
        statusOf(() => client.dbgEncrypt(s.handle, dst, src, len)),
        SevStatus.POLICY_FAILURE,
        "DBG_ENCRYPT",
      );
      assert.equal(fingerprint(s.a), before);
      assert.deepEqual(dram.read(dst, len), new Uint8Array(len));
    }
  });

  it("checks 16-byte granularity before the handle, as AMD's firmware does", () => {
    const p = createEmulatedPlatform();
    const dbg = (src: number, dst: number, len: number, handle = 77) =>
      raw(p, Cmd.DBG_DECRYPT, 0x1c, (w) =>
        w.u32(0, handle).u64(8, BigInt(src)).u64(0x10, BigInt(dst)).u32(0x18, len),
      ).status;
    eq(dbg(GUEST_BASE + 8, DBG_DST, 16), SevStatus.INVALID_ADDRESS, "misaligned source, unknown handle");
    eq(dbg(GUEST_BASE, DBG_DST + 4, 16), SevStatus.INVALID_ADDRESS, "misaligned destination");
    eq(dbg(GUEST_BASE, DBG_DST, 15), SevStatus.INVALID_LENGTH, "length not a multiple of 16");
    eq(dbg(GUEST_BASE, DBG_DST, 16), SevStatus.INVALID_GUEST, "aligned, unknown handle");
  });
});

describe("SEND / RECEIVE between two platforms", () => {
  it("moves a running SEV-ES guest with its memory and VMSA intact, under a new key", () => {
    const s = scenario("RUPDATE");
    const { a, b } = s;
    const dst = GUEST_BASE + 0x40000;
    b.client.receiveUpdateData(s.handle, s.inbound!.data, dst);
    b.client.receiveUpdateVmsa(s.handle, s.inbound!.vmsa, dst + 0x4000);
    b.client.receiveFinish(s.handle);
    assert.equal(b.client.guestStatus(s.handle).state, "RUNNING");
    const plain = b.sp.keySlots.decrypt(s.asid, dst, b.dram.read(dst, IMAGE_LEN));
    assert.deepEqual(plain, seededRandom("image").bytes(IMAGE_LEN));
    assert.deepEqual(
      b.sp.keySlots.decrypt(s.asid, dst + 0x4000, b.dram.read(dst + 0x4000, 4096)),
      seededRandom("vmsa").bytes(4096),
    );
    // The ciphertext differs from the sender's: a new VEK and another physical address.
    assert.notDeepEqual(b.dram.read(dst, 64), a.dram.read(IMAGE_PA, 64));
  });

  it("a tampered packet is refused with BAD_MEASUREMENT and writes nothing", () => {
    const s = scenario("RUPDATE");
    const bad = { header: s.inbound!.data.header, payload: s.inbound!.data.payload.slice() };
    bad.payload[5]! ^= 1;
    const before = fingerprint(s.b);
    eq(
      statusOf(() => s.b.client.receiveUpdateData(s.handle, bad, GUEST_BASE + 0x40000)),
      SevStatus.BAD_MEASUREMENT,
      "tampered",
    );
    assert.equal(fingerprint(s.b), before);
  });

  it("NOSEND and DOMAIN refuse", () => {
    for (const policy of [PolicyBit.NOSEND, PolicyBit.DOMAIN]) {
      const s = scenario("RUNNING", { policy });
      eq(
        statusOf(() => s.a.client.sendStart(s.handle, receiverCerts(s.b))),
        SevStatus.POLICY_FAILURE,
        `policy 0x${policy.toString(16)}`,
      );
      assert.equal(s.a.client.guestStatus(s.handle).state, "RUNNING");
    }
  });

  it("SEND_START refuses a receiver PDH not signed by its PEK", () => {
    const s = scenario("RUNNING", { policy: 0 });
    const certs = receiverCerts(s.b);
    const forged = { ...certs, pdh: receiverCerts(s.a).pdh };
    eq(
      statusOf(() => s.a.client.sendStart(s.handle, forged)),
      SevStatus.BAD_SIGNATURE,
      "foreign PDH",
    );
  });
});

describe("buffer validation", () => {
  it("a command buffer outside system memory is INVALID_ADDRESS", () => {
    const p = createEmulatedPlatform();
    eq(p.sp.issue(Cmd.PLATFORM_STATUS, p.dram.size - 4), SevStatus.INVALID_ADDRESS, "straddles the end");
    eq(p.sp.issue(Cmd.LAUNCH_START, 2 ** 60), SevStatus.INVALID_ADDRESS, "far beyond DRAM");
  });

  it("LAUNCH_START validates lengths, addresses, the certificate and the curve point", () => {
    const p = createEmulatedPlatform();
    const owner = ownerSession(p.client.pdhCertExport().pdh, 0);
    const certPa = 0x1e0000;
    const sessionPa = 0x1e1000;
    p.dram.write(certPa, owner.godhCert);
    p.dram.write(sessionPa, owner.session);
    const start = (certAddr: number, certLen: number, sAddr: number, sLen: number) =>
      raw(p, Cmd.LAUNCH_START, 0x24, (w) =>
        w
          .u32(0, 0)
          .u32(4, 0)
          .u64(8, BigInt(certAddr))
          .u32(0x10, certLen)
          .u64(0x18, BigInt(sAddr))
          .u32(0x20, sLen),
      ).status;
    const before = fingerprint(p);
    eq(start(certPa, 0x823, sessionPa, 0x80), SevStatus.INVALID_LENGTH, "short certificate");
    eq(start(certPa, 0x824, sessionPa, 0x7f), SevStatus.INVALID_LENGTH, "short session");
    eq(
      start(p.dram.size - 0x100, 0x824, sessionPa, 0x80),
      SevStatus.INVALID_ADDRESS,
      "certificate beyond DRAM",
    );
    eq(start(certPa, 0x824, p.dram.size, 0x80), SevStatus.INVALID_ADDRESS, "session beyond DRAM");
    const garbage = owner.godhCert.slice();
    garbage[0] = 9; // version
    p.dram.write(certPa, garbage);
    eq(start(certPa, 0x824, sessionPa, 0x80), SevStatus.INVALID_CERTIFICATE, "bad version");
    const offCurve = owner.godhCert.slice();
    offCurve[0x5c]! ^= 1; // qy
    p.dram.write(certPa, offCurve);
    eq(start(certPa, 0x824, sessionPa, 0x80), SevStatus.INVALID_CERTIFICATE, "point not on P-384");
    assert.equal(fingerprint(p), before);
    p.dram.write(certPa, owner.godhCert);
    eq(start(certPa, 0x824, sessionPa, 0x80), SevStatus.SUCCESS, "valid");
  });

  it("LAUNCH_UPDATE_DATA and LAUNCH_UPDATE_VMSA reject misaligned addresses and bad lengths", () => {
    const s = scenario("LUPDATE");
    const upd = (cmd: number, pa: number, len: number) =>
      raw(s.a, cmd, 0x14, (w) => w.u32(0, s.handle).u64(8, BigInt(pa)).u32(0x10, len)).status;
    const before = fingerprint(s.a);
    eq(upd(Cmd.LAUNCH_UPDATE_DATA, IMAGE_PA + 1, 16), SevStatus.INVALID_ADDRESS, "misaligned");
    eq(upd(Cmd.LAUNCH_UPDATE_DATA, IMAGE_PA, 17), SevStatus.INVALID_LENGTH, "length 17");
    eq(upd(Cmd.LAUNCH_UPDATE_DATA, IMAGE_PA, 0), SevStatus.INVALID_LENGTH, "length 0");
    eq(upd(Cmd.LAUNCH_UPDATE_DATA, s.a.dram.size - 16, 32), SevStatus.INVALID_ADDRESS, "beyond DRAM");
    eq(upd(Cmd.LAUNCH_UPDATE_VMSA, VMSA_PA, 2048), SevStatus.INVALID_LENGTH, "half a VMSA");
    eq(upd(Cmd.LAUNCH_UPDATE_VMSA, VMSA_PA + 8, 4096), SevStatus.INVALID_ADDRESS, "misaligned VMSA");
    assert.equal(fingerprint(s.a), before);
  });

  it("an unknown handle is INVALID_GUEST", () => {
    const p = createEmulatedPlatform();
    for (const cmd of [
      Cmd.ACTIVATE,
      Cmd.DEACTIVATE,
      Cmd.GUEST_STATUS,
      Cmd.LAUNCH_MEASURE,
      Cmd.DECOMMISSION,
    ]) {
      eq(
        raw(p, cmd, 0x20, (w) => w.u32(0, 4242)).status,
        SevStatus.INVALID_GUEST,
        `cmd 0x${cmd.toString(16)}`,
      );
    }
    eq(
      raw(p, Cmd.LAUNCH_START, 0x24, (w) => w.u32(0, 4242)).status,
      SevStatus.INVALID_GUEST,
      "share with unknown handle",
    );
  });

  it("output buffers that are too small get INVALID_LENGTH with the length needed, and nothing else", () => {
    const s = scenario("LUPDATE");
    const p = s.a;
    const measure = raw(p, Cmd.LAUNCH_MEASURE, 0x14, (w) =>
      w.u32(0, s.handle).u64(8, 0x1e0000n).u32(0x10, 0),
    );
    eq(measure.status, SevStatus.INVALID_LENGTH, "LAUNCH_MEASURE len 0");
    assert.equal(measure.out.u32(0x10), 48);
    assert.equal(p.client.guestStatus(s.handle).state, "LUPDATE", "no transition on INVALID_LENGTH");
    const exp = raw(p, Cmd.PDH_CERT_EXPORT, 0x1c, (w) =>
      w.u64(0, 0x1e0000n).u32(8, 0x824).u64(0x10, 0x1e1000n).u32(0x18, 10),
    );
    eq(exp.status, SevStatus.INVALID_LENGTH, "PDH_CERT_EXPORT chain too small");
    assert.equal(exp.out.u32(0x08), 0x824);
    assert.equal(exp.out.u32(0x18), 0x186c);
    const id = raw(p, Cmd.GET_ID, 0x0c, (w) => w.u64(0, 0x1e0000n).u32(8, 63));
    eq(id.status, SevStatus.INVALID_LENGTH, "GET_ID 63 bytes");
    assert.equal(id.out.u32(8), 64);
    const csr = raw(p, Cmd.PEK_CSR, 0x0c, (w) => w.u64(0, 0x1e0000n).u32(8, 0));
    eq(csr.status, SevStatus.INVALID_PLATFORM_STATE, "PEK_CSR is INIT-only (platform is WORKING)");
  });
});

describe("platform identity", () => {
  it("PLATFORM_STATUS reports API, build, state, owner, CONFIG_ES and guest count in their bytes", () => {
    const p = createEmulatedPlatform({ generation: "milan" });
    const st = raw(p, Cmd.PLATFORM_STATUS, 0x0c, () => {});
    const r = st.out;
    assert.deepEqual(
      [r.u8(0), r.u8(1), r.u8(2), r.u8(3), r.u8(4), r.u8(7), r.u32(8)],
      [1, 51, 1, 0, 1, 3, 0],
    );
    assert.equal(r.u32(3) & 0x100, 0x100, "Linux sees CONFIG_ES as flags & 0x100");
  });

  it("is deterministic from the seed; PDH_GEN and PLATFORM_RESET change the keys", () => {
    const a = createEmulatedPlatform({ seed: 9 });
    const b = createEmulatedPlatform({ seed: 9 });
    assert.deepEqual(a.client.pdhCertExport(), b.client.pdhCertExport());
    assert.deepEqual(a.client.getId(), b.client.getId());
    const pdh0 = a.client.pdhCertExport().pdh;
    a.client.pdhGen();
    assert.notDeepEqual(a.client.pdhCertExport().pdh, pdh0);
    const pek0 = a.client.pdhCertExport().pek;
    a.client.shutdown();
    a.client.platformReset();
    a.client.init({ es: false });
    assert.notDeepEqual(a.client.pdhCertExport().pek, pek0);
    assert.equal(parseSevCert(a.client.pdhCertExport().pdh).apiMinor, 24);
  });

  it("PEK_CERT_IMPORT: an owner's OCA is kept, ALREADY_OWNED the second time, BAD_SIGNATURE for a forged PEK", async () => {
    const { Algo, encodeSevCert, signSevCertEcdsa, Usage, verifySevCertSignature } = await import(
      "../certs/sev-cert.ts"
    );
    const { generateEcKeyPair } = await import("../crypto/ec.ts");
    const p = createEmulatedPlatform();
    const oca = generateEcKeyPair(seededRandom("o"));
    const ocaCert = signSevCertEcdsa(
      encodeSevCert({ apiMajor: 0, apiMinor: 0, usage: Usage.OCA, algo: Algo.ECDSA_SHA256, pub: oca.pub }),
      1,
      Usage.OCA,
      oca.d,
    );
    const csr = p.client.pekCsr();
    const other = generateEcKeyPair(seededRandom("not-the-oca"));
    eq(
      statusOf(() => p.client.pekCertImport(signSevCertEcdsa(csr, 1, Usage.OCA, other.d), ocaCert)),
      SevStatus.BAD_SIGNATURE,
      "PEK signed by another key",
    );
    p.client.pekCertImport(signSevCertEcdsa(csr, 1, Usage.OCA, oca.d), ocaCert);
    assert.equal(p.client.platformStatus().externallyOwned, true);
    const chain = p.client.pdhCertExport();
    assert.deepEqual(chain.oca, ocaCert);
    const pek = parseSevCert(chain.pek);
    const cek = parseSevCert(chain.cek);
    assert.ok(verifySevCertSignature(pek, Usage.OCA, { kind: "ecc", pub: oca.pub }));
    assert.ok(
      cek.key.kind === "ecc" && verifySevCertSignature(pek, Usage.CEK, { kind: "ecc", pub: cek.key.pub }),
    );
    eq(
      statusOf(() => p.client.pekCertImport(signSevCertEcdsa(csr, 1, Usage.OCA, oca.d), ocaCert)),
      SevStatus.ALREADY_OWNED,
      "second import",
    );
  });
});
