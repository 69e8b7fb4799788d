/**
 * RSA-PSS as AMD uses it for ARK → ASK → CEK: MGF1 with the signature hash and salt length = digest length
 * (docs/sev-interface.md §11.1, §11.2, §15 pitfall 2). Moduli and signatures arrive big-endian here; the codecs reverse
 * AMD's little-endian fields.
 *
 * Signing builds the EMSA-PSS encoding itself with a salt from an injected RandomSource and applies the raw RSA
 * private operation, so emulated certificates are reproducible from a seed.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  verify as nodeVerify,
  privateEncrypt,
} from "node:crypto";
import { bigFromBE, bigToBE, concat } from "../lib/bytes.ts";
import { digest, type HashName } from "./hash.ts";
import type { RandomSource } from "./random.ts";

export interface RsaPublicKey {
  /** Big-endian modulus without leading zeros beyond its bit length. */
  modulus: Uint8Array;
  /** Big-endian public exponent. */
  exponent: Uint8Array;
}

function b64u(b: Uint8Array): string {
  return Buffer.from(b).toString("base64url");
}

function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

export function rsaPublicKeyObject(pub: RsaPublicKey): KeyObject {
  return createPublicKey({
    key: { kty: "RSA", n: b64u(stripLeadingZeros(pub.modulus)), e: b64u(stripLeadingZeros(pub.exponent)) },
    format: "jwk",
  });
}

/** RSA-PSS verification; false (never an exception) for malformed input. */
export function rsaPssVerify(
  pub: RsaPublicKey,
  hash: HashName,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    const key = rsaPublicKeyObject(pub);
    return nodeVerify(
      hash,
      message,
      { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === "sha256" ? 32 : 48 },
      signature,
    );
  } catch {
    return false;
  }
}

function mgf1(hash: HashName, seed: Uint8Array, length: number): Uint8Array {
  const out: Uint8Array[] = [];
  let n = 0;
  for (let c = 0; n < length; c++) {
    const block = digest(
      hash,
      seed,
      new Uint8Array([(c >>> 24) & 255, (c >>> 16) & 255, (c >>> 8) & 255, c & 255]),
    );
    out.push(block);
    n += block.length;
  }
  return concat(...out).slice(0, length);
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with salt length = hash length. */
function emsaPssEncode(hash: HashName, message: Uint8Array, modBits: number, salt: Uint8Array): Uint8Array {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const mHash = digest(hash, message);
  const h = digest(hash, new Uint8Array(8), mHash, salt);
  const ps = new Uint8Array(emLen - salt.length - h.length - 2);
  const db = concat(ps, new Uint8Array([1]), salt);
  const mask = mgf1(hash, h, db.length);
  const maskedDb = db.map((v, i) => v ^ mask[i]!);
  maskedDb[0]! &= 0xff >>> (8 * emLen - emBits);
  return concat(maskedDb, h, new Uint8Array([0xbc]));
}

/** A PKCS#8 PEM private key together with its public half, as the emulated AMD roots store them. */
export interface RsaKeyPair {
  privatePem: string;
  pub: RsaPublicKey;
  bits: number;
}

export function rsaKeyPairFromPem(privatePem: string): RsaKeyPair {
  const key = createPrivateKey(privatePem);
  const jwk = key.export({ format: "jwk" }) as { n: string; e: string };
  const modulus = new Uint8Array(Buffer.from(jwk.n, "base64url"));
  const bits = bigFromBE(modulus).toString(2).length;
  return { privatePem, pub: { modulus, exponent: new Uint8Array(Buffer.from(jwk.e, "base64url")) }, bits };
}

/** RSA-PSS signature, big-endian, exactly modulus-length bytes. */
export function rsaPssSign(
  key: RsaKeyPair,
  hash: HashName,
  message: Uint8Array,
  rng: RandomSource,
): Uint8Array {
  const saltLen = hash === "sha256" ? 32 : 48;
  const em = emsaPssEncode(hash, message, key.bits, rng.bytes(saltLen));
  const k = Math.ceil(key.bits / 8);
  const padded = bigToBE(bigFromBE(em), k);
  return new Uint8Array(privateEncrypt({ key: key.privatePem, padding: constants.RSA_NO_PADDING }, padded));
}
