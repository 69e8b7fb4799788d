/**
 * Fuzzing the certificate codecs of src/certs/: the SEV certificate (sev-cert.ts), the AMD ARK/ASK certificate and
 * its bundles (amd-cert.ts, chain.ts), DER and X.509 (der.ts, x509.ts), the VCEK (vcek.ts) and the SNP report
 * (snp-report.ts). Proves, for arbitrary bytes and text and for the real fixtures of test/fixtures/certs with random
 * bit flips, truncations and extensions, that every parser either returns or throws a CiphervisorError whose code
 * is in ERROR_CODES (never a TypeError, RangeError or other); that what a parser returns is bounded by its input (a
 * certificate's `bytes` are the input or a prefix of it, DER children partition their parent); and that
 * `parseSevCert(encodeSevCert(x))`, `parseAmdCert(encodeAmdCert(x))` and DER read back what was written.
 * Budget and seed: test/fuzz/support.ts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { encodeAmdCert, parseAmdCert, parseAmdCertPrefix } from "../../src/certs/amd-cert.ts";
import {
  parseArkCert,
  parseSevChain,
  parseSevChainCert,
  SEV_CHAIN_FILE_NAMES,
  type SevChainRole,
  splitAskArk,
  splitSevctlChain,
} from "../../src/certs/chain.ts";
import { type DerElement, derChildren, derOid, derTime, parseDer, readDer } from "../../src/certs/der.ts";
import { Algo, encodeSevCert, parseSevCert, SEV_CERT_SIZE, Usage } from "../../src/certs/sev-cert.ts";
import {
  decodeSnpReportInput,
  parseSnpReport,
  SNP_REPORT_SIZE,
  snpReportSignature,
} from "../../src/certs/snp-report.ts";
import { parseVcek } from "../../src/certs/vcek.ts";
import { parsePemCertificates, parseX509, parseX509Any } from "../../src/certs/x509.ts";
import { seededRandom } from "../../src/crypto/random.ts";
import { rsaKeyPairFromPem } from "../../src/crypto/rsa.ts";
import { concat } from "../../src/lib/bytes.ts";
import {
  bytes,
  fixtureBytes,
  fixtureText,
  mutated,
  mutatedRange,
  mutatedText,
  params,
  typed,
} from "./support.ts";

const ROLES: SevChainRole[] = ["ark", "ask", "cek", "oca", "pek", "pdh"];
const cert = (gen: string, role: string) => fixtureBytes(`certs/${gen}/${role}.cert`);
const romeSev = ["cek", "oca", "pek", "pdh"].map((r) => cert("rome", r));
const naplesSev = ["cek", "oca", "pek", "pdh"].map((r) => cert("naples", r));
const amdCerts = [cert("rome", "ark"), cert("rome", "ask"), cert("naples", "ark"), cert("naples", "ask")];
const vcekDer = fixtureBytes("certs/milan-snp/vcek_milan.der");
const chainPem = fixtureText("certs/milan-snp/cert_chain_milan");
const reportHex = fixtureBytes("certs/milan-snp/report_milan.hex");
const report = decodeSnpReportInput(reportHex);

/** Any of the real SEV certificates, damaged. */
const damagedSevCert = fc.oneof(...[...romeSev, ...naplesSev].map((c) => mutated(c)));

describe("fuzz: SEV certificates (sev-cert.ts)", () => {
  it("arbitrary bytes, and 2084-byte buffers, parse or throw a typed error", () => {
    const sized = fc.uint8Array({ minLength: SEV_CERT_SIZE, maxLength: SEV_CERT_SIZE });
    fc.assert(
      fc.property(fc.oneof(bytes(), sized), (b) => {
        typed(() => parseSevCert(b));
      }),
      params(300),
    );
  });

  it("real certificates with bit flips, truncations and extensions", () => {
    fc.assert(
      fc.property(damagedSevCert, (b) => {
        const out = typed(() => parseSevCert(b));
        if (out.ok) {
          assert.equal(out.value.bytes.length, b.length);
          assert.equal(out.value.sigs.length, 2);
        } else assert.equal(out.code, "CERT_INVALID");
      }),
      params(400),
    );
  });

  it("the key-usage and algorithm words of a real certificate, at any value", () => {
    const words = fc.oneof(...romeSev.map((c) => mutatedRange(c, 0, 0x18)));
    fc.assert(
      fc.property(words, (b) => {
        typed(() => parseSevCert(b));
      }),
      params(300),
    );
  });

  it("parseSevCert(encodeSevCert(x)) reads back x", () => {
    const coord = fc.uint8Array({ minLength: 48, maxLength: 48 });
    const body = fc.record({
      apiMajor: fc.nat(255),
      apiMinor: fc.nat(255),
      usage: fc.constantFrom(Usage.OCA, Usage.PEK, Usage.PDH, Usage.CEK),
      algo: fc.constantFrom(Algo.ECDSA_SHA256, Algo.ECDH_SHA256, Algo.ECDSA_SHA384, Algo.ECDH_SHA384),
      pub: fc.record({ x: coord, y: coord }),
    });
    fc.assert(
      fc.property(body, (x) => {
        const c = parseSevCert(encodeSevCert(x));
        assert.deepEqual(
          { apiMajor: c.apiMajor, apiMinor: c.apiMinor, usage: c.usage, algo: c.algo },
          { apiMajor: x.apiMajor, apiMinor: x.apiMinor, usage: x.usage, algo: x.algo },
        );
        assert.equal(c.key.kind, "ecc");
        if (c.key.kind === "ecc") assert.deepEqual(c.key.pub, { x: x.pub.x, y: x.pub.y });
        assert.deepEqual(
          c.sigs.map((s) => [s.usage, s.algo]),
          [
            [Usage.INVALID, Algo.NONE],
            [Usage.INVALID, Algo.NONE],
          ],
        );
      }),
      params(300),
    );
  });
});

describe("fuzz: AMD certificates and bundles (amd-cert.ts, chain.ts)", () => {
  const parsers: [string, (b: Uint8Array) => unknown][] = [
    ["parseAmdCert", (b) => parseAmdCert(b)],
    ["parseAmdCert allowUnsigned", (b) => parseAmdCert(b, "ark", { allowUnsigned: true })],
    ["parseArkCert", (b) => parseArkCert(b)],
    ["splitAskArk", (b) => splitAskArk(b)],
  ];

  it("arbitrary bytes parse or throw a typed error, and what parses is a prefix of the input", () => {
    fc.assert(
      fc.property(bytes(), fc.constantFrom(...parsers), (b, [, parse]) => {
        typed(() => parse(b));
        const prefix = typed(() => parseAmdCertPrefix(b));
        if (prefix.ok) {
          assert.ok(prefix.value.consumed <= b.length);
          assert.deepEqual(prefix.value.cert.bytes, b.subarray(0, prefix.value.consumed));
        }
      }),
      params(300),
    );
  });

  it("a header that claims 2048/4096-bit keys over too few bytes is refused, not over-read", () => {
    const header = fc
      .record({
        exp: fc.constantFrom(2048, 4096, 0, 8, 0xffffffff),
        mod: fc.constantFrom(2048, 4096, 0, 8, 0xffffffff),
        body: fc.uint8Array({ maxLength: 1200 }),
      })
      .map(({ exp, mod, body }) => {
        const h = new Uint8Array(64);
        const v = new DataView(h.buffer);
        v.setUint32(0, 1, true);
        v.setUint32(0x38, exp, true);
        v.setUint32(0x3c, mod, true);
        return concat(h, body);
      });
    fc.assert(
      fc.property(header, fc.constantFrom(...parsers), (b, [, parse]) => {
        typed(() => parse(b));
      }),
      params(300),
    );
  });

  it("real ARKs and ASKs, and ASK ‖ ARK bundles, with bit flips, truncations and extensions", () => {
    const bundle = concat(cert("rome", "ask"), cert("rome", "ark"));
    const inputs = fc.oneof(
      ...[...amdCerts, bundle, fixtureBytes("certs/naples/ark.cert.bad")].map((c) => mutated(c)),
    );
    fc.assert(
      fc.property(inputs, fc.constantFrom(...parsers), (b, [, parse]) => {
        const out = typed(() => parse(b));
        if (!out.ok) assert.equal(out.code, "CERT_INVALID");
      }),
      params(400),
    );
  });

  it("parseAmdCert(encodeAmdCert(x)) reads back x", () => {
    const keys = JSON.parse(
      readFileSync(new URL("../../src/sev/manufacturer/emulated-amd-keys.json", import.meta.url), "utf8"),
    ) as Record<string, { ask: string }>;
    const signer = rsaKeyPairFromPem(keys.naples!.ask);
    const id = fc.uint8Array({ minLength: 16, maxLength: 16 });
    const body = fc.record({ keyId: id, certifyingId: id, keyUsage: fc.nat(0xffffffff) });
    fc.assert(
      fc.property(body, fc.nat(), (x, seed) => {
        const c = parseAmdCert(encodeAmdCert({ ...x, key: signer }, signer, seededRandom(seed)));
        assert.deepEqual(
          { keyId: c.keyId, certifyingId: c.certifyingId, keyUsage: c.keyUsage },
          { keyId: x.keyId, certifyingId: x.certifyingId, keyUsage: x.keyUsage },
        );
        assert.equal(c.modulusBits, signer.bits);
        assert.deepEqual(stripZeros(c.pub.modulus), stripZeros(signer.pub.modulus));
        assert.deepEqual(stripZeros(c.pub.exponent), stripZeros(signer.pub.exponent));
      }),
      params(40),
    );
  });

  it("sevctl chain files and per-role chain parsing stay typed on damaged real chains", () => {
    const full = concat(...[...romeSev].reverse(), cert("rome", "ask"), cert("rome", "ark"));
    fc.assert(
      fc.property(fc.oneof(mutated(full), bytes(10000)), (b) => {
        const split = typed(() => splitSevctlChain(b));
        if (!split.ok) return;
        const total = Object.values(split.value).reduce((n, x) => n + (x?.length ?? 0), 0);
        assert.equal(total, b.length, "the split pieces are exactly the input");
        typed(() => parseSevChain(split.value));
      }),
      params(200),
    );
    fc.assert(
      fc.property(fc.constantFrom(...ROLES), damagedSevCert, (role, b) => {
        const out = typed(() => parseSevChainCert(role, b, SEV_CHAIN_FILE_NAMES[role]));
        if (!out.ok) assert.equal(out.code, "CERT_INVALID");
      }),
      params(200),
    );
  });
});

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/** A DER tree: a primitive with content, or a constructed element with children. */
type Tree = { tag: number; content: Uint8Array } | { tag: number; children: Tree[] };

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.of(0x80 | out.length, ...out);
}

function encodeTree(t: Tree): Uint8Array {
  const content = "content" in t ? t.content : concat(...t.children.map(encodeTree));
  return concat(Uint8Array.of(t.tag), derLength(content.length), content);
}

/** `t` with ordinary prototypes (fast-check builds records without one), to compare with what was decoded. */
function plain(t: Tree): Tree {
  return "content" in t
    ? { tag: t.tag, content: t.content }
    : { tag: t.tag, children: t.children.map(plain) };
}

function decodeTree(el: DerElement): Tree {
  return (el.tag & 0x20) !== 0
    ? { tag: el.tag, children: derChildren(el, "tree").map(decodeTree) }
    : { tag: el.tag, content: el.content.slice() };
}

const tree: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({
      // Primitive, low-tag-number tags (multi-byte tags are refused by design).
      tag: fc.integer({ min: 0, max: 0x1e }).chain((t) => fc.constantFrom(t, t | 0x80)),
      content: fc.uint8Array({ maxLength: 300 }),
    }),
    fc.record({
      tag: fc.constantFrom(0x30, 0x31, 0xa0, 0xa3),
      children: fc.array(tie("tree"), { maxLength: 4 }),
    }),
  ),
})).tree;

describe("fuzz: DER and X.509 (der.ts, x509.ts, vcek.ts)", () => {
  it("arbitrary bytes: parseDer, a recursive walk, OIDs and times stay typed; children partition the parent", () => {
    const walk = (el: DerElement, depth: number): number => {
      typed(() => derOid(el, "fuzz"));
      typed(() => derTime(el, "fuzz"));
      if ((el.tag & 0x20) === 0 || depth > 16) return 1;
      const kids = typed(() => derChildren(el, "fuzz"));
      if (!kids.ok) return 1;
      assert.equal(
        kids.value.reduce((n, k) => n + k.bytes.length, 0),
        el.content.length,
      );
      return 1 + kids.value.reduce((n, k) => n + walk(k, depth + 1), 0);
    };
    const derish = fc.oneof(
      bytes(),
      tree.chain((t) => mutated(encodeTree(t), 3)),
    );
    fc.assert(
      fc.property(derish, (b) => {
        const el = typed(() => parseDer(b, "fuzz"));
        if (el.ok) assert.ok(walk(el.value, 0) <= b.length, "no more elements than bytes");
        typed(() => readDer(b, 0, "fuzz"));
      }),
      params(400),
    );
  });

  it("DER trees read back as written", () => {
    fc.assert(
      fc.property(tree, (t) => {
        assert.deepEqual(decodeTree(parseDer(encodeTree(t), "tree")), plain(t));
      }),
      params(300),
    );
  });

  it("the real VCEK, damaged, through parseX509, parseX509Any and parseVcek", () => {
    fc.assert(
      fc.property(mutated(vcekDer), (b) => {
        for (const parse of [parseX509, parseX509Any, parseVcek]) {
          const out = typed(() => parse(b));
          if (!out.ok) assert.equal(out.code, "CERT_INVALID");
        }
      }),
      params(400),
    );
  });

  it("arbitrary bytes and damaged PEM text through parseX509Any, parseVcek and parsePemCertificates", () => {
    const vcekPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(vcekDer).toString("base64")}\n-----END CERTIFICATE-----\n`;
    const text = fc.oneof(mutatedText(chainPem), mutatedText(vcekPem), fc.string({ unit: "binary" }));
    fc.assert(
      fc.property(text, bytes(), (t, b) => {
        const pem = typed(() => parsePemCertificates(t));
        if (pem.ok) {
          const decoded = pem.value.reduce((n, d) => n + d.length, 0);
          assert.ok(decoded <= t.length, "base64 bodies decode to fewer bytes than the text");
          for (const d of pem.value) typed(() => parseX509(d));
        }
        const enc = new TextEncoder().encode(t);
        typed(() => parseX509Any(enc));
        typed(() => parseVcek(enc));
        typed(() => parseX509Any(b));
        typed(() => parseVcek(concat(Uint8Array.of(0x30), b)));
      }),
      params(300),
    );
  });
});

describe("fuzz: SNP reports (snp-report.ts)", () => {
  it("arbitrary bytes and 0x4A0-byte buffers parse or throw REPORT_INVALID; signatures decode or are absent", () => {
    const sized = fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE });
    fc.assert(
      fc.property(fc.oneof(bytes(), sized, mutated(report)), (b) => {
        const out = typed(() => parseSnpReport(b));
        if (!out.ok) return assert.equal(out.code, "REPORT_INVALID");
        assert.equal(out.value.bytes.length, SNP_REPORT_SIZE);
        const sig = snpReportSignature(out.value);
        if (sig) assert.deepEqual([sig.r.length, sig.s.length], [48, 48]);
      }),
      params(400),
    );
  });

  it("decodeSnpReportInput on damaged hex text and arbitrary text stays typed and bounded", () => {
    const hexText = fc.stringMatching(/^(0x)?[0-9a-fA-F \n]{0,3000}$/);
    const input = fc.oneof(
      mutated(reportHex),
      hexText.map((t) => new TextEncoder().encode(t)),
      bytes(),
    );
    fc.assert(
      fc.property(input, (b) => {
        const out = typed(() => decodeSnpReportInput(b));
        if (out.ok) {
          assert.equal(out.value.length, SNP_REPORT_SIZE);
          assert.ok(out.value.length <= b.length);
        }
      }),
      params(300),
    );
  });
});
