/**
 * Human descriptions of SEV and AMD certificates for CLI output (`owner verify-chain --verbose`, `--json`):
 * usage, algorithm, API version, key id, key fingerprint and signature slots (docs/sev-interface.md §11.1, §11.2).
 * Certificates hold only public material; nothing here could print a secret.
 *
 * @example
 * ```ts
 * console.log(formatCertDescription(describeSevCert(parseSevCert(bytes, "pek.cert"))));
 * // PEK  ECDSA P-384 (ECDSA_SHA256)  API 0.22  key sha256:fd5e…  signed by OCA (ECDSA_SHA256), CEK (ECDSA_SHA256)
 * ```
 */
import { sha256 } from "../crypto/hash.ts";
import { concat, toHex } from "../lib/bytes.ts";
import type { AmdCert } from "./amd-cert.ts";
import { Algo, type SevCert, Usage, usageName } from "./sev-cert.ts";

export interface CertDescription {
  /** ARK, ASK, CEK, OCA, PEK, PDH … */
  role: string;
  usage: number;
  /** e.g. "ECDSA P-384", "RSA-4096". */
  key: string;
  /** The certificate's own key algorithm (SEV certificates), e.g. "ECDH_SHA256". */
  algo?: string;
  /** "major.minor" of the firmware that made a SEV certificate. */
  apiVersion?: string;
  keyId?: string;
  certifyingId?: string;
  /**
   * `sha256:` of the public key: the uncompressed SEC1 point 04 ‖ x ‖ y (big-endian) for ECC keys, the big-endian
   * modulus for RSA keys. Stable across the SEV and X.509 encodings of one key.
   */
  fingerprint: string;
  /** Who signed it, per non-empty slot: "OCA (ECDSA_SHA256)"; "self" for a self-issued AMD certificate. */
  signatures: string[];
}

/** The name of an algorithm id, e.g. "RSA_SHA384", or its hex value when unknown. */
export function algoName(algo: number): string {
  for (const [k, v] of Object.entries(Algo)) if (v === algo) return k;
  return `0x${algo.toString(16)}`;
}

function rsaBits(modulus: Uint8Array): number {
  let i = 0;
  while (i < modulus.length && modulus[i] === 0) i++;
  const top = modulus[i] ?? 0;
  return (modulus.length - i) * 8 - (top === 0 ? 8 : Math.clz32(top) - 24);
}

export function describeSevCert(cert: SevCert): CertDescription {
  const key =
    cert.key.kind === "ecc"
      ? `${(cert.algo & 0xff) === 0x03 ? "ECDH" : "ECDSA"} P-384`
      : `RSA-${cert.key.modulusBits}`;
  const fp =
    cert.key.kind === "ecc"
      ? sha256(concat(new Uint8Array([4]), cert.key.pub.x, cert.key.pub.y))
      : sha256(cert.key.pub.modulus);
  return {
    role: usageName(cert.usage),
    usage: cert.usage,
    key,
    algo: algoName(cert.algo),
    apiVersion: `${cert.apiMajor}.${cert.apiMinor}`,
    fingerprint: `sha256:${toHex(fp)}`,
    signatures: cert.sigs
      .filter((s) => !(s.usage === Usage.INVALID && s.algo === Algo.NONE))
      .map((s) => `${usageName(s.usage)} (${algoName(s.algo)})`),
  };
}

export function describeAmdCert(cert: AmdCert): CertDescription {
  const self = toHex(cert.keyId) === toHex(cert.certifyingId);
  const role =
    cert.keyUsage === Usage.ARK ? "ARK" : cert.keyUsage === Usage.ASK ? "ASK" : usageName(cert.keyUsage);
  return {
    role,
    usage: cert.keyUsage,
    key: `RSA-${rsaBits(cert.pub.modulus)}`,
    keyId: toHex(cert.keyId),
    certifyingId: toHex(cert.certifyingId),
    fingerprint: `sha256:${toHex(sha256(cert.pub.modulus))}`,
    signatures: cert.signature
      ? [self ? "self" : `key ${toHex(cert.certifyingId)}`]
      : ["none (unsigned: the Naples ARK as first published)"],
  };
}

/** One line: role, key, algorithm, API version, ids, fingerprint (shortened) and signers. */
export function formatCertDescription(d: CertDescription): string {
  const parts = [d.role.padEnd(4), d.key + (d.algo ? ` (${d.algo})` : "")];
  if (d.apiVersion) parts.push(`API ${d.apiVersion}`);
  if (d.keyId) parts.push(`key id ${d.keyId}`);
  if (d.certifyingId && d.certifyingId !== d.keyId) parts.push(`certified by ${d.certifyingId}`);
  parts.push(`key ${d.fingerprint.slice(0, 7 + 16)}…`);
  parts.push(`signed by ${d.signatures.join(", ") || "nobody"}`);
  return parts.join("  ");
}
