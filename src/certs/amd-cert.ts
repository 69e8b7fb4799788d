/**
 * AMD's legacy root and signing certificate format, used for the ARK and ASK (docs/sev-interface.md §11.2).
 *
 * | offset | size | field |
 * |--------|------|-------|
 * | 0x00 | 4  | version = 1 |
 * | 0x04 | 16 | key_id |
 * | 0x14 | 16 | certifying_id (= key_id when self-signed) |
 * | 0x24 | 4  | key_usage (ARK 0x00, ASK 0x13) |
 * | 0x28 | 16 | reserved |
 * | 0x38 | 4  | pub_exp_size (bits) |
 * | 0x3C | 4  | modulus_size (bits) |
 * | 0x40 | pub_exp_size/8  | public exponent, LE |
 * | …    | modulus_size/8  | modulus, LE |
 * | …    | modulus_size/8  | signature, LE |
 *
 * RSA-PSS; SHA-256 for 2048-bit keys and SHA-384 for 4096-bit keys; salt = digest length. The signed region is
 * everything before the signature.
 */
import type { HashName } from "../crypto/hash.ts";
import type { RandomSource } from "../crypto/random.ts";
import { type RsaKeyPair, type RsaPublicKey, rsaPssSign, rsaPssVerify } from "../crypto/rsa.ts";
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter, concat, reversed, toHex } from "../lib/bytes.ts";

export const AMD_HEADER_SIZE = 0x40;

export interface AmdCert {
  version: number;
  keyId: Uint8Array;
  certifyingId: Uint8Array;
  keyUsage: number;
  pubExpBits: number;
  modulusBits: number;
  pub: RsaPublicKey;
  /** Big-endian signature, or undefined for the unsigned Naples ARK as AMD first published it (docs/sev-interface.md §15 pitfall 19). */
  signature: Uint8Array | undefined;
  /** Header + exponent + modulus: the signed region. */
  signedRegion: Uint8Array;
  bytes: Uint8Array;
}

export function amdCertHash(modulusBits: number): HashName {
  return modulusBits === 2048 ? "sha256" : "sha384";
}

export interface ParseAmdCertOptions {
  /**
   * Accept a certificate whose signature is missing. Only for the Naples ARK as AMD originally published it (576
   * bytes); such a certificate can be a root only when pinned by its key, never verified by itself.
   */
  allowUnsigned?: boolean;
}

/** Parses one AMD certificate from the start of `bytes`; `consumed` tells where the next one (ASK ‖ ARK) begins. */
export function parseAmdCertPrefix(
  bytes: Uint8Array,
  what = "AMD certificate",
  options: ParseAmdCertOptions = {},
): { cert: AmdCert; consumed: number } {
  const r = new ByteReader(bytes, what);
  if (bytes.length < AMD_HEADER_SIZE) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: ${bytes.length} bytes is shorter than the 64-byte header`,
    );
  }
  const version = r.u32(0);
  if (version !== 1)
    throw new CiphervisorError("CERT_INVALID", `${what}: unsupported AMD certificate version ${version}`);
  const pubExpBits = r.u32(0x38);
  const modulusBits = r.u32(0x3c);
  for (const [name, v] of [
    ["public exponent size", pubExpBits],
    ["modulus size", modulusBits],
  ] as const) {
    if (v !== 2048 && v !== 4096) {
      throw new CiphervisorError("CERT_INVALID", `${what}: ${name} ${v} bits (expected 2048 or 4096)`);
    }
  }
  const expLen = pubExpBits / 8;
  const modLen = modulusBits / 8;
  const signedLen = AMD_HEADER_SIZE + expLen + modLen;
  if (bytes.length < signedLen) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: truncated (${bytes.length} of ${signedLen + modLen} bytes)`,
    );
  }
  let signature: Uint8Array | undefined;
  let consumed = signedLen + modLen;
  if (bytes.length < consumed) {
    if (!options.allowUnsigned || bytes.length !== signedLen) {
      throw new CiphervisorError("CERT_INVALID", `${what}: truncated (${bytes.length} of ${consumed} bytes)`);
    }
    consumed = signedLen;
  } else {
    signature = reversed(r.slice(signedLen, modLen));
  }
  const cert: AmdCert = {
    version,
    keyId: r.slice(0x04, 16),
    certifyingId: r.slice(0x14, 16),
    keyUsage: r.u32(0x24),
    pubExpBits,
    modulusBits,
    pub: {
      exponent: reversed(r.slice(AMD_HEADER_SIZE, expLen)),
      modulus: reversed(r.slice(AMD_HEADER_SIZE + expLen, modLen)),
    },
    signature,
    signedRegion: r.slice(0, signedLen),
    bytes: bytes.slice(0, consumed),
  };
  return { cert, consumed };
}

/** Parses exactly one AMD certificate; trailing bytes are an error. */
export function parseAmdCert(
  bytes: Uint8Array,
  what = "AMD certificate",
  options: ParseAmdCertOptions = {},
): AmdCert {
  const { cert, consumed } = parseAmdCertPrefix(bytes, what, options);
  if (consumed !== bytes.length) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: ${bytes.length - consumed} unexpected bytes after the certificate (is this an ASK ‖ ARK bundle?)`,
    );
  }
  return cert;
}

/** True when `cert` carries a valid RSA-PSS signature by `signer`. */
export function verifyAmdCertSignature(cert: AmdCert, signer: AmdCert): boolean {
  if (!cert.signature) return false;
  return rsaPssVerify(signer.pub, amdCertHash(signer.modulusBits), cert.signedRegion, cert.signature);
}

export function keyIdHex(cert: AmdCert): string {
  return toHex(cert.keyId);
}

export interface AmdCertBody {
  keyId: Uint8Array;
  certifyingId: Uint8Array;
  keyUsage: number;
  key: RsaKeyPair;
}

/** Encodes and signs an AMD certificate (for the emulated ARK/ASK; real ones come from AMD). */
export function encodeAmdCert(body: AmdCertBody, signer: RsaKeyPair, rng: RandomSource): Uint8Array {
  const bits = body.key.bits;
  const w = new ByteWriter(AMD_HEADER_SIZE + bits / 8 + bits / 8);
  w.u32(0, 1).set(0x04, body.keyId).set(0x14, body.certifyingId).u32(0x24, body.keyUsage);
  w.u32(0x38, bits).u32(0x3c, bits);
  const exp = new Uint8Array(bits / 8);
  exp.set(reversed(body.key.pub.exponent));
  const mod = new Uint8Array(bits / 8);
  mod.set(reversed(body.key.pub.modulus));
  w.set(AMD_HEADER_SIZE, exp).set(AMD_HEADER_SIZE + bits / 8, mod);
  const sig = rsaPssSign(signer, amdCertHash(signer.bits), w.bytes, rng);
  return concat(w.bytes, reversed(sig));
}
