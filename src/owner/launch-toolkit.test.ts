import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Algo, encodeSevCert, parseSevCert, Usage } from "../certs/sev-cert.ts";
import { aes128Ctr } from "../crypto/aes.ts";
import { ecdh, generateEcKeyPair } from "../crypto/ec.ts";
import { launchSecretMac, parsePacketHeader } from "../crypto/packet.ts";
import { seededRandom } from "../crypto/random.ts";
import { parseSession, unwrapSession } from "../crypto/session.ts";
import { isCiphervisorError } from "../errors.ts";
import { concat, fromHex, toHex } from "../lib/bytes.ts";
import { buildLaunchSecret, decodeSecretTable, encodeSecretTable, MAX_SECRET_PAYLOAD } from "./secret.ts";
import { createLaunchSession, sessionFiles } from "./session.ts";
import { assertLaunchMeasurement, checkLaunchMeasurement } from "./verify-measurement.ts";

const fixture = (p: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/${p}`, import.meta.url)));
const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
const text = (s: string) => new TextEncoder().encode(s);

function codeIs(code: "INVALID_INPUT" | "CERT_INVALID" | "MALFORMED" | "MEASUREMENT_MISMATCH", re: RegExp) {
  return (e: unknown) => isCiphervisorError(e, code) && re.test(e.message);
}

function makePdh(seed: string) {
  const kp = generateEcKeyPair(seededRandom(seed));
  const cert = encodeSevCert({
    apiMajor: 0,
    apiMinor: 24,
    usage: Usage.PDH,
    algo: Algo.ECDH_SHA256,
    pub: kp.pub,
  });
  return { kp, cert };
}

describe("launch session (docs/sev-interface.md §9)", () => {
  it("is unwrapped by the platform holding the PDH private key", () => {
    const pdh = makePdh("platform-pdh");
    const s = createLaunchSession(pdh.cert, 0x05, seededRandom("owner"));
    assert.equal(s.session.length, 0x80);
    const godh = parseSevCert(s.godhCert, "GODH");
    assert.equal(s.godhCert.length, 0x824);
    assert.deepEqual(
      [godh.usage, godh.algo, godh.apiMajor, godh.apiMinor],
      [Usage.PDH, Algo.ECDH_SHA256, 0, 0],
    );
    assert.deepEqual(
      godh.sigs.map((g) => [g.usage, g.algo]),
      [
        [0x1000, 0],
        [0x1000, 0],
      ],
    );
    assert.equal(godh.key.kind, "ecc");
    if (godh.key.kind !== "ecc") return;
    // The firmware side: Z from its PDH private key and the GODH public key.
    const z = ecdh(pdh.kp.d, godh.key.pub);
    const r = unwrapSession(z, parseSession(s.session), 0x05);
    assert.deepEqual(r, { ok: true, keys: s.keys });
    assert.deepEqual(unwrapSession(z, parseSession(s.session), 0x01), { ok: false, failure: "POLICY_MAC" });
    const otherPdh = makePdh("another-platform");
    assert.deepEqual(unwrapSession(ecdh(otherPdh.kp.d, godh.key.pub), parseSession(s.session), 0x05), {
      ok: false,
      failure: "WRAP_MAC",
    });
  });

  it("uses fresh keys each time by default and works with a real Rome PDH", () => {
    const pdh = fixture("owner/rome/pdh.cert");
    const a = createLaunchSession(pdh, 0x01);
    const b = createLaunchSession(pdh, 0x01);
    assert.notDeepEqual(a.keys.tek, b.keys.tek);
    assert.notDeepEqual(a.godhCert, b.godhCert);
    assert.notDeepEqual(a.session, b.session);
  });

  it("refuses an off-curve PDH and a certificate that is not a PDH", () => {
    const pdh = makePdh("p");
    const off = pdh.cert.slice();
    off[0x5c]! ^= 1; // y coordinate, little-endian low byte
    assert.throws(() => createLaunchSession(off, 0), codeIs("CERT_INVALID", /not a point on P-384/));
    const pek = encodeSevCert({
      apiMajor: 0,
      apiMinor: 0,
      usage: Usage.PEK,
      algo: Algo.ECDSA_SHA256,
      pub: pdh.kp.pub,
    });
    assert.throws(() => createLaunchSession(pek, 0), codeIs("CERT_INVALID", /needs the PDH/));
    assert.throws(() => createLaunchSession(pdh.cert.slice(0, 100), 0), codeIs("CERT_INVALID", /0x824|2084/));
    assert.throws(() => createLaunchSession(pdh.cert, -1), codeIs("INVALID_INPUT", /u32/));
  });

  it("names and encodes the files as sevctl does", () => {
    const s = createLaunchSession(makePdh("p").cert, 0, seededRandom("files"));
    const f = sessionFiles("vm1", s);
    assert.deepEqual(
      [f.godh.name, f.session.name, f.tek.name, f.tik.name],
      ["vm1_godh.b64", "vm1_session.b64", "vm1_tek.bin", "vm1_tik.bin"],
    );
    const sessionText = new TextDecoder().decode(f.session.contents);
    assert.match(sessionText, /^[A-Za-z0-9+/]+=*$/); // base64, no newline
    assert.deepEqual(b64(sessionText), s.session);
    assert.deepEqual(b64(new TextDecoder().decode(f.godh.contents)), s.godhCert);
    assert.deepEqual([f.tek.contents, f.tik.contents], [s.keys.tek, s.keys.tik]);
    assert.throws(() => sessionFiles("../x", s), codeIs("INVALID_INPUT", /file-name prefix/));
  });
});

describe("launch measurement check (docs/sev-interface.md §8.2)", () => {
  // sevctl tests/measurementbuild.rs, LD given directly (§16.3 case 1).
  const check = {
    tik: fixture("measure/sevctl/tik1.bin"),
    launchMeasureBlob: concat(
      fromHex("96cc1bc56c48f60724c9ad7a250bdd16da5898d3b86fede29c03e9aac828048e"),
      fromHex("c313fab511c216b1505b1b2ea9903c40"),
    ),
    apiMajor: 1,
    apiMinor: 40,
    build: 40,
    policy: 0x03,
    launchDigest: fromHex("c64bd101fc9a4a2ce0a27c408d9200911f139a895469b04a40a6fa2890830d23"),
  };

  it("matches the sevctl vector and reports a mismatch for any changed input", () => {
    const r = assertLaunchMeasurement(check);
    assert.equal(r.match, true);
    assert.equal(toHex(r.mnonce), "c313fab511c216b1505b1b2ea9903c40");
    for (const changed of [
      { policy: 0x07 },
      { build: 41 },
      { apiMinor: 41 },
      { launchDigest: new Uint8Array(32) },
    ]) {
      const c = { ...check, ...changed };
      assert.equal(checkLaunchMeasurement(c).match, false);
      assert.throws(() => assertLaunchMeasurement(c), codeIs("MEASUREMENT_MISMATCH", /reported 96cc1bc5/));
    }
  });

  it("refuses malformed inputs", () => {
    assert.throws(
      () => checkLaunchMeasurement({ ...check, tik: new Uint8Array(15) }),
      codeIs("INVALID_INPUT", /TIK/),
    );
    assert.throws(
      () => checkLaunchMeasurement({ ...check, launchMeasureBlob: new Uint8Array(32) }),
      codeIs("INVALID_INPUT", /48 bytes/),
    );
    assert.throws(() => checkLaunchMeasurement({ ...check, build: 256 }), codeIs("INVALID_INPUT", /build/));
  });
});

describe("LAUNCH_SECRET (docs/sev-interface.md §10, §16.4: sevctl tests/secretbuild.rs)", () => {
  const base = {
    tik: fixture("owner/sevctl/tik1.bin"),
    tek: fixture("owner/sevctl/tek1.bin"),
    measure: b64("TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS").slice(0, 32),
    iv: b64("rFR07U3TLH2YnsUj2SVZ7A=="),
  };
  const secret1 = { guid: "736869e5-84f0-4973-92ec-06879ce3da0b", data: fixture("owner/sevctl/secret1.txt") };
  const secret2 = { guid: "736869e5-aaaa-4973-92ec-06879ce3da0b", data: fixture("owner/sevctl/secret2.txt") };
  const enc = (b: Uint8Array) => Buffer.from(b).toString("base64");

  it("reproduces the one-entry vector", () => {
    const p = buildLaunchSecret({ ...base, entries: [secret1] });
    assert.equal(enc(p.header), "AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==");
    assert.equal(
      enc(p.payload),
      "0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==",
    );
    const table = aes128Ctr(base.tek, base.iv, p.payload);
    assert.equal(new DataView(table.buffer).getUint32(16, true), 0x3a); // unpadded length in the header
    assert.deepEqual(decodeSecretTable(table), [secret1]);
  });

  it("reproduces the two-entry vector", () => {
    const p = buildLaunchSecret({ ...base, entries: [secret1, secret2] });
    assert.equal(p.payload.length, 96);
    assert.equal(enc(p.header), "AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==");
    assert.equal(
      enc(p.payload),
      "0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe",
    );
    assert.deepEqual(decodeSecretTable(aes128Ctr(base.tek, base.iv, p.payload)), [secret1, secret2]);
  });

  it("leaves MEASURE out of the MAC below API 0.17 and draws a fresh IV by default", () => {
    const old = buildLaunchSecret({ ...base, entries: [secret1], api: { major: 0, minor: 16 } });
    assert.deepEqual(
      old.mac,
      launchSecretMac(base.tik, 0, base.iv, old.payload.length, old.payload, undefined),
    );
    const now = buildLaunchSecret({ ...base, entries: [secret1], api: { major: 0, minor: 17 } });
    assert.notDeepEqual(now.mac, old.mac);
    assert.deepEqual(parsePacketHeader(now.header).mac, now.mac);
    const { iv: _iv, ...noIv } = base;
    const a = buildLaunchSecret({ ...noIv, entries: [secret1] });
    const b = buildLaunchSecret({ ...noIv, entries: [secret1] });
    assert.notDeepEqual(a.iv, b.iv);
    assert.notDeepEqual(a.payload, b.payload);
  });

  it("enforces the 16 KiB ceiling as sevctl's secret3/secret4 cases do", () => {
    const guid = "23058844-597b-42fb-8259-a0f5d9d495af";
    for (const n of [16343, 16344]) {
      const p = buildLaunchSecret({ ...base, entries: [{ guid, data: new Uint8Array(n) }] });
      assert.equal(p.payload.length, MAX_SECRET_PAYLOAD);
    }
    assert.throws(
      () => buildLaunchSecret({ ...base, entries: [{ guid, data: new Uint8Array(16345) }] }),
      codeIs("INVALID_INPUT", /16385 bytes \(16400 padded\).*at most 16384/),
    );
  });

  it("refuses bad keys, GUIDs and tables", () => {
    assert.throws(
      () => buildLaunchSecret({ ...base, tek: new Uint8Array(8), entries: [secret1] }),
      codeIs("INVALID_INPUT", /TEK/),
    );
    assert.throws(
      () => buildLaunchSecret({ ...base, iv: new Uint8Array(12), entries: [secret1] }),
      codeIs("INVALID_INPUT", /IV/),
    );
    assert.throws(
      () => buildLaunchSecret({ ...base, entries: [{ guid: "not-a-guid", data: text("x") }] }),
      codeIs("INVALID_INPUT", /not a GUID/),
    );
    assert.throws(() => buildLaunchSecret({ ...base, entries: [] }), codeIs("INVALID_INPUT", /at least one/));
    assert.throws(() => buildLaunchSecret({ ...base }), codeIs("INVALID_INPUT", /either/));
    const t = encodeSecretTable([secret1]);
    const bad = t.slice();
    bad[36] = 200;
    assert.throws(() => decodeSecretTable(bad), codeIs("MALFORMED", /entry at offset 20/));
    assert.throws(() => decodeSecretTable(t.slice(0, 10)), codeIs("MALFORMED", /shorter/));
    const raw = buildLaunchSecret({ ...base, table: text("abc") });
    assert.equal(raw.payload.length, 16);
  });
});
