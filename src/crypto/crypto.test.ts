import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { fromHex, toHex } from "../lib/bytes.ts";
import { aes128Ctr } from "./aes.ts";
import { ecdh, ecdsaSign, ecdsaVerify, generateEcKeyPair, isOnCurve } from "./ec.ts";
import { hmacSha256 } from "./hash.ts";
import { sevKdf } from "./kdf.ts";
import { seededRandom } from "./random.ts";
import { rsaKeyPairFromPem, rsaPssSign, rsaPssVerify } from "./rsa.ts";

const zero16 = new Uint8Array(16);

describe("SEV KDF (docs/sev-interface.md §16.1)", () => {
  it("derives the known master, KEK and KIK", () => {
    const master = sevKdf(zero16, "sev-master-secret", zero16);
    assert.equal(toHex(master), "ab4d269fcc62bedb4511d56c386ce706");
    assert.equal(toHex(sevKdf(master, "sev-kek", new Uint8Array())), "b6abfbfb75ea1ea74ed8750b8afdb973");
    assert.equal(toHex(sevKdf(master, "sev-kik", new Uint8Array())), "53b524bf5669a363f365c864acba8572");
  });

  it("wraps TEK ‖ TIK and MACs it as virtee/sev's test expects", () => {
    const master = sevKdf(zero16, "sev-master-secret", zero16);
    const kek = sevKdf(master, "sev-kek", new Uint8Array());
    const kik = sevKdf(master, "sev-kik", new Uint8Array());
    const wrapTk = aes128Ctr(kek, zero16, new Uint8Array(32));
    assert.equal(toHex(wrapTk), "2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4");
    assert.equal(
      toHex(hmacSha256(kik, wrapTk)),
      "3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d",
    );
    assert.equal(
      toHex(hmacSha256(zero16, new Uint8Array(4))),
      "aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af",
    );
  });
});

describe("P-384", () => {
  it("signs deterministically and verifies; a flipped bit fails", () => {
    const kp = generateEcKeyPair(seededRandom(1));
    const msg = new TextEncoder().encode("measure me");
    const a = ecdsaSign(kp.d, "sha256", msg);
    const b = ecdsaSign(kp.d, "sha256", msg);
    assert.deepEqual(a, b);
    assert.ok(ecdsaVerify(kp.pub, "sha256", msg, a));
    const bad = msg.slice();
    bad[0]! ^= 1;
    assert.ok(!ecdsaVerify(kp.pub, "sha256", bad, a));
    assert.ok(!ecdsaVerify(kp.pub, "sha384", msg, a));
  });

  it("agrees on ECDH and refuses off-curve points", () => {
    const rng = seededRandom(2);
    const a = generateEcKeyPair(rng);
    const b = generateEcKeyPair(rng);
    assert.deepEqual(ecdh(a.d, b.pub), ecdh(b.d, a.pub));
    const off = { x: b.pub.x, y: b.pub.y.slice() };
    off.y[47]! ^= 1;
    assert.ok(!isOnCurve(off));
    assert.throws(() => ecdh(a.d, off), { code: "INVALID_INPUT" });
  });
});

describe("RSA-PSS", () => {
  it("signs with a seeded salt and verifies under node:crypto's PSS", () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const kp = rsaKeyPairFromPem(privateKey.export({ format: "pem", type: "pkcs8" }) as string);
    const msg = fromHex("00112233");
    const sig = rsaPssSign(kp, "sha256", msg, seededRandom(3));
    assert.equal(sig.length, 256);
    assert.ok(rsaPssVerify(kp.pub, "sha256", msg, sig));
    assert.deepEqual(sig, rsaPssSign(kp, "sha256", msg, seededRandom(3)));
    sig[10]! ^= 4;
    assert.ok(!rsaPssVerify(kp.pub, "sha256", msg, sig));
  });
});
