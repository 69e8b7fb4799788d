/**
 * The ID block and its authentication structure, which SNP_LAUNCH_FINISH checks (SNP ABI 56860, section 8.18
 * SNP_LAUNCH_FINISH and its ID block and ID authentication information tables; the signature and public-key formats
 * of its chapter on cryptographic structures). Every number is little-endian (docs/sev-interface.md §15 pitfall 1).
 *
 * ID block (0x60 bytes):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0x00 | 48 | LD: the launch digest the guest owner expects |
 * | 0x30 | 16 | FAMILY_ID |
 * | 0x40 | 16 | IMAGE_ID |
 * | 0x50 | 4 | VERSION = 1 |
 * | 0x54 | 4 | GUEST_SVN |
 * | 0x58 | 8 | POLICY: must equal the guest's |
 *
 * ID authentication information (0x1000 bytes):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0x000 | 4 | ID_KEY_ALGO = 1 (ECDSA P-384 with SHA-384) |
 * | 0x004 | 4 | AUTH_KEY_ALGO = 1 |
 * | 0x040 | 0x200 | ID_BLOCK_SIG: the ID key's signature of the 0x60-byte ID block |
 * | 0x240 | 0x404 | ID_KEY: the public key |
 * | 0x680 | 0x200 | ID_KEY_SIG: the author key's signature of the 0x404-byte ID_KEY |
 * | 0x880 | 0x404 | AUTHOR_KEY |
 *
 * A signature is R[72] @0 ‖ S[72] @0x48, zeros to 0x200; a public key is CURVE u32 @0 (2 = P-384) ‖ QX[72] @4 ‖
 * QY[72] @0x4C, zeros to 0x404. The report's ID_KEY_DIGEST and AUTHOR_KEY_DIGEST are the SHA-384 of the 0x404-byte
 * key structures.
 *
 * The signing half (`encodeIdBlock`, `signIdAuth`) is the guest owner's side, for tools and tests; the firmware only
 * parses and verifies.
 */
import {
  type EcdsaSignature,
  type EcKeyPair,
  type EcPublicKey,
  ecdsaSign,
  ecdsaVerify,
} from "../../crypto/ec.ts";
import { sha384 } from "../../crypto/hash.ts";
import { ByteReader, ByteWriter, bigFromBE, bigFromLE, bigToBE, bigToLE } from "../../lib/bytes.ts";

export const ID_BLOCK_SIZE = 0x60;
export const ID_AUTH_SIZE = 0x1000;
export const SNP_PUBKEY_SIZE = 0x404;
export const SNP_SIGNATURE_SIZE = 0x200;
export const ID_BLOCK_VERSION = 1;
/** ID_KEY_ALGO / AUTH_KEY_ALGO: ECDSA P-384 with SHA-384. */
export const SNP_ALGO_ECDSA_P384_SHA384 = 1;
/** CURVE of the public-key structure: P-384. */
export const SNP_CURVE_P384 = 2;

export const ID_AUTH_LAYOUT = {
  idKeyAlgo: 0x000,
  authKeyAlgo: 0x004,
  idBlockSig: 0x040,
  idKey: 0x240,
  idKeySig: 0x680,
  authorKey: 0x880,
} as const;

export interface IdBlock {
  ld: Uint8Array;
  familyId: Uint8Array;
  imageId: Uint8Array;
  version: number;
  guestSvn: number;
  policy: bigint;
}

export function encodeIdBlock(b: IdBlock): Uint8Array {
  return new ByteWriter(ID_BLOCK_SIZE)
    .set(0x00, b.ld)
    .set(0x30, b.familyId)
    .set(0x40, b.imageId)
    .u32(0x50, b.version)
    .u32(0x54, b.guestSvn)
    .u64(0x58, b.policy).bytes;
}

export function decodeIdBlock(bytes: Uint8Array): IdBlock {
  const r = new ByteReader(bytes, "ID block");
  return {
    ld: r.slice(0x00, 48),
    familyId: r.slice(0x30, 16),
    imageId: r.slice(0x40, 16),
    version: r.u32(0x50),
    guestSvn: r.u32(0x54),
    policy: r.u64(0x58),
  };
}

export function encodeSnpPublicKey(pub: EcPublicKey): Uint8Array {
  return new ByteWriter(SNP_PUBKEY_SIZE)
    .u32(0, SNP_CURVE_P384)
    .set(0x04, bigToLE(bigFromBE(pub.x), 72))
    .set(0x4c, bigToLE(bigFromBE(pub.y), 72)).bytes;
}

/** The P-384 key of a public-key structure, or undefined when its curve is not P-384 or a coordinate is too big. */
export function decodeSnpPublicKey(bytes: Uint8Array): EcPublicKey | undefined {
  const r = new ByteReader(bytes, "SNP public key");
  if (r.u32(0) !== SNP_CURVE_P384) return undefined;
  const x = bigFromLE(r.slice(0x04, 72));
  const y = bigFromLE(r.slice(0x4c, 72));
  if (x >= 1n << 384n || y >= 1n << 384n) return undefined;
  return { x: bigToBE(x, 48), y: bigToBE(y, 48) };
}

export function encodeSnpSignature(sig: EcdsaSignature): Uint8Array {
  return new ByteWriter(SNP_SIGNATURE_SIZE)
    .set(0, bigToLE(bigFromBE(sig.r), 72))
    .set(0x48, bigToLE(bigFromBE(sig.s), 72)).bytes;
}

export function decodeSnpSignature(bytes: Uint8Array): EcdsaSignature | undefined {
  const r = new ByteReader(bytes, "SNP signature");
  const rv = bigFromLE(r.slice(0, 72));
  const sv = bigFromLE(r.slice(0x48, 72));
  if (rv >= 1n << 384n || sv >= 1n << 384n) return undefined;
  return { r: bigToBE(rv, 48), s: bigToBE(sv, 48) };
}

/**
 * The guest owner's ID authentication structure: the ID key signs the ID block; with an author key, the author key
 * signs the ID key.
 */
export function signIdAuth(idBlock: Uint8Array, idKey: EcKeyPair, authorKey?: EcKeyPair): Uint8Array {
  const idPub = encodeSnpPublicKey(idKey.pub);
  const w = new ByteWriter(ID_AUTH_SIZE)
    .u32(ID_AUTH_LAYOUT.idKeyAlgo, SNP_ALGO_ECDSA_P384_SHA384)
    .set(ID_AUTH_LAYOUT.idBlockSig, encodeSnpSignature(ecdsaSign(idKey.d, "sha384", idBlock)))
    .set(ID_AUTH_LAYOUT.idKey, idPub);
  if (authorKey) {
    w.u32(ID_AUTH_LAYOUT.authKeyAlgo, SNP_ALGO_ECDSA_P384_SHA384)
      .set(ID_AUTH_LAYOUT.idKeySig, encodeSnpSignature(ecdsaSign(authorKey.d, "sha384", idPub)))
      .set(ID_AUTH_LAYOUT.authorKey, encodeSnpPublicKey(authorKey.pub));
  }
  return w.bytes;
}

/** SHA-384 of a 0x404-byte public-key structure: the report's ID_KEY_DIGEST / AUTHOR_KEY_DIGEST. */
export function snpKeyDigest(pubKeyStruct: Uint8Array): Uint8Array {
  return sha384(pubKeyStruct);
}

export type IdAuthCheck =
  | { ok: true; idKeyDigest: Uint8Array; authorKeyDigest: Uint8Array | undefined }
  | { ok: false; failure: "ALGO" | "KEY" | "ID_BLOCK_SIG" | "ID_KEY_SIG" };

/**
 * The signature checks of SNP_LAUNCH_FINISH: algorithm and curve fields first (a malformed structure), then the ID
 * block's signature under the ID key, then (with `authorKeyEn`) the ID key's signature under the author key.
 */
export function checkIdAuth(idBlock: Uint8Array, idAuth: Uint8Array, authorKeyEn: boolean): IdAuthCheck {
  const r = new ByteReader(idAuth, "ID authentication information");
  if (r.u32(ID_AUTH_LAYOUT.idKeyAlgo) !== SNP_ALGO_ECDSA_P384_SHA384) return { ok: false, failure: "ALGO" };
  if (authorKeyEn && r.u32(ID_AUTH_LAYOUT.authKeyAlgo) !== SNP_ALGO_ECDSA_P384_SHA384) {
    return { ok: false, failure: "ALGO" };
  }
  const idKeyStruct = r.slice(ID_AUTH_LAYOUT.idKey, SNP_PUBKEY_SIZE);
  const idKey = decodeSnpPublicKey(idKeyStruct);
  const authorKeyStruct = r.slice(ID_AUTH_LAYOUT.authorKey, SNP_PUBKEY_SIZE);
  const authorKey = authorKeyEn ? decodeSnpPublicKey(authorKeyStruct) : undefined;
  if (!idKey || (authorKeyEn && !authorKey)) return { ok: false, failure: "KEY" };
  const idSig = decodeSnpSignature(r.slice(ID_AUTH_LAYOUT.idBlockSig, SNP_SIGNATURE_SIZE));
  if (!idSig || !ecdsaVerify(idKey, "sha384", idBlock, idSig)) return { ok: false, failure: "ID_BLOCK_SIG" };
  if (authorKey) {
    const keySig = decodeSnpSignature(r.slice(ID_AUTH_LAYOUT.idKeySig, SNP_SIGNATURE_SIZE));
    if (!keySig || !ecdsaVerify(authorKey, "sha384", idKeyStruct, keySig)) {
      return { ok: false, failure: "ID_KEY_SIG" };
    }
  }
  return {
    ok: true,
    idKeyDigest: snpKeyDigest(idKeyStruct),
    authorKeyDigest: authorKey ? snpKeyDigest(authorKeyStruct) : undefined,
  };
}
