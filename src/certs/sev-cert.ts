/**
 * The SEV certificate: exactly 0x824 bytes, used for the PEK, PDH, OCA, CEK and the guest owner's GODH
 * (docs/sev-interface.md §11.1).
 *
 * | offset | size  | field |
 * |--------|-------|-------|
 * | 0x000  | 4     | version = 1 |
 * | 0x004  | 1     | api_major |
 * | 0x005  | 1     | api_minor |
 * | 0x008  | 4     | pubkey_usage |
 * | 0x00C  | 4     | pubkey_algo |
 * | 0x010  | 0x404 | public key: ECC {curve u32, qx[72], qy[72]} or RSA {bits u32, pubexp[512], modulus[512]} |
 * | 0x414  | 4+4+0x200 | signature 1: usage, algo, sig (ECDSA r[72] ‖ s[72]; RSA sig[512]) |
 * | 0x61C  | 4+4+0x200 | signature 2 |
 *
 * The signed region is [0, 0x414). All integers are little-endian, big numbers included (docs/sev-interface.md §15 pitfall 1).
 */
import { type KeyObject, verify as nodeVerify } from "node:crypto";
import { type EcPublicKey, ecdsaSign, ecdsaVerify } from "../crypto/ec.ts";
import type { HashName } from "../crypto/hash.ts";
import type { RandomSource } from "../crypto/random.ts";
import { type RsaKeyPair, type RsaPublicKey, rsaPssSign, rsaPssVerify } from "../crypto/rsa.ts";
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter, bigFromLE, bigToBE, bigToLE, concat, reversed } from "../lib/bytes.ts";

export const SEV_CERT_SIZE = 0x824;
export const SEV_CERT_SIGNED_SIZE = 0x414;
const SIG1 = 0x414;
const SIG2 = 0x61c;
const SIG_FIELD = 0x200;

/** Key and signature usages (docs/sev-interface.md §11.1). */
export const Usage = {
  ARK: 0x0000,
  ASK: 0x0013,
  INVALID: 0x1000,
  OCA: 0x1001,
  PEK: 0x1002,
  PDH: 0x1003,
  CEK: 0x1004,
} as const;
export type UsageName = keyof typeof Usage;

/** Algorithm ids (docs/sev-interface.md §11.1). */
export const Algo = {
  NONE: 0x0000,
  RSA_SHA256: 0x0001,
  ECDSA_SHA256: 0x0002,
  ECDH_SHA256: 0x0003,
  RSA_SHA384: 0x0101,
  ECDSA_SHA384: 0x0102,
  ECDH_SHA384: 0x0103,
} as const;

export function usageName(u: number): string {
  for (const [k, v] of Object.entries(Usage)) if (v === u) return k;
  return `0x${u.toString(16)}`;
}

export type SevPublicKey =
  | { kind: "ecc"; curve: number; pub: EcPublicKey }
  | { kind: "rsa"; modulusBits: number; pub: RsaPublicKey };

export interface SevSignature {
  usage: number;
  algo: number;
  /** The raw 0x200-byte field. */
  raw: Uint8Array;
}

export interface SevCert {
  version: number;
  apiMajor: number;
  apiMinor: number;
  usage: number;
  algo: number;
  key: SevPublicKey;
  sigs: [SevSignature, SevSignature];
  /** The 0x824 bytes as parsed or encoded. */
  bytes: Uint8Array;
}

function hashOf(algo: number): HashName | undefined {
  switch (algo) {
    case Algo.RSA_SHA256:
    case Algo.ECDSA_SHA256:
    case Algo.ECDH_SHA256:
      return "sha256";
    case Algo.RSA_SHA384:
    case Algo.ECDSA_SHA384:
    case Algo.ECDH_SHA384:
      return "sha384";
    default:
      return undefined;
  }
}

function isEcAlgo(algo: number): boolean {
  return (algo & 0xff) === 0x02 || (algo & 0xff) === 0x03;
}

/**
 * Parses a SEV certificate. Refuses a wrong size, an unknown version, an unknown key usage and an ECC key that
 * is not P-384 with a clear message naming `what` (e.g. "pdh.cert").
 */
export function parseSevCert(bytes: Uint8Array, what = "SEV certificate"): SevCert {
  if (bytes.length !== SEV_CERT_SIZE) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: a SEV certificate is ${SEV_CERT_SIZE} bytes, this one is ${bytes.length}`,
    );
  }
  const r = new ByteReader(bytes, what);
  const version = r.u32(0);
  if (version !== 1)
    throw new CiphervisorError("CERT_INVALID", `${what}: unsupported SEV certificate version ${version}`);
  const usage = r.u32(0x8);
  const algo = r.u32(0xc);
  if (![Usage.OCA, Usage.PEK, Usage.PDH, Usage.CEK].includes(usage as 0x1001)) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: key usage ${usageName(usage)} is not OCA, PEK, PDH or CEK`,
    );
  }
  let key: SevPublicKey;
  if (isEcAlgo(algo)) {
    const curve = r.u32(0x10);
    if (curve !== 2)
      throw new CiphervisorError("CERT_INVALID", `${what}: curve id ${curve} is not P-384 (2)`);
    const x = r.slice(0x14, 72);
    const y = r.slice(0x5c, 72);
    // Check the width before converting: the conversion itself would throw a RangeError, not CERT_INVALID.
    if (bigFromLE(x) >> 384n !== 0n || bigFromLE(y) >> 384n !== 0n) {
      throw new CiphervisorError("CERT_INVALID", `${what}: ECC coordinate wider than 384 bits`);
    }
    key = { kind: "ecc", curve, pub: { x: bigToBE(bigFromLE(x), 48), y: bigToBE(bigFromLE(y), 48) } };
  } else if ((algo & 0xff) === 0x01) {
    const modulusBits = r.u32(0x10);
    if (modulusBits < 1024 || modulusBits > 4096 || modulusBits % 8 !== 0) {
      throw new CiphervisorError(
        "CERT_INVALID",
        `${what}: RSA modulus size ${modulusBits} bits is not supported`,
      );
    }
    key = {
      kind: "rsa",
      modulusBits,
      pub: { exponent: reversed(r.slice(0x14, 512)), modulus: reversed(r.slice(0x214, 512)) },
    };
  } else {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: unknown public key algorithm 0x${algo.toString(16)}`,
    );
  }
  const sig = (o: number): SevSignature => ({
    usage: r.u32(o),
    algo: r.u32(o + 4),
    raw: r.slice(o + 8, SIG_FIELD),
  });
  return {
    version,
    apiMajor: r.u8(4),
    apiMinor: r.u8(5),
    usage,
    algo,
    key,
    sigs: [sig(SIG1), sig(SIG2)],
    bytes: bytes.slice(),
  };
}

export interface SevCertBody {
  apiMajor: number;
  apiMinor: number;
  usage: number;
  algo: number;
  pub: EcPublicKey;
}

/** Encodes an unsigned P-384 SEV certificate: both signature slots empty (usage 0x1000, algo 0 — docs/sev-interface.md §15 pitfall 4). */
export function encodeSevCert(body: SevCertBody): Uint8Array {
  const w = new ByteWriter(SEV_CERT_SIZE);
  w.u32(0, 1).u8(4, body.apiMajor).u8(5, body.apiMinor).u32(8, body.usage).u32(0xc, body.algo);
  w.u32(0x10, 2)
    .set(0x14, bigToLE(bigFromBE48(body.pub.x), 72))
    .set(0x5c, bigToLE(bigFromBE48(body.pub.y), 72));
  w.u32(SIG1, Usage.INVALID).u32(SIG1 + 4, Algo.NONE);
  w.u32(SIG2, Usage.INVALID).u32(SIG2 + 4, Algo.NONE);
  return w.bytes;
}

function bigFromBE48(b: Uint8Array): bigint {
  return bigFromLE(reversed(b));
}

function slotOffset(slot: 1 | 2): number {
  return slot === 1 ? SIG1 : SIG2;
}

/** Returns a copy of `cert` with an ECDSA signature by `signerD` in `slot`, tagged with the signer's usage. */
export function signSevCertEcdsa(
  cert: Uint8Array,
  slot: 1 | 2,
  signerUsage: number,
  signerD: Uint8Array,
  algo: number = Algo.ECDSA_SHA256,
): Uint8Array {
  const out = cert.slice();
  const hash = hashOf(algo);
  if (!hash) throw new RangeError(`not a signature algorithm: ${algo}`);
  const { r, s } = ecdsaSign(signerD, hash, out.subarray(0, SEV_CERT_SIGNED_SIZE));
  const o = slotOffset(slot);
  const w = new ByteWriter(8 + SIG_FIELD);
  w.u32(0, signerUsage)
    .u32(4, algo)
    .set(8, reversed(r))
    .set(8 + 72, reversed(s));
  out.set(w.bytes, o);
  return out;
}

/** Returns a copy of `cert` with an RSA-PSS signature (the ASK signing a CEK). */
export function signSevCertRsa(
  cert: Uint8Array,
  slot: 1 | 2,
  signerUsage: number,
  signer: RsaKeyPair,
  algo: number,
  rng: RandomSource,
): Uint8Array {
  const out = cert.slice();
  const hash = hashOf(algo);
  if (!hash) throw new RangeError(`not a signature algorithm: ${algo}`);
  const sig = rsaPssSign(signer, hash, out.subarray(0, SEV_CERT_SIGNED_SIZE), rng);
  const w = new ByteWriter(8 + SIG_FIELD);
  w.u32(0, signerUsage).u32(4, algo).set(8, reversed(sig));
  out.set(w.bytes, slotOffset(slot));
  return out;
}

export type SignerKey =
  | {
      kind: "ecc";
      pub: EcPublicKey;
      /**
       * Optional node:crypto key for `pub`, made once by a caller that verifies many certificates with one signer
       * (chain.ts caches them): importing a P-384 key costs about as much as one verification. The caller
       * guarantees it is `pub` and that `pub` is on the curve.
       */
      keyObject?: KeyObject;
    }
  | { kind: "rsa"; pub: RsaPublicKey; modulusBits: number };

/**
 * Verifies that `cert` carries a valid signature by a key of `signerUsage`. Signers are matched to slots by usage,
 * and both slots are tried (docs/sev-interface.md §15 pitfall 4). The hash comes from the slot's own algo field (docs/sev-interface.md §15 pitfall 2).
 */
export function verifySevCertSignature(cert: SevCert, signerUsage: number, signer: SignerKey): boolean {
  const msg = cert.bytes.subarray(0, SEV_CERT_SIGNED_SIZE);
  for (const sig of cert.sigs) {
    if (sig.usage !== signerUsage) continue;
    const hash = hashOf(sig.algo);
    if (!hash) continue;
    if (signer.kind === "ecc" && (sig.algo & 0xff) === 0x02) {
      const r = bigToBE(bigFromLE(sig.raw.subarray(0, 72)) & ((1n << 384n) - 1n), 48);
      const s = bigToBE(bigFromLE(sig.raw.subarray(72, 144)) & ((1n << 384n) - 1n), 48);
      if (
        bigFromLE(sig.raw.subarray(0, 72)) >> 384n !== 0n ||
        bigFromLE(sig.raw.subarray(72, 144)) >> 384n !== 0n
      ) {
        continue;
      }
      const ok = signer.keyObject
        ? verifyP1363(signer.keyObject, hash, msg, concat(r, s))
        : ecdsaVerify(signer.pub, hash, msg, { r, s });
      if (ok) return true;
    } else if (signer.kind === "rsa" && (sig.algo & 0xff) === 0x01) {
      const len = signer.modulusBits / 8;
      if (rsaPssVerify(signer.pub, hash, msg, reversed(sig.raw.subarray(0, len)))) return true;
    }
  }
  return false;
}

function verifyP1363(key: KeyObject, hash: HashName, msg: Uint8Array, rs: Uint8Array): boolean {
  try {
    return nodeVerify(hash, msg, { key, dsaEncoding: "ieee-p1363" }, rs);
  } catch {
    return false;
  }
}

/** The ECDH/ECDSA public key of a SEV certificate, or a CERT_INVALID error naming `what`. */
export function eccKeyOf(cert: SevCert, what: string): EcPublicKey {
  if (cert.key.kind !== "ecc")
    throw new CiphervisorError("CERT_INVALID", `${what}: expected an ECC (P-384) key`);
  return cert.key.pub;
}
