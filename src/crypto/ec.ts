/**
 * ECDH and ECDSA on P-384, the curve of every SEV platform key (PEK, PDH, OCA, CEK) and of the guest owner's GODH
 * (docs/sev-interface.md §9.1, §11). Coordinates here are **big-endian** 48-byte strings; the certificate codec converts
 * from AMD's little-endian fields (docs/sev-interface.md §15 pitfall 1).
 *
 * Signing is deterministic (k derived from the private key and the digest) so an emulated platform built from a
 * seed produces byte-identical certificates; verification uses node:crypto.
 */
import {
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type JsonWebKey,
  type KeyObject,
  verify as nodeVerify,
} from "node:crypto";
import { CiphervisorError } from "../errors.ts";
import { bigFromBE, bigToBE, concat } from "../lib/bytes.ts";
import { digest, type HashName, hmacSha256 } from "./hash.ts";
import type { RandomSource } from "./random.ts";

/** P-384 domain parameters (FIPS 186-4 D.1.2.4). */
export const P384 = {
  p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
  b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  size: 48,
} as const;

export interface EcPublicKey {
  x: Uint8Array;
  y: Uint8Array;
}

export interface EcKeyPair {
  /** The private scalar, 48 bytes big-endian. Lives only inside the party that generated it. */
  d: Uint8Array;
  pub: EcPublicKey;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** Modular inverse by the extended Euclidean algorithm (m prime, a ≠ 0 mod m). */
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, m);
}

/**
 * True when (x, y) is a point of P-384: both coordinates in [0, p) and y² = x³ − 3x + b. P-384 has cofactor 1, so
 * every such point generates the full group: no small-order points exist to reject separately. This is the check
 * whose absence was CVE-2019-9836 (docs/sev-interface.md §11.4).
 */
export function isOnCurve(pub: EcPublicKey): boolean {
  if (pub.x.length !== P384.size || pub.y.length !== P384.size) return false;
  const { p, b } = P384;
  const x = bigFromBE(pub.x);
  const y = bigFromBE(pub.y);
  if (x >= p || y >= p) return false;
  return mod(y * y - (x * x * x - 3n * x + b), p) === 0n;
}

function publicFromScalar(d: Uint8Array): EcPublicKey {
  const ecdh = createECDH("secp384r1");
  ecdh.setPrivateKey(d);
  const raw = ecdh.getPublicKey();
  return { x: new Uint8Array(raw.subarray(1, 49)), y: new Uint8Array(raw.subarray(49, 97)) };
}

/** A fresh key pair from `rng` (rejection-sampled scalar in [1, n)). */
export function generateEcKeyPair(rng: RandomSource): EcKeyPair {
  for (;;) {
    const d = rng.bytes(P384.size);
    const v = bigFromBE(d);
    if (v > 0n && v < P384.n) return { d, pub: publicFromScalar(d) };
  }
}

/**
 * ECDH shared secret Z: the x-coordinate of d·Q as 48 big-endian bytes (the standard SEC1 output that the KDF
 * consumes, §9.2). Refuses a peer point that is not on the curve.
 */
export function ecdh(d: Uint8Array, peer: EcPublicKey): Uint8Array {
  if (!isOnCurve(peer))
    throw new CiphervisorError("INVALID_INPUT", "ECDH peer public key is not a point on P-384");
  const publicKey = createPublicKey({ key: ecP384Spki(peer), format: "der", type: "spki" });
  return new Uint8Array(diffieHellman({ privateKey: ecdhPrivateKey(d), publicKey }));
}

/**
 * DER SubjectPublicKeyInfo of a P-384 point: SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING { 04 ‖ x
 * ‖ y } } (RFC 5480 §2), for certificates and for Node's key import — which takes this about four times faster than
 * the same key as a JWK (0.11 against 0.47 ms on this project's test machine); the firmware imports a guest owner's
 * key at every LAUNCH_START. Every P-384 SPKI has the same 24 bytes before the coordinates.
 */
const P384_SPKI_PREFIX = Buffer.from("3076301006072a8648ce3d020106052b8104002203620004", "hex");

export function ecP384Spki(pub: EcPublicKey): Buffer {
  const der = Buffer.alloc(P384_SPKI_PREFIX.length + 96);
  P384_SPKI_PREFIX.copy(der, 0);
  der.set(pub.x, P384_SPKI_PREFIX.length);
  der.set(pub.y, P384_SPKI_PREFIX.length + 48);
  return der;
}

const b64url = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64url");

function p384Jwk(pub: EcPublicKey, d?: Uint8Array): JsonWebKey {
  return { kty: "EC", crv: "P-384", x: b64url(pub.x), y: b64url(pub.y), ...(d ? { d: b64url(d) } : {}) };
}

/** Per private scalar: a copy of the scalar and the key object holding it. */
const ecdhKeys = new WeakMap<Uint8Array, { d: Buffer; key: KeyObject }>();

/**
 * The private key object for scalar `d`, built once per key: building it derives the public point, a full P-384
 * scalar multiplication, and a long-lived key (the firmware's PDH, used at every LAUNCH_START with a guest owner's
 * session, docs/sev-interface.md §9.3) needs that only once — each ECDH is then one multiplication, not two (and
 * `diffieHellman` on key objects runs ~10 % faster than `ECDH.computeSecret` on Node 20's OpenSSL). Keyed by the scalar's buffer and used only while that buffer still holds the scalar it was built from.
 */
function ecdhPrivateKey(d: Uint8Array): KeyObject {
  const hit = ecdhKeys.get(d);
  if (hit?.d.equals(d)) return hit.key;
  const key = createPrivateKey({ key: p384Jwk(publicFromScalar(d), d), format: "jwk" });
  ecdhKeys.set(d, { d: Buffer.from(d), key });
  return key;
}

export interface EcdsaSignature {
  /** r and s, 48 bytes big-endian each. */
  r: Uint8Array;
  s: Uint8Array;
}

/**
 * Deterministic ECDSA P-384 over `hash(message)`. The nonce k is HMAC-SHA256(d, digest ‖ counter) expanded to 48
 * bytes and rejection-sampled, so it is secret, unique per message and reproducible (the idea of RFC 6979, simpler
 * construction).
 */
export function ecdsaSign(d: Uint8Array, hash: HashName, message: Uint8Array): EcdsaSignature {
  const { n } = P384;
  const h = digest(hash, message);
  const e = bigFromBE(h) >> BigInt(Math.max(0, h.length * 8 - 384));
  const dv = bigFromBE(d);
  for (let counter = 0; ; counter++) {
    const c = new Uint8Array([counter & 0xff, (counter >> 8) & 0xff]);
    const kBytes = concat(
      hmacSha256(d, h, c, new Uint8Array([1])),
      hmacSha256(d, h, c, new Uint8Array([2])),
    ).slice(0, 48);
    const k = bigFromBE(kBytes);
    if (k === 0n || k >= n) continue;
    const r = mod(bigFromBE(publicFromScalar(kBytes).x), n);
    if (r === 0n) continue;
    const s = mod(modInverse(k, n) * (e + r * dv), n);
    if (s === 0n) continue;
    return { r: bigToBE(r, 48), s: bigToBE(s, 48) };
  }
}

/** ECDSA P-384 verification; false (never an exception) for a malformed key or signature. */
export function ecdsaVerify(
  pub: EcPublicKey,
  hash: HashName,
  message: Uint8Array,
  sig: EcdsaSignature,
): boolean {
  if (!isOnCurve(pub) || sig.r.length !== 48 || sig.s.length !== 48) return false;
  try {
    const key = createPublicKey({
      key: {
        kty: "EC",
        crv: "P-384",
        x: Buffer.from(pub.x).toString("base64url"),
        y: Buffer.from(pub.y).toString("base64url"),
      },
      format: "jwk",
    });
    return nodeVerify(hash, message, { key, dsaEncoding: "ieee-p1363" }, concat(sig.r, sig.s));
  } catch {
    return false;
  }
}
