/**
 * The writing half of `der.ts` and `x509.ts`: just enough DER to issue the emulated SEV-SNP certificates (ARK, ASK,
 * VCEK) and CRLs in exactly the shape of AMD's (docs/sev-interface.md §14; AMD's VCEK certificate and KDS interface
 * specification 57230, its VCEK certificate and KDS sections; RFC 5280 sections 4.1 and 5.1). Definite lengths, minimal encodings, and the
 * RSASSA-PSS algorithm identifier with explicit SHA-384 / MGF1-SHA-384 / salt 48 / trailer 1 parameters, byte for
 * byte as in AMD's Milan certificates.
 *
 * Signing is a callback, so the private keys stay with whoever issues (the emulated manufacturer).
 *
 * @example
 * ```ts
 * const der = encodeX509({ serial: 0n, issuer, subject, ...validity, spki: ecP384Spki(pub), extensions }, (tbs) =>
 *   rsaPssSign(ask, "sha384", tbs, rng),
 * );
 * ```
 */

import type { RsaPublicKey } from "../crypto/rsa.ts";
import { concat } from "../lib/bytes.ts";
import { Tag } from "./der.ts";
import { OID } from "./x509.ts";

/** One element: tag, minimal definite length, content. */
export function derEncode(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(...content);
  const n = body.length;
  let len: number[];
  if (n < 0x80) len = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = [0x80 | bytes.length, ...bytes];
  }
  return concat(new Uint8Array([tag, ...len]), body);
}

export const derSeq = (...c: Uint8Array[]) => derEncode(Tag.SEQUENCE, ...c);
export const derSet = (...c: Uint8Array[]) => derEncode(Tag.SET, ...c);
export const derNull = () => derEncode(Tag.NULL);
export const derOctets = (b: Uint8Array) => derEncode(Tag.OCTET_STRING, b);
export const derUtf8 = (s: string) => derEncode(Tag.UTF8_STRING, new TextEncoder().encode(s));
export const derPrintable = (s: string) => derEncode(Tag.PRINTABLE_STRING, new TextEncoder().encode(s));
export const derIa5 = (s: string) => derEncode(Tag.IA5_STRING, new TextEncoder().encode(s));
export const derBool = (v: boolean) => derEncode(0x01, new Uint8Array([v ? 0xff : 0]));
/** A BIT STRING with no unused bits. */
export const derBits = (b: Uint8Array) => derEncode(Tag.BIT_STRING, new Uint8Array([0]), b);
/** An explicit context tag [n], constructed. */
export const derCtx = (n: number, ...c: Uint8Array[]) => derEncode(0xa0 | n, ...c);

/** A non-negative INTEGER, from a bigint or big-endian magnitude bytes. */
export function derInt(v: bigint | number | Uint8Array): Uint8Array {
  let b: Uint8Array;
  if (v instanceof Uint8Array) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    b = v.subarray(i);
    if (b.length === 0) b = new Uint8Array([0]);
  } else {
    let x = BigInt(v);
    if (x < 0n) throw new RangeError("derInt: negative");
    const out: number[] = [];
    do {
      out.unshift(Number(x & 0xffn));
      x >>= 8n;
    } while (x > 0n);
    b = new Uint8Array(out);
  }
  return derEncode(Tag.INTEGER, (b[0]! & 0x80) !== 0 ? concat(new Uint8Array([0]), b) : b);
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function derOidOf(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const out: number[] = [];
  const push = (v: number) => {
    const groups: number[] = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) groups.unshift(0x80 | (v & 0x7f));
    out.push(...groups);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return derEncode(Tag.OID, new Uint8Array(out));
}

/** UTCTime for years 1950–2049 (RFC 5280 §4.1.2.5), GeneralizedTime after; `iso` is e.g. "2020-10-22T17:23:05Z". */
export function derTimeOf(iso: string): Uint8Array {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/.exec(iso);
  if (!m) throw new RangeError(`derTimeOf: not a UTC ISO time: ${iso}`);
  const [, y, mo, d, h, mi, s] = m;
  const year = Number(y);
  const rest = `${mo}${d}${h}${mi}${s}Z`;
  return year < 2050
    ? derEncode(Tag.UTC_TIME, new TextEncoder().encode(`${y!.slice(2)}${rest}`))
    : derEncode(Tag.GENERALIZED_TIME, new TextEncoder().encode(`${y}${rest}`));
}

const OID_NAME = {
  organizationalUnit: "2.5.4.11",
  country: "2.5.4.6",
  locality: "2.5.4.7",
  state: "2.5.4.8",
  organization: "2.5.4.10",
} as const;

/**
 * An X.509 Name in AMD's order and string types: OU=Engineering, C=US (PrintableString), L=Santa Clara, ST=CA,
 * O=Advanced Micro Devices, CN=`cn` (UTF8String), as in the Milan ARK, ASK and VCEK.
 */
export function amdName(cn: string, o = "Advanced Micro Devices"): Uint8Array {
  const atv = (oid: string, v: Uint8Array) => derSet(derSeq(derOidOf(oid), v));
  return derSeq(
    atv(OID_NAME.organizationalUnit, derUtf8("Engineering")),
    atv(OID_NAME.country, derPrintable("US")),
    atv(OID_NAME.locality, derUtf8("Santa Clara")),
    atv(OID_NAME.state, derUtf8("CA")),
    atv(OID_NAME.organization, derUtf8(o)),
    atv(OID.commonName, derUtf8(cn)),
  );
}

/** RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48, trailer 1 (RFC 4055), as AMD's certificates spell it. */
export function rsaPssSha384AlgorithmId(): Uint8Array {
  const sha384 = derSeq(derOidOf(OID.sha384), derNull());
  return derSeq(
    derOidOf(OID.rsassaPss),
    derSeq(
      derCtx(0, sha384),
      derCtx(1, derSeq(derOidOf(OID.mgf1), sha384)),
      derCtx(2, derInt(48)),
      derCtx(3, derInt(1)),
    ),
  );
}

/** SubjectPublicKeyInfo of an RSA key (rsaEncryption, NULL parameters). */
export function rsaSpki(pub: RsaPublicKey): Uint8Array {
  return derSeq(
    derSeq(derOidOf(OID.rsaEncryption), derNull()),
    derBits(derSeq(derInt(pub.modulus), derInt(pub.exponent))),
  );
}

export interface X509ExtensionInput {
  oid: string;
  critical?: boolean;
  /** The extnValue's content (the DER that the OCTET STRING wraps). */
  value: Uint8Array;
}

export interface X509Input {
  serial: bigint;
  /** DER Names (see `amdName`). */
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: string;
  notAfter: string;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  extensions: readonly X509ExtensionInput[];
}

function extensionsDer(exts: readonly X509ExtensionInput[]): Uint8Array {
  return derSeq(
    ...exts.map((e) => derSeq(derOidOf(e.oid), ...(e.critical ? [derBool(true)] : []), derOctets(e.value))),
  );
}

/** An X.509 v3 certificate signed RSA-PSS SHA-384: `sign` gets the TBS bytes and returns the big-endian signature. */
export function encodeX509(input: X509Input, sign: (tbs: Uint8Array) => Uint8Array): Uint8Array {
  const alg = rsaPssSha384AlgorithmId();
  const tbs = derSeq(
    derCtx(0, derInt(2)),
    derInt(input.serial),
    alg,
    input.issuer,
    derSeq(derTimeOf(input.notBefore), derTimeOf(input.notAfter)),
    input.subject,
    input.spki,
    ...(input.extensions.length ? [derCtx(3, extensionsDer(input.extensions))] : []),
  );
  return derSeq(tbs, alg, derBits(sign(tbs)));
}

export interface CrlInput {
  issuer: Uint8Array;
  thisUpdate: string;
  nextUpdate: string;
  /** Serial numbers of the revoked certificates, with their revocation times. */
  revoked: readonly { serial: bigint; date: string }[];
  /** crlNumber (RFC 5280 §5.2.3). */
  number: bigint;
}

/**
 * An X.509 v2 CRL (RFC 5280 §5.1) signed RSA-PSS SHA-384: what AMD's KDS serves at `/vcek/v1/{product}/crl`, signed
 * by the product's ARK, listing revoked ASKs (VCEK specification 57230, the KDS's CRL request).
 */
export function encodeCrl(input: CrlInput, sign: (tbs: Uint8Array) => Uint8Array): Uint8Array {
  const alg = rsaPssSha384AlgorithmId();
  const tbs = derSeq(
    derInt(1),
    alg,
    input.issuer,
    derTimeOf(input.thisUpdate),
    derTimeOf(input.nextUpdate),
    ...(input.revoked.length
      ? [derSeq(...input.revoked.map((r) => derSeq(derInt(r.serial), derTimeOf(r.date))))]
      : []),
    derCtx(0, derSeq(derSeq(derOidOf("2.5.29.20"), derOctets(derInt(input.number))))),
  );
  return derSeq(tbs, alg, derBits(sign(tbs)));
}

/** PEM text of DER certificates, in order. */
export function pemCertificates(...ders: Uint8Array[]): string {
  return ders
    .map((d) => {
      const b64 = Buffer.from(d).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
      return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
    })
    .join("");
}
