/**
 * The few X.509 facts the SEV-SNP chain needs (docs/sev-interface.md §14): the signed TBS bytes, an RSA-PSS signature
 * algorithm with its parameters, RSA and P-384 public keys, names, validity and extensions. Parsed here rather than
 * with node's `X509Certificate` because we need the raw extensions (hwID, TCB SPLs) and full control of the PSS
 * parameters. Per docs/sev-interface.md §15 pitfall 22 the serial number is read but never judged: AMD's Milan VCEK has serial 0.
 *
 * @example
 * ```ts
 * const [askDer, arkDer] = parsePemCertificates(pemText, "cert_chain");
 * const ark = parseX509(arkDer!, "ARK");
 * verifyX509Signature(ark, ark.publicKey); // self-signed
 * ```
 */
import type { EcPublicKey } from "../crypto/ec.ts";
import type { HashName } from "../crypto/hash.ts";
import { type RsaPublicKey, rsaPssVerify } from "../crypto/rsa.ts";
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import {
  type DerElement,
  derBitString,
  derChildren,
  derOid,
  derSmallInt,
  derText,
  derTime,
  derUnsigned,
  expectTag,
  parseDer,
  Tag,
} from "./der.ts";

export const OID = {
  rsaEncryption: "1.2.840.113549.1.1.1",
  rsassaPss: "1.2.840.113549.1.1.10",
  mgf1: "1.2.840.113549.1.1.8",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  ecPublicKey: "1.2.840.10045.2.1",
  secp384r1: "1.3.132.0.34",
  commonName: "2.5.4.3",
} as const;

export type X509SignatureAlgorithm =
  | { kind: "rsa-pss"; hash: HashName; mgf1Hash: HashName; saltLength: number; trailerField: number }
  | { kind: "other"; oid: string };

export type X509PublicKey =
  | { kind: "rsa"; pub: RsaPublicKey }
  | { kind: "ec-p384"; pub: EcPublicKey }
  | { kind: "other"; oid: string };

export interface X509Extension {
  critical: boolean;
  /** The extnValue OCTET STRING's content. */
  value: Uint8Array;
}

export interface X509Cert {
  der: Uint8Array;
  /** The signed bytes: the whole TBSCertificate element. */
  tbs: Uint8Array;
  version: number;
  /** Big-endian, as encoded (may be 0 — docs/sev-interface.md §15 pitfall 22). */
  serial: Uint8Array;
  signatureAlgorithm: X509SignatureAlgorithm;
  /** The DER of the issuer and subject Names, for exact issuer ↔ subject matching. */
  issuer: Uint8Array;
  subject: Uint8Array;
  issuerCn: string | undefined;
  subjectCn: string | undefined;
  notBefore: string;
  notAfter: string;
  publicKey: X509PublicKey;
  extensions: Map<string, X509Extension>;
  signature: Uint8Array;
}

const HASH_OF_OID: Record<string, HashName> = { [OID.sha256]: "sha256", [OID.sha384]: "sha384" };

function hashAlgo(el: DerElement | undefined, what: string, field: string): HashName {
  const seq = derChildren(expectTag(el, Tag.SEQUENCE, what, field), what);
  const oid = derOid(expectTag(seq[0], Tag.OID, what, field), what);
  const h = HASH_OF_OID[oid];
  if (!h) throw new CiphervisorError("CERT_INVALID", `${what}: ${field} ${oid} is not SHA-256 or SHA-384`);
  return h;
}

/** RSASSA-PSS-params (RFC 4055); the RFC's SHA-1 defaults are refused rather than assumed. */
export function parseSignatureAlgorithm(el: DerElement, what: string): X509SignatureAlgorithm {
  const [oidEl, params] = derChildren(expectTag(el, Tag.SEQUENCE, what, "signatureAlgorithm"), what);
  const oid = derOid(expectTag(oidEl, Tag.OID, what, "signatureAlgorithm"), what);
  if (oid !== OID.rsassaPss) return { kind: "other", oid };
  let hash: HashName | undefined;
  let mgf1Hash: HashName | undefined;
  let saltLength: number | undefined;
  let trailerField = 1;
  for (const p of derChildren(expectTag(params, Tag.SEQUENCE, what, "RSASSA-PSS-params"), what)) {
    const inner = derChildren(p, what)[0];
    if (p.tag === Tag.CTX0) hash = hashAlgo(inner, what, "PSS hashAlgorithm");
    else if (p.tag === Tag.CTX1) {
      const mgf = derChildren(expectTag(inner, Tag.SEQUENCE, what, "PSS maskGenAlgorithm"), what);
      if (derOid(expectTag(mgf[0], Tag.OID, what, "PSS maskGenAlgorithm"), what) !== OID.mgf1) {
        throw new CiphervisorError("CERT_INVALID", `${what}: PSS mask generation is not MGF1`);
      }
      mgf1Hash = hashAlgo(mgf[1], what, "MGF1 hash");
    } else if (p.tag === Tag.CTX2)
      saltLength = derSmallInt(expectTag(inner, Tag.INTEGER, what, "PSS salt"), what);
    else if (p.tag === Tag.CTX3)
      trailerField = derSmallInt(expectTag(inner, Tag.INTEGER, what, "PSS trailer"), what);
  }
  if (!hash || !mgf1Hash || saltLength === undefined) {
    throw new CiphervisorError("CERT_INVALID", `${what}: RSA-PSS parameters rely on the SHA-1 defaults`);
  }
  return { kind: "rsa-pss", hash, mgf1Hash, saltLength, trailerField };
}

function parsePublicKey(el: DerElement, what: string): X509PublicKey {
  const [alg, bits] = derChildren(expectTag(el, Tag.SEQUENCE, what, "subjectPublicKeyInfo"), what);
  const algParts = derChildren(expectTag(alg, Tag.SEQUENCE, what, "SPKI algorithm"), what);
  const oid = derOid(expectTag(algParts[0], Tag.OID, what, "SPKI algorithm"), what);
  const key = derBitString(expectTag(bits, Tag.BIT_STRING, what, "subjectPublicKey"), what);
  if (oid === OID.rsaEncryption || oid === OID.rsassaPss) {
    const [n, e] = derChildren(parseDer(key, `${what} RSA key`), what);
    return {
      kind: "rsa",
      pub: {
        modulus: derUnsigned(expectTag(n, Tag.INTEGER, what, "modulus"), what).slice(),
        exponent: derUnsigned(expectTag(e, Tag.INTEGER, what, "exponent"), what).slice(),
      },
    };
  }
  if (oid === OID.ecPublicKey) {
    const curve = algParts[1] ? derOid(algParts[1], what) : "";
    if (curve !== OID.secp384r1) return { kind: "other", oid: `${oid} (${curve})` };
    if (key.length !== 97 || key[0] !== 4) {
      throw new CiphervisorError("CERT_INVALID", `${what}: P-384 key is not an uncompressed point`);
    }
    return { kind: "ec-p384", pub: { x: key.slice(1, 49), y: key.slice(49, 97) } };
  }
  return { kind: "other", oid };
}

function present(el: DerElement | undefined, what: string, field: string): DerElement {
  if (!el) throw new CiphervisorError("CERT_INVALID", `${what}: ${field} is missing`);
  return el;
}

function commonName(name: DerElement, what: string): string | undefined {
  for (const rdn of derChildren(name, what)) {
    for (const atv of derChildren(rdn, what)) {
      const [t, v] = derChildren(atv, what);
      if (t && v && derOid(t, what) === OID.commonName) return derText(v, what);
    }
  }
  return undefined;
}

/**
 * Parses a DER certificate.
 * @throws CiphervisorError CERT_INVALID naming `what` for anything malformed.
 */
export function parseX509(der: Uint8Array, what = "X.509 certificate"): X509Cert {
  try {
    const [tbsEl, sigAlgEl, sigEl] = derChildren(
      expectTag(parseDer(der, what), Tag.SEQUENCE, what, "Certificate"),
      what,
    );
    const tbs = expectTag(tbsEl, Tag.SEQUENCE, what, "tbsCertificate");
    const f = derChildren(tbs, what);
    let i = 0;
    let version = 1;
    if (f[0]?.tag === Tag.CTX0) {
      version = derSmallInt(expectTag(derChildren(f[0], what)[0], Tag.INTEGER, what, "version"), what) + 1;
      i++;
    }
    const serialEl = expectTag(f[i++], Tag.INTEGER, what, "serialNumber");
    const innerSigAlg = expectTag(f[i++], Tag.SEQUENCE, what, "signature");
    const issuer = expectTag(f[i++], Tag.SEQUENCE, what, "issuer");
    const validity = derChildren(expectTag(f[i++], Tag.SEQUENCE, what, "validity"), what);
    const subject = expectTag(f[i++], Tag.SEQUENCE, what, "subject");
    const spki = expectTag(f[i++], Tag.SEQUENCE, what, "subjectPublicKeyInfo");
    const extensions = new Map<string, X509Extension>();
    for (; i < f.length; i++) {
      if (f[i]!.tag !== Tag.CTX3) continue;
      for (const ext of derChildren(
        expectTag(derChildren(f[i]!, what)[0], Tag.SEQUENCE, what, "extensions"),
        what,
      )) {
        const parts = derChildren(ext, what);
        const extOid = derOid(expectTag(parts[0], Tag.OID, what, "extnID"), what);
        const critical = parts.length === 3 && parts[1]!.content[0] !== 0;
        const value = expectTag(parts[parts.length - 1], Tag.OCTET_STRING, what, "extnValue").content;
        if (extensions.has(extOid)) {
          throw new CiphervisorError("CERT_INVALID", `${what}: extension ${extOid} appears twice`);
        }
        extensions.set(extOid, { critical, value: value.slice() });
      }
    }
    const sigAlg = expectTag(sigAlgEl, Tag.SEQUENCE, what, "signatureAlgorithm");
    // RFC 5280 §4.1.1.2: the outer algorithm must equal the one inside the signed TBS, or an attacker could
    // change the outer one unnoticed.
    if (Buffer.compare(sigAlg.bytes, innerSigAlg.bytes) !== 0) {
      throw new CiphervisorError(
        "CERT_INVALID",
        `${what}: signature algorithm differs inside and outside the TBS`,
      );
    }
    return {
      der: der.slice(),
      tbs: tbs.bytes.slice(),
      version,
      serial: serialEl.content.slice(),
      signatureAlgorithm: parseSignatureAlgorithm(sigAlg, what),
      issuer: issuer.bytes.slice(),
      subject: subject.bytes.slice(),
      issuerCn: commonName(issuer, what),
      subjectCn: commonName(subject, what),
      notBefore: derTime(present(validity[0], what, "notBefore"), what),
      notAfter: derTime(present(validity[1], what, "notAfter"), what),
      publicKey: parsePublicKey(spki, what),
      extensions,
      signature: derBitString(expectTag(sigEl, Tag.BIT_STRING, what, "signatureValue"), what).slice(),
    };
  } catch (e) {
    if (isCiphervisorError(e, "CERT_INVALID")) throw e;
    if (isCiphervisorError(e))
      throw new CiphervisorError("CERT_INVALID", `${what}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The DER bodies of every `CERTIFICATE` block in a PEM text, in order. */
export function parsePemCertificates(text: string, what = "PEM file"): Uint8Array[] {
  const out: Uint8Array[] = [];
  const re = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const b64 = m[1]!.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw new CiphervisorError(
        "CERT_INVALID",
        `${what}: certificate ${out.length + 1} is not valid base64`,
      );
    }
    out.push(new Uint8Array(Buffer.from(b64, "base64")));
  }
  if (out.length === 0) throw new CiphervisorError("CERT_INVALID", `${what}: no PEM CERTIFICATE block found`);
  return out;
}

/** Reads a certificate that may be DER or PEM (one certificate). */
export function parseX509Any(bytes: Uint8Array, what = "X.509 certificate"): X509Cert {
  if (bytes[0] === 0x30) return parseX509(bytes, what);
  const text = new TextDecoder().decode(bytes);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CiphervisorError("CERT_INVALID", `${what}: neither a DER nor a PEM certificate`);
  }
  const ders = parsePemCertificates(text, what);
  if (ders.length !== 1) {
    throw new CiphervisorError("CERT_INVALID", `${what}: expected one certificate, found ${ders.length}`);
  }
  return parseX509(ders[0]!, what);
}

/**
 * Verifies `cert`'s signature with an RSA key, for the RSA-PSS algorithm AMD uses: the hash and MGF1 hash equal,
 * salt = digest length, trailer 1. Other algorithms are refused (false), never tried.
 */
export function verifyX509Signature(cert: X509Cert, signer: RsaPublicKey): boolean {
  const a = cert.signatureAlgorithm;
  if (a.kind !== "rsa-pss" || a.mgf1Hash !== a.hash || a.trailerField !== 1) return false;
  if (a.saltLength !== (a.hash === "sha256" ? 32 : 48)) return false;
  return rsaPssVerify(signer, a.hash, cert.tbs, cert.signature);
}
