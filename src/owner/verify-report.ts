/**
 * Verifies an SEV-SNP attestation report the way a guest owner must before trusting its measurement
 * (docs/sev-interface.md §14):
 *
 * 1. ARK — AMD's root for the VCEK's product, self-signed. From a PEM chain (`cert_chain` from KDS: ASK then ARK)
 *    its RSA modulus must equal the built-in legacy ARK's (docs/sev-interface.md §15 pitfall 23: same keys), so a chain the host sends is
 *    never trusted by itself; without a PEM chain the built-in legacy ARK/ASK are used directly.
 * 2. ARK → ASK — RSA-PSS SHA-384.
 * 3. ASK → VCEK — RSA-PSS SHA-384, salt 48, over the TBS bytes (the VCEK's serial is 0 — docs/sev-interface.md §15 pitfall 22 — and that
 *    is not judged).
 * 4. VCEK → report — ECDSA P-384 SHA-384 over [0, 0x2A0); r and s are 72-byte little-endian fields.
 * 5. chip_id — equals the VCEK's hwID extension, so the report comes from the chip the VCEK names.
 * 6. reported_tcb — equals the VCEK's TCB extensions (bl, tee, snp, ucode; fmc on Turin).
 *
 * Then the owner's policy (`SnpReportPolicy`), each check a link of its own, after the chain and signature:
 *
 * - ASK revocation — with a CRL (DER, as AMD's KDS serves at `/vcek/v1/{product}/crl`; VCEK certificate and KDS
 *   interface specification 57230, chapter 4): the CRL is signed by the trusted ARK and does not list the ASK's
 *   serial. Checked right after ARK → ASK. Needs the PEM chain (the X.509 ASK carries the serial).
 * - debug — guest policy bit 19 (DEBUG) is clear, unless the policy allows debug (SNP ABI 56860, the guest policy
 *   structure; docs/sev-interface.md §14).
 * - vmpl — the report was requested at VMPL 0 (SNP ABI 56860 §7.3, the VMPL field), or at the VMPL the policy names.
 * - minimum TCB — each security patch level of reported_tcb (bl, tee, snp, ucode; fmc on Turin) is at least the
 *   policy's minimum.
 * - measurement, host_data — equal the expected values.
 *
 * Without a policy object the defaults hold (debug refused, VMPL 0 required, the rest not requested). Link names
 * are stable: callers match on `details.link`.
 *
 * Which root: `trust: "amd"` (default) pins AMD's roots; `trust: "emulated"` pins the emulated fleet's
 * (`src/certs/builtin/emulated/`), whose X.509 ARK/ASK the emulated KDS serves with the same RSA keys. A report is
 * judged under exactly one of the two; neither accepts the other's chain.
 *
 * Chain failures (ASK revocation included) are CHAIN_INVALID, report and policy failures REPORT_INVALID, malformed
 * input CERT_INVALID or REPORT_INVALID; every message begins with the failing step.
 *
 * @example
 * ```ts
 * const result = verifySnpReport({ report, vcek: vcekDer, chain: pemBytes });
 * toHex(result.report.measurement);
 * ```
 */

import { verifyAmdCertSignature } from "../certs/amd-cert.ts";
import { crlRevokes, parseCrl, verifyCrlSignature } from "../certs/crl.ts";
import { describeRoot, loadBuiltinRoot, type TrustedRoot, type TrustSet } from "../certs/roots.ts";
import {
  decodeSnpTcb,
  parseSnpReport,
  SNP_REPORT_SIZE,
  type SnpReport,
  SnpSigningKey,
  type SnpTcb,
  snpReportSignature,
  snpReportSignedRegion,
} from "../certs/snp-report.ts";
import { parseVcek, type SnpGeneration, type Vcek, type VcekTcb } from "../certs/vcek.ts";
import { parsePemCertificates, parseX509, verifyX509Signature, type X509Cert } from "../certs/x509.ts";
import { ecdsaVerify } from "../crypto/ec.ts";
import type { RsaPublicKey } from "../crypto/rsa.ts";
import { CiphervisorError, type ErrorCode } from "../errors.ts";
import { isZero, toHex } from "../lib/bytes.ts";

export const SNP_REPORT_LINKS = [
  "ARK",
  "ARK → ASK",
  "ASK revocation",
  "ASK → VCEK",
  "VCEK → report",
  "chip_id",
  "reported_tcb",
  "debug",
  "vmpl",
  "minimum TCB",
  "measurement",
  "host_data",
] as const;
export type SnpReportLink = (typeof SNP_REPORT_LINKS)[number];

const CODE_OF_LINK: Record<SnpReportLink, ErrorCode> = {
  ARK: "CHAIN_INVALID",
  "ARK → ASK": "CHAIN_INVALID",
  "ASK revocation": "CHAIN_INVALID",
  "ASK → VCEK": "CHAIN_INVALID",
  "VCEK → report": "REPORT_INVALID",
  chip_id: "REPORT_INVALID",
  reported_tcb: "REPORT_INVALID",
  debug: "REPORT_INVALID",
  vmpl: "REPORT_INVALID",
  "minimum TCB": "REPORT_INVALID",
  measurement: "REPORT_INVALID",
  host_data: "REPORT_INVALID",
};

/** Guest policy bit 19: DEBUG (SNP ABI 56860, the guest policy structure). */
export const SNP_POLICY_DEBUG = 1n << 19n;

/** Minimum security patch levels, per TCB component; absent components are not judged. */
export interface SnpMinimumTcb {
  bootloader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  /** Turin only. */
  fmc?: number;
}

/**
 * What the owner requires beyond a genuine report (each a link of its own, see the module comment). Defaults:
 * debug refused, VMPL 0, nothing else.
 */
export interface SnpReportPolicy {
  /** The expected launch measurement (48 bytes). */
  measurement?: Uint8Array;
  /** The expected host_data (32 bytes). */
  hostData?: Uint8Array;
  /** Minimum SPLs of reported_tcb. */
  minimumTcb?: SnpMinimumTcb;
  /** Accept a guest whose policy allows debugging (bit 19). Default false. */
  allowDebug?: boolean;
  /** The VMPL the report must have been requested at; `"any"` judges none. Default 0. */
  vmpl?: number | "any";
  /** AMD's CRL for the product (DER), checked for the ASK's revocation. Needs the PEM chain. */
  crl?: Uint8Array;
}

export interface VerifySnpReportInput {
  /** The raw 0x4A0-byte report (see `decodeSnpReportInput` for hex text). */
  report: Uint8Array;
  /** The VCEK, DER or PEM. */
  vcek: Uint8Array;
  /** Optional PEM with the ASK and the ARK (KDS `cert_chain` order); the built-in roots when absent. */
  chain?: Uint8Array;
  /** Which built-in roots to pin: AMD's (default) or the emulated fleet's. */
  trust?: TrustSet;
  /** The owner's requirements; the defaults when absent (debug refused, VMPL 0). */
  policy?: SnpReportPolicy;
}

export interface SnpReportLinkResult {
  link: SnpReportLink;
  ok: boolean;
  detail: string;
}

export interface SnpReportVerification {
  ok: boolean;
  generation: SnpGeneration;
  productName: string | undefined;
  /** Where the ASK and ARK came from. */
  chainSource: "pem" | "built-in";
  /** Which built-in roots were pinned. */
  trust: TrustSet;
  report: SnpReport;
  reportedTcb: SnpTcb;
  vcekTcb: VcekTcb;
  links: SnpReportLinkResult[];
}

class StepFailure extends Error {}
function fail(detail: string): never {
  throw new StepFailure(detail);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Compares RSA keys as integers: the legacy format zero-pads the exponent to the modulus width, X.509 does not. */
function sameRsaKey(a: RsaPublicKey, b: RsaPublicKey): boolean {
  const strip = (x: Uint8Array) =>
    x.subarray(
      Math.max(
        0,
        x.findIndex((v) => v !== 0),
      ),
    );
  return sameBytes(strip(a.modulus), strip(b.modulus)) && sameBytes(strip(a.exponent), strip(b.exponent));
}

interface PemChain {
  ask: X509Cert;
  ark: X509Cert;
}

/** Splits the PEM chain into ASK and ARK by which one is self-issued, so either order works. */
function parsePemChain(bytes: Uint8Array): PemChain {
  const ders = parsePemCertificates(new TextDecoder().decode(bytes), "certificate chain");
  if (ders.length !== 2) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `certificate chain: expected 2 certificates (ASK, ARK), found ${ders.length}`,
    );
  }
  const certs = ders.map((d, i) => parseX509(d, `certificate chain #${i + 1}`));
  const selfIssued = certs.filter((c) => sameBytes(c.issuer, c.subject));
  const ark = selfIssued[0];
  const ask = certs.find((c) => c !== ark);
  if (selfIssued.length !== 1 || !ark || !ask) {
    throw new CiphervisorError(
      "CERT_INVALID",
      "certificate chain: expected one self-issued ARK and one ASK it issued",
    );
  }
  return { ask, ark };
}

function rsaKeyOf(cert: X509Cert, name: string): RsaPublicKey {
  if (cert.publicKey.kind !== "rsa") fail(`${name} key is not RSA`);
  return cert.publicKey.pub;
}

function pssDetail(cert: X509Cert, name: string): void {
  const a = cert.signatureAlgorithm;
  if (a.kind !== "rsa-pss" || a.hash !== "sha384" || a.mgf1Hash !== "sha384" || a.saltLength !== 48) {
    fail(`${name} is not signed with RSA-PSS SHA-384 (MGF1 SHA-384, salt 48)`);
  }
}

/** Checks every step and reports each one; throws only for malformed input. */
export function checkSnpReport(input: VerifySnpReportInput): SnpReportVerification {
  return run(input, false);
}

/**
 * Verifies the report and its chain, or throws CHAIN_INVALID / REPORT_INVALID naming the first failing step,
 * e.g. `VCEK → report: signature does not verify`.
 */
export function verifySnpReport(input: VerifySnpReportInput): SnpReportVerification {
  const result = run(input, true);
  const error = snpReportError(result);
  if (error) throw error;
  return result;
}

/** The error for a result's first failing step (CHAIN_INVALID or REPORT_INVALID), or undefined when all hold. */
export function snpReportError(result: SnpReportVerification): CiphervisorError | undefined {
  const bad = result.links.find((l) => !l.ok);
  if (!bad) return undefined;
  return new CiphervisorError(CODE_OF_LINK[bad.link], `${bad.link}: ${bad.detail}`, {
    details: { link: bad.link },
  });
}

function run(input: VerifySnpReportInput, failFast: boolean): SnpReportVerification {
  if (input.report.length !== SNP_REPORT_SIZE) {
    throw new CiphervisorError(
      "REPORT_INVALID",
      `SNP report: an attestation report is ${SNP_REPORT_SIZE} bytes, this one is ${input.report.length}`,
    );
  }
  const report = parseSnpReport(input.report);
  const vcek: Vcek = parseVcek(input.vcek);
  const pem = input.chain ? parsePemChain(input.chain) : undefined;
  const policy = input.policy ?? {};
  checkPolicyInput(policy, pem !== undefined);
  const crl = policy.crl ? parseCrl(policy.crl, "CRL") : undefined;
  const trust: TrustSet = input.trust ?? "amd";
  const root: TrustedRoot = loadBuiltinRoot(trust, vcek.generation);
  const links: SnpReportLinkResult[] = [];
  const step = (link: SnpReportLink, check: () => string): void => {
    if (failFast && links.some((l) => !l.ok)) return;
    try {
      links.push({ link, ok: true, detail: check() });
    } catch (e) {
      if (!(e instanceof StepFailure)) throw e;
      links.push({ link, ok: false, detail: e.message });
    }
  };

  let askKey: RsaPublicKey | undefined;
  step("ARK", () => {
    if (!verifyAmdCertSignature(root.ark, root.ark)) {
      fail(`the built-in ${describeRoot(root)} self-signature does not verify (corrupted installation?)`);
    }
    if (!pem) return `built-in ${describeRoot(root)}`;
    const key = rsaKeyOf(pem.ark, "ARK");
    if (!sameRsaKey(key, root.ark.pub)) {
      fail(
        `the chain's ARK (${pem.ark.subjectCn ?? "?"}) is not ${trust === "amd" ? "AMD's" : "the emulated"} ${vcek.generation} ARK (${describeRoot(root)})`,
      );
    }
    pssDetail(pem.ark, "the ARK");
    if (!verifyX509Signature(pem.ark, key)) fail("the ARK self-signature does not verify");
    return `self-signed, same key as the pinned ${describeRoot(root)}`;
  });

  step("ARK → ASK", () => {
    if (!pem) {
      if (!sameBytes(root.ask.certifyingId, root.ark.keyId) || !verifyAmdCertSignature(root.ask, root.ark)) {
        fail("the built-in ASK does not verify under the built-in ARK");
      }
      askKey = root.ask.pub;
      return "built-in ASK";
    }
    if (!sameBytes(pem.ask.issuer, pem.ark.subject)) fail("the ASK's issuer is not the ARK");
    pssDetail(pem.ask, "the ASK");
    if (!verifyX509Signature(pem.ask, rsaKeyOf(pem.ark, "ARK"))) fail("signature does not verify");
    askKey = rsaKeyOf(pem.ask, "ASK");
    return `verified (${pem.ask.subjectCn ?? "ASK"})`;
  });

  step("ASK revocation", () => {
    if (!crl || !pem) return "no CRL given";
    const arkKey = rsaKeyOf(pem.ark, "ARK");
    if (!sameBytes(crl.issuer, pem.ark.subject)) fail("the CRL's issuer is not the ARK");
    if (!verifyCrlSignature(crl, arkKey)) fail("the CRL's signature does not verify under the ARK");
    if (crlRevokes(crl, pem.ask.serial)) {
      fail(`the CRL revokes the ASK (${pem.ask.subjectCn ?? "ASK"}, serial 0x${toHex(pem.ask.serial)})`);
    }
    return `not revoked (CRL of ${crl.thisUpdate}, ${crl.revokedSerials.length} revoked)`;
  });

  step("ASK → VCEK", () => {
    const key = askKey ?? (pem ? rsaKeyOf(pem.ask, "ASK") : root.ask.pub);
    if (pem && !sameBytes(vcek.cert.issuer, pem.ask.subject)) fail("the VCEK's issuer is not the ASK");
    pssDetail(vcek.cert, "the VCEK");
    if (!verifyX509Signature(vcek.cert, key)) fail("signature does not verify");
    return `verified (${vcek.productName ?? vcek.generation})`;
  });

  step("VCEK → report", () => {
    if (report.signatureAlgo !== 1) {
      fail(`signature_algo ${report.signatureAlgo} is not ECDSA P-384 SHA-384 (1)`);
    }
    if (report.signingKey !== SnpSigningKey.VCEK) {
      fail(
        report.signingKey === SnpSigningKey.VLEK
          ? "the report is signed by a VLEK; only VCEK-signed reports are supported"
          : `the report's signing key field is ${report.signingKey}, not the VCEK (0)`,
      );
    }
    // Bit 17 of the guest policy is reserved and must be 1 (§14); a report without it is malformed.
    if ((report.policy & (1n << 17n)) === 0n) fail("policy bit 17 (reserved, must be 1) is clear");
    if (!isZero(report.bytes.subarray(0x2a0 + 144))) fail("bytes after the signature's r and s are not zero");
    const sig = snpReportSignature(report);
    if (!sig) fail("signature r or s is wider than 384 bits");
    if (!ecdsaVerify(vcek.pub, "sha384", snpReportSignedRegion(report), sig)) {
      fail("signature does not verify under the VCEK");
    }
    return "verified";
  });

  step("chip_id", () => {
    if (report.maskChipKey || isZero(report.chipId)) {
      fail("chip_id is masked (MASK_CHIP_KEY); the report cannot be tied to this VCEK");
    }
    const n = vcek.hwId.length;
    if (!sameBytes(report.chipId.subarray(0, n), vcek.hwId)) {
      fail(
        `chip_id ${toHex(report.chipId).slice(0, 16)}… is not the VCEK hwID ${toHex(vcek.hwId).slice(0, 16)}…`,
      );
    }
    return "equals the VCEK hwID";
  });

  const reportedTcb = decodeSnpTcb(report.reportedTcb, vcek.generation === "turin" ? "turin" : "milan");
  step("reported_tcb", () => {
    const diffs: string[] = [];
    const cmp = (name: string, got: number | undefined, want: number | undefined) => {
      if (got !== want) diffs.push(`${name} ${got} ≠ VCEK ${want}`);
    };
    cmp("bootloader", reportedTcb.bootloader, vcek.tcb.bootloader);
    cmp("tee", reportedTcb.tee, vcek.tcb.tee);
    cmp("snp", reportedTcb.snp, vcek.tcb.snp);
    cmp("microcode", reportedTcb.microcode, vcek.tcb.microcode);
    if (vcek.generation === "turin") cmp("fmc", reportedTcb.fmc, vcek.tcb.fmc);
    if (diffs.length)
      fail(`0x${report.reportedTcb.toString(16).padStart(16, "0")} does not match: ${diffs.join(", ")}`);
    return `0x${report.reportedTcb.toString(16).padStart(16, "0")} matches the VCEK`;
  });

  policySteps(step, report, reportedTcb, policy, vcek.generation === "turin");

  for (const link of SNP_REPORT_LINKS) {
    if (!links.some((l) => l.link === link)) {
      links.push({ link, ok: false, detail: "not checked: an earlier step failed" });
    }
  }
  links.sort((a, b) => SNP_REPORT_LINKS.indexOf(a.link) - SNP_REPORT_LINKS.indexOf(b.link));
  return {
    ok: links.every((l) => l.ok),
    generation: vcek.generation,
    productName: vcek.productName,
    chainSource: pem ? "pem" : "built-in",
    trust,
    report,
    reportedTcb,
    vcekTcb: vcek.tcb,
    links,
  };
}

function checkPolicyInput(policy: SnpReportPolicy, hasPem: boolean): void {
  const size = (v: Uint8Array | undefined, n: number, name: string) => {
    if (v !== undefined && v.length !== n) {
      throw new CiphervisorError("INVALID_INPUT", `expected ${name} is ${n} bytes, got ${v.length}`, {
        details: { field: name },
      });
    }
  };
  size(policy.measurement, 48, "measurement");
  size(policy.hostData, 32, "host_data");
  for (const [name, v] of Object.entries(policy.minimumTcb ?? {})) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 255)) {
      throw new CiphervisorError("INVALID_INPUT", `minimum TCB ${name} must be 0-255, got ${v}`, {
        details: { field: `minimumTcb.${name}` },
      });
    }
  }
  if (
    policy.vmpl !== undefined &&
    policy.vmpl !== "any" &&
    !(Number.isInteger(policy.vmpl) && policy.vmpl >= 0 && policy.vmpl <= 3)
  ) {
    throw new CiphervisorError("INVALID_INPUT", `the required VMPL must be 0-3 or any, got ${policy.vmpl}`, {
      details: { field: "vmpl" },
    });
  }
  if (policy.crl && !hasPem) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      "checking the ASK against a CRL needs the PEM chain (KDS cert_chain): the X.509 ASK carries the serial the CRL lists",
      { details: { field: "crl" } },
    );
  }
}

/** The owner's policy checks, in SNP_REPORT_LINKS order (see the module comment). */
function policySteps(
  step: (link: SnpReportLink, check: () => string) => void,
  report: SnpReport,
  tcb: SnpTcb,
  policy: SnpReportPolicy,
  turin: boolean,
): void {
  step("debug", () => {
    const debug = (report.policy & SNP_POLICY_DEBUG) !== 0n;
    if (debug && !policy.allowDebug) {
      fail(
        `the guest policy 0x${report.policy.toString(16)} allows debugging (bit 19); the policy requires it off`,
      );
    }
    return debug ? "allowed by the guest policy, and accepted" : "off";
  });

  step("vmpl", () => {
    const want = policy.vmpl ?? 0;
    if (want === "any") return `${report.vmpl} (any accepted)`;
    if (report.vmpl !== want)
      fail(`the report was requested at VMPL ${report.vmpl}, the policy requires VMPL ${want}`);
    return `${report.vmpl}`;
  });

  step("minimum TCB", () => {
    const min = policy.minimumTcb ?? {};
    const names: readonly (keyof SnpMinimumTcb)[] = [
      "bootloader",
      "tee",
      "snp",
      "microcode",
      ...(turin ? (["fmc"] as const) : []),
    ];
    const judged = names.filter((n) => min[n] !== undefined);
    if (judged.length === 0) return "not required";
    const below = judged.filter((n) => (tcb[n] ?? 0) < min[n]!).map((n) => `${n} ${tcb[n] ?? 0} < ${min[n]}`);
    const raw = `0x${report.reportedTcb.toString(16).padStart(16, "0")}`;
    if (below.length) fail(`reported_tcb ${raw} is below the minimum: ${below.join(", ")}`);
    return `reported_tcb ${raw} meets ${judged.map((n) => `${n} ≥ ${min[n]}`).join(", ")}`;
  });

  step("measurement", () => {
    if (!policy.measurement) return "not required";
    if (!sameBytes(report.measurement, policy.measurement)) {
      fail(`${toHex(report.measurement)} is not the expected ${toHex(policy.measurement)}`);
    }
    return "equals the expected measurement";
  });

  step("host_data", () => {
    if (!policy.hostData) return "not required";
    if (!sameBytes(report.hostData, policy.hostData)) {
      fail(`${toHex(report.hostData)} is not the expected ${toHex(policy.hostData)}`);
    }
    return "equals the expected host_data";
  });
}
