/**
 * AMD's certificate revocation list for a SEV-SNP product: the DER X.509 v2 CRL the KDS serves at
 * `/vcek/v1/{product}/crl` (VCEK certificate and KDS interface specification 57230, the CRL request), issued and
 * signed by the product's ARK with RSA-PSS SHA-384, listing the serial numbers of revoked ASKs
 * (docs/sev-interface.md §14). Parsed with the strict reader of `der.ts`; RFC 5280 §5.1.
 *
 * @example
 * ```ts
 * const crl = parseCrl(der);
 * verifyCrlSignature(crl, arkKey) && crlRevokes(crl, ask.serial);
 * ```
 */
import { type RsaPublicKey, rsaPssVerify } from "../crypto/rsa.ts";
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import {
  type DerElement,
  derBitString,
  derChildren,
  derTime,
  derUnsigned,
  expectTag,
  parseDer,
  Tag,
} from "./der.ts";
import { parseSignatureAlgorithm, type X509SignatureAlgorithm } from "./x509.ts";

export interface Crl {
  der: Uint8Array;
  tbs: Uint8Array;
  signatureAlgorithm: X509SignatureAlgorithm;
  /** The DER of the issuer Name, for exact matching against the ARK's subject. */
  issuer: Uint8Array;
  thisUpdate: string;
  nextUpdate: string | undefined;
  /** Big-endian serial numbers without sign padding, as `X509Cert.serial` after `derUnsigned`. */
  revokedSerials: Uint8Array[];
  signature: Uint8Array;
}

function isTime(el: DerElement | undefined): boolean {
  return el?.tag === Tag.UTC_TIME || el?.tag === Tag.GENERALIZED_TIME;
}

/**
 * Parses a DER CRL.
 * @throws CiphervisorError CERT_INVALID naming `what` for anything malformed.
 */
export function parseCrl(der: Uint8Array, what = "CRL"): Crl {
  try {
    const [tbsEl, sigAlgEl, sigEl] = derChildren(
      expectTag(parseDer(der, what), Tag.SEQUENCE, what, "CertificateList"),
      what,
    );
    const tbs = expectTag(tbsEl, Tag.SEQUENCE, what, "tbsCertList");
    const f = derChildren(tbs, what);
    let i = 0;
    if (f[0]?.tag === Tag.INTEGER) i++; // version v2
    const innerAlg = expectTag(f[i++], Tag.SEQUENCE, what, "signature");
    const issuer = expectTag(f[i++], Tag.SEQUENCE, what, "issuer");
    const thisUpdateEl = f[i++];
    if (!isTime(thisUpdateEl)) throw new CiphervisorError("CERT_INVALID", `${what}: thisUpdate is missing`);
    const thisUpdate = derTime(thisUpdateEl!, what);
    let nextUpdate: string | undefined;
    if (isTime(f[i])) nextUpdate = derTime(f[i++]!, what);
    const revokedSerials: Uint8Array[] = [];
    if (f[i]?.tag === Tag.SEQUENCE) {
      for (const entry of derChildren(f[i++]!, what)) {
        const [serial] = derChildren(expectTag(entry, Tag.SEQUENCE, what, "revokedCertificate"), what);
        revokedSerials.push(
          derUnsigned(expectTag(serial, Tag.INTEGER, what, "userCertificate"), what).slice(),
        );
      }
    }
    const sigAlg = expectTag(sigAlgEl, Tag.SEQUENCE, what, "signatureAlgorithm");
    if (Buffer.compare(sigAlg.bytes, innerAlg.bytes) !== 0) {
      throw new CiphervisorError(
        "CERT_INVALID",
        `${what}: signature algorithm differs inside and outside the TBS`,
      );
    }
    return {
      der: der.slice(),
      tbs: tbs.bytes.slice(),
      signatureAlgorithm: parseSignatureAlgorithm(sigAlg, what),
      issuer: issuer.bytes.slice(),
      thisUpdate,
      nextUpdate,
      revokedSerials,
      signature: derBitString(expectTag(sigEl, Tag.BIT_STRING, what, "signatureValue"), what).slice(),
    };
  } catch (e) {
    if (isCiphervisorError(e, "CERT_INVALID")) throw e;
    if (isCiphervisorError(e))
      throw new CiphervisorError("CERT_INVALID", `${what}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Verifies the CRL's RSA-PSS signature (hash = MGF1 hash, salt = digest length, trailer 1); other algorithms: false. */
export function verifyCrlSignature(crl: Crl, signer: RsaPublicKey): boolean {
  const a = crl.signatureAlgorithm;
  if (a.kind !== "rsa-pss" || a.mgf1Hash !== a.hash || a.trailerField !== 1) return false;
  if (a.saltLength !== (a.hash === "sha256" ? 32 : 48)) return false;
  return rsaPssVerify(signer, a.hash, crl.tbs, crl.signature);
}

/** True when the CRL lists `serial` (big-endian, as `X509Cert.serial`; leading zero bytes ignored). */
export function crlRevokes(crl: Crl, serial: Uint8Array): boolean {
  const strip = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return Buffer.from(b.subarray(i)).toString("hex");
  };
  const want = strip(serial);
  return crl.revokedSerials.some((s) => strip(s) === want);
}
