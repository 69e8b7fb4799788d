/**
 * Full SEV certificate chain verification (docs/sev-interface.md §11.3, after virtee/sev `certs/sev/chain.rs` and
 * sevctl `verify`):
 *
 * ```
 * ARK (pinned, self-signed) → ASK → CEK → PEK → PDH
 *                     OCA (self-signed) ↗
 * ```
 *
 * 1. ARK self-signed — and equal to a root the caller trusts. The ARK a platform sends is never trusted by itself.
 * 2. ARK → ASK: ASK.certifying_id = ARK.key_id, key usage 0x13, RSA-PSS signature by the ARK.
 * 3. ASK → CEK: RSA-PSS, hash from the CEK slot's algo, which must match the ASK's key size (docs/sev-interface.md §15 pitfall 2).
 * 4. CEK → PEK and OCA → PEK: both signatures must verify.
 * 5. OCA self-signed.
 * 6. PEK → PDH, and the PDH key must be a point on P-384 (§11.4).
 *
 * Every link also checks the subject's key usage and key algorithm, so swapped files fail with a clear reason.
 * A failure is a CHAIN_INVALID error whose message begins with the link, e.g. `ASK → CEK: signature does not
 * verify`.
 *
 * @example
 * ```ts
 * const chain = parseSevChain({ cek, oca, pek, pdh }); // ARK and ASK default to the trusted root's
 * verifySevChain(chain, { roots: [loadBuiltinRoot("amd", "rome")] }); // throws CHAIN_INVALID on failure
 * ```
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { type EcPublicKey, isOnCurve } from "../crypto/ec.ts";
import { sha256 } from "../crypto/hash.ts";
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import { isZero, toHex, u32le } from "../lib/bytes.ts";
import {
  AMD_HEADER_SIZE,
  type AmdCert,
  amdCertHash,
  parseAmdCert,
  parseAmdCertPrefix,
  verifyAmdCertSignature,
} from "./amd-cert.ts";
import { algoName } from "./print.ts";
import {
  amdGenerationOfArkKeyId,
  describeRoot,
  type Generation,
  isEmulatedKeyId,
  type TrustedRoot,
  type TrustSet,
} from "./roots.ts";
import {
  Algo,
  parseSevCert,
  SEV_CERT_SIGNED_SIZE,
  SEV_CERT_SIZE,
  type SevCert,
  type SignerKey,
  Usage,
  usageName,
  verifySevCertSignature,
} from "./sev-cert.ts";

/** The links of a SEV chain, in the order they are checked (§11.3). */
export const SEV_CHAIN_LINKS = [
  "ARK",
  "ARK → ASK",
  "ASK → CEK",
  "OCA",
  "CEK → PEK",
  "OCA → PEK",
  "PEK → PDH",
] as const;
export type SevChainLink = (typeof SEV_CHAIN_LINKS)[number];

export type SevChainRole = "ark" | "ask" | "cek" | "oca" | "pek" | "pdh";

/** The link in which each certificate is the subject: its parse and content errors are reported there. */
export const LINK_OF_ROLE: Readonly<Record<SevChainRole, SevChainLink>> = {
  ark: "ARK",
  ask: "ARK → ASK",
  cek: "ASK → CEK",
  oca: "OCA",
  pek: "CEK → PEK",
  pdh: "PEK → PDH",
};

/** Default file names, as `sevctl export --full` writes them into a directory. */
export const SEV_CHAIN_FILE_NAMES: Readonly<Record<SevChainRole, string>> = {
  ark: "ark.cert",
  ask: "ask.cert",
  cek: "cek.cert",
  oca: "oca.cert",
  pek: "pek.cert",
  pdh: "pdh.cert",
};

/** A parsed chain. ARK and ASK are optional: the trusted root's are used when absent. */
export interface SevChain {
  ark?: AmdCert;
  ask?: AmdCert;
  cek: SevCert;
  oca: SevCert;
  pek: SevCert;
  pdh: SevCert;
}

/** A chain as raw files. */
export interface SevChainBytes {
  ark?: Uint8Array;
  ask?: Uint8Array;
  cek: Uint8Array;
  oca: Uint8Array;
  pek: Uint8Array;
  pdh: Uint8Array;
}

/** Size of the Naples ARK as AMD first published it: header + 2048-bit exponent + modulus, no signature. */
export const UNSIGNED_NAPLES_ARK_SIZE = AMD_HEADER_SIZE + 256 + 256;

/**
 * Parses an ARK file. The one tolerated defect is explicit (docs/sev-interface.md §15 pitfall 19): a 576-byte RSA-2048 ARK without its
 * signature — the Naples ARK as AMD first published it (AMDESE/AMDSEV#17). It parses with `signature` undefined,
 * and the chain verifier accepts it only when it equals a pinned root. Any other short file is CERT_INVALID.
 */
export function parseArkCert(bytes: Uint8Array, what = "ARK"): AmdCert {
  const unsignedNaples = bytes.length === UNSIGNED_NAPLES_ARK_SIZE;
  return parseAmdCert(bytes, what, { allowUnsigned: unsignedNaples });
}

/**
 * Parses a chain's files. A malformed file is a CERT_INVALID error whose message names the link in which it is the
 * subject and the file, e.g. `PEK → PDH: pdh.cert: a SEV certificate is 2084 bytes, this one is 100`.
 */
export function parseSevChain(
  files: SevChainBytes,
  names: Partial<Record<SevChainRole, string>> = {},
): SevChain {
  const ark = files.ark;
  const ask = files.ask;
  return {
    ...(ark ? { ark: parseSevChainCert("ark", ark, names.ark) } : {}),
    ...(ask ? { ask: parseSevChainCert("ask", ask, names.ask) } : {}),
    cek: parseSevChainCert("cek", files.cek, names.cek),
    oca: parseSevChainCert("oca", files.oca, names.oca),
    pek: parseSevChainCert("pek", files.pek, names.pek),
    pdh: parseSevChainCert("pdh", files.pdh, names.pdh),
  };
}

/**
 * Parses one certificate of a chain by role (e.g. to splice the ASK-signed CEK from AMD KDS into an exported
 * chain, docs/sev-interface.md §15 pitfall 18), with the same link-naming CERT_INVALID errors as `parseSevChain`.
 */
export function parseSevChainCert<R extends SevChainRole>(
  role: R,
  bytes: Uint8Array,
  name?: string,
): R extends "ark" | "ask" ? AmdCert : SevCert;
export function parseSevChainCert(
  role: SevChainRole,
  bytes: Uint8Array,
  name: string = SEV_CHAIN_FILE_NAMES[role],
): AmdCert | SevCert {
  try {
    if (role === "ark") return parseArkCert(bytes, name);
    if (role === "ask") return parseAmdCert(bytes, name);
    return parseSevCert(bytes, name);
  } catch (e) {
    if (!isCiphervisorError(e)) throw e;
    throw new CiphervisorError("CERT_INVALID", `${LINK_OF_ROLE[role]}: ${e.message}`, {
      cause: e,
      details: { link: LINK_OF_ROLE[role], file: name },
    });
  }
}

/**
 * Splits sevctl's concatenated chain (§11.3): PDH ‖ PEK ‖ OCA ‖ CEK, optionally followed by ASK ‖ ARK
 * (`sevctl export --full`).
 */
export function splitSevctlChain(bytes: Uint8Array, what = "chain file"): SevChainBytes {
  const sevLen = 4 * SEV_CERT_SIZE;
  if (bytes.length < sevLen) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: ${bytes.length} bytes is shorter than PDH ‖ PEK ‖ OCA ‖ CEK (${sevLen} bytes)`,
    );
  }
  const at = (i: number) => bytes.slice(i * SEV_CERT_SIZE, (i + 1) * SEV_CERT_SIZE);
  const out: SevChainBytes = { pdh: at(0), pek: at(1), oca: at(2), cek: at(3) };
  if (bytes.length === sevLen) return out;
  const { ask, ark } = splitAskArk(bytes.subarray(sevLen), `${what} (ASK ‖ ARK after the CEK)`);
  return { ...out, ask, ark };
}

/** Splits AMD's `ask_ark_<generation>.cert` bundle: ASK ‖ ARK, concatenated (§11.2). */
export function splitAskArk(
  bytes: Uint8Array,
  what = "ASK ‖ ARK bundle",
): { ask: Uint8Array; ark: Uint8Array } {
  const { consumed } = parseAmdCertPrefix(bytes, `${what}: ASK`);
  const ark = bytes.slice(consumed);
  if (ark.length === 0)
    throw new CiphervisorError("CERT_INVALID", `${what}: the ARK after the ASK is missing`);
  return { ask: bytes.slice(0, consumed), ark };
}

/** The result of one link. `detail` explains a failure, or notes how a link passed. */
export interface SevChainLinkResult {
  link: SevChainLink;
  ok: boolean;
  detail: string;
}

export interface SevChainReport {
  ok: boolean;
  /** The root the chain was checked against; undefined when none of the trusted roots matched. */
  root?: { trust: TrustSet; generation: Generation; arkKeyId: string; description: string };
  links: SevChainLinkResult[];
}

/**
 * Remembers successful link checks and imported signer keys across many verifications — a fleet of hosts of one
 * generation shares its ARK, ASK and often its OCA. Only successes are remembered, keyed by SHA-256 over every byte
 * the decision read, so a cache can never turn a failure into a success.
 */
export class SevChainCache {
  readonly #verified = new Map<string, string>();
  readonly #keys = new Map<string, KeyObject>();

  /** @internal The detail of a cached success, or undefined. */
  get(key: string): string | undefined {
    return this.#verified.get(key);
  }
  /** @internal */
  add(key: string, detail: string): void {
    this.#verified.set(key, detail);
  }
  /** @internal */
  ecKey(pub: EcPublicKey): KeyObject {
    const id = toHex(pub.x) + toHex(pub.y);
    let k = this.#keys.get(id);
    if (!k) {
      k = createPublicKey({
        key: {
          kty: "EC",
          crv: "P-384",
          x: Buffer.from(pub.x).toString("base64url"),
          y: Buffer.from(pub.y).toString("base64url"),
        },
        format: "jwk",
      });
      this.#keys.set(id, k);
    }
    return k;
  }
}

export interface VerifySevChainOptions {
  /**
   * The roots to trust. The chain's ARK key id (or, without an ARK, its ASK's certifying id) chooses among them; a
   * chain rooted anywhere else fails at the ARK link.
   */
  roots: readonly TrustedRoot[];
  cache?: SevChainCache;
}

/** End of the ECC public key in a SEV certificate: curve u32 @0x10, qx[72] @0x14, qy[72] @0x5C. */
const ECC_KEY_END = 0x5c + 72;

/** A link failure, thrown inside the link checks and turned into a result. */
class LinkFailure extends Error {}

function fail(detail: string): never {
  throw new LinkFailure(detail);
}

function algoLabel(algo: number): string {
  const name = algoName(algo);
  return name.startsWith("0x") ? name : `${name} (0x${algo.toString(16)})`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const isEcdsaAlgo = (a: number) => a === Algo.ECDSA_SHA256 || a === Algo.ECDSA_SHA384;
const isEcdhAlgo = (a: number) => a === Algo.ECDH_SHA256 || a === Algo.ECDH_SHA384;

/** Chooses the trusted root for a chain, or explains why none applies. */
function selectRoot(chain: SevChain, roots: readonly TrustedRoot[]): TrustedRoot | string {
  const trusted = roots.map(describeRoot).join(", ") || "none";
  const anchor = chain.ark?.keyId ?? chain.ask?.certifyingId;
  if (!anchor) {
    if (roots.length === 1) return roots[0]!;
    return `the chain has neither an ARK nor an ASK, so the generation cannot be told (trusted: ${trusted}); name it`;
  }
  const root = roots.find((r) => sameBytes(r.ark.keyId, anchor));
  if (root) return root;
  const whose = chain.ark ? "the chain's ARK key id" : "the ASK's certifying id";
  const amdGeneration = amdGenerationOfArkKeyId(anchor);
  const hint = isEmulatedKeyId(anchor)
    ? "; it is ciphervisor's emulated root, trusted only when asked for"
    : amdGeneration
      ? `; it is AMD's ${amdGeneration} root`
      : "";
  return `${whose} ${toHex(anchor)} is not a trusted root (trusted: ${trusted})${hint}`;
}

interface Signer {
  usage: number;
  key: SignerKey;
}

function sevSigner(cert: SevCert, cache: SevChainCache): Signer {
  if (cert.key.kind !== "ecc") fail(`${usageName(cert.usage)} key is not an ECC key`);
  return { usage: cert.usage, key: { kind: "ecc", pub: cert.key.pub, keyObject: cache.ecKey(cert.key.pub) } };
}

/** Subject checks shared by CEK, OCA and PEK: usage, an ECDSA P-384 key on the curve. */
function checkSevSubject(
  cert: SevCert,
  usage: number,
  keyAlgo: (a: number) => boolean,
  algoKind: string,
): void {
  if (cert.usage !== usage) {
    fail(`certificate key usage is ${usageName(cert.usage)}, expected ${usageName(usage)}`);
  }
  if (!keyAlgo(cert.algo)) {
    fail(`${usageName(usage)} key algorithm ${algoLabel(cert.algo)} is not ${algoKind}`);
  }
  // §11.1: the ECC key is {curve, qx[72], qy[72]} and the rest of the 0x404-byte union is zero. Must-be-zero
  // bytes are refused rather than ignored (docs/threat-model.md §6), as the codec already does for the coordinates'
  // unused high bytes.
  if (!isZero(cert.bytes.subarray(ECC_KEY_END, SEV_CERT_SIGNED_SIZE))) {
    fail(
      `${usageName(usage)} public key padding [0x${ECC_KEY_END.toString(16)}, 0x${SEV_CERT_SIGNED_SIZE.toString(16)}) is not zero`,
    );
  }
  if (cert.key.kind !== "ecc" || !isOnCurve(cert.key.pub)) {
    fail(`${usageName(usage)} public key is not a point on P-384`);
  }
}

function checkSevSignature(subject: SevCert, signer: Signer): void {
  if (!subject.sigs.some((s) => s.usage === signer.usage)) {
    fail(`no signature slot carries the ${usageName(signer.usage)} usage`);
  }
  if (!verifySevCertSignature(subject, signer.usage, signer.key)) fail("signature does not verify");
}

/**
 * Checks every link independently and reports each one (for `--json` and diagnostics). A link's result is about
 * that link alone; the chain is valid only when all are ok. Never throws for a bad chain.
 */
export function checkSevChain(chain: SevChain, options: VerifySevChainOptions): SevChainReport {
  return runLinks(chain, options, false);
}

/**
 * Verifies the whole chain and returns its report, or throws CHAIN_INVALID naming the first failing link
 * (`details.link`), e.g. `ASK → CEK: signature does not verify`.
 */
export function verifySevChain(chain: SevChain, options: VerifySevChainOptions): SevChainReport {
  const report = runLinks(chain, options, true);
  const error = sevChainError(report);
  if (error) throw error;
  return report;
}

/** The CHAIN_INVALID error for a report's first failing link, or undefined when the chain is valid. */
export function sevChainError(report: SevChainReport): CiphervisorError | undefined {
  const bad = report.links.find((l) => !l.ok);
  if (!bad) return undefined;
  return new CiphervisorError("CHAIN_INVALID", `${bad.link}: ${bad.detail}`, {
    details: { link: bad.link, ...(report.root ? { root: report.root.description } : {}) },
  });
}

function runLinks(chain: SevChain, options: VerifySevChainOptions, failFast: boolean): SevChainReport {
  const cache = options.cache ?? new SevChainCache();
  const selected = selectRoot(chain, options.roots);
  const root = typeof selected === "string" ? undefined : selected;
  const ask = chain.ask ?? root?.ask;
  const links: SevChainLinkResult[] = [];

  /**
   * Runs one link unless a success for the very same bytes is cached. `inputs` must hold every byte the check
   * reads; the link name is part of the key so one link's success never answers another's.
   */
  const run = (link: SevChainLink, inputs: Uint8Array[], check: () => string): boolean => {
    if (failFast && links.some((l) => !l.ok)) return false;
    const parts: Uint8Array[] = [new TextEncoder().encode(link)];
    for (const p of inputs) parts.push(u32le(p.length), p);
    const key = toHex(sha256(...parts));
    const cached = cache.get(key);
    if (cached !== undefined) {
      links.push({ link, ok: true, detail: cached });
      return true;
    }
    try {
      const detail = check();
      cache.add(key, detail);
      links.push({ link, ok: true, detail });
      return true;
    } catch (e) {
      if (!(e instanceof LinkFailure)) throw e;
      links.push({ link, ok: false, detail: e.message });
      return false;
    }
  };
  const none = new Uint8Array(0);

  // 1. ARK: the pinned root verifies itself, and the platform's ARK (if sent) is that root.
  run("ARK", [root?.ark.bytes ?? none, chain.ark?.bytes ?? none], () => {
    if (!root) fail(selected as string);
    const pinned = root.ark;
    if (pinned.keyUsage !== Usage.ARK || !sameBytes(pinned.keyId, pinned.certifyingId)) {
      fail(`the ${describeRoot(root)} is not a self-issued ARK`);
    }
    if (!verifyAmdCertSignature(pinned, pinned)) {
      fail(`the ${describeRoot(root)} self-signature does not verify (corrupted installation?)`);
    }
    const sent = chain.ark;
    if (!sent) return `pinned ${describeRoot(root)}`;
    if (sameBytes(sent.bytes, pinned.bytes)) return `equals the pinned ${describeRoot(root)}`;
    if (!sameBytes(sent.signedRegion, pinned.signedRegion)) {
      fail(`the chain's ARK is not the pinned ${describeRoot(root)}`);
    }
    if (!sent.signature) {
      if (root.generation !== "naples")
        fail("the chain's ARK has no signature (only Naples' first ARK lacked one)");
      // docs/sev-interface.md §15 pitfall 19: AMD's first Naples ARK lacked its signature. It is the root only because it equals the pinned
      // one byte for byte in everything it does carry.
      return `unsigned ARK (the Naples file as first published, AMDESE/AMDSEV#17) accepted: it equals the pinned ${describeRoot(root)}`;
    }
    if (!verifyAmdCertSignature(sent, pinned)) fail("the chain's ARK self-signature does not verify");
    return `same key as the pinned ${describeRoot(root)} (re-signed)`;
  });

  // 2. ARK → ASK.
  run("ARK → ASK", [root?.ark.bytes ?? none, ask?.bytes ?? none], () => {
    if (!root) fail("no trusted ARK");
    if (!ask) fail("no ASK");
    if (ask.keyUsage !== Usage.ASK) fail(`ASK key usage is 0x${ask.keyUsage.toString(16)}, expected 0x13`);
    if (!sameBytes(ask.certifyingId, root.ark.keyId)) {
      fail(`ASK certifying id ${toHex(ask.certifyingId)} is not the ARK key id ${toHex(root.ark.keyId)}`);
    }
    if (!verifyAmdCertSignature(ask, root.ark)) fail("signature does not verify");
    return chain.ask ? "verified" : "verified (built-in ASK)";
  });

  // 3. ASK → CEK: RSA-PSS; the slot's hash must be the one the ASK's key size calls for (docs/sev-interface.md §15 pitfall 2, never a
  // trial of several digests).
  run("ASK → CEK", [ask?.bytes ?? none, chain.cek.bytes], () => {
    if (!ask) fail("no ASK");
    const cek = chain.cek;
    checkSevSubject(cek, Usage.CEK, isEcdsaAlgo, "ECDSA");
    const slot = cek.sigs.find((s) => s.usage === Usage.ASK);
    if (!slot) {
      fail(
        "no signature slot carries the ASK usage (0x13): the CEK from PDH_CERT_EXPORT is unsigned; fetch the signed CEK from AMD KDS (docs/sev-interface.md §15 pitfall 18)",
      );
    }
    const expected = amdCertHash(ask.modulusBits) === "sha256" ? Algo.RSA_SHA256 : Algo.RSA_SHA384;
    if (slot.algo !== expected) {
      fail(
        `signature algorithm ${algoLabel(slot.algo)} does not match the ${ask.modulusBits}-bit ASK (expects ${algoLabel(expected)})`,
      );
    }
    const signer: Signer = {
      usage: Usage.ASK,
      key: { kind: "rsa", pub: ask.pub, modulusBits: ask.modulusBits },
    };
    checkSevSignature(cek, signer);
    return "verified";
  });

  // 4. OCA, self-signed.
  run("OCA", [chain.oca.bytes], () => {
    checkSevSubject(chain.oca, Usage.OCA, isEcdsaAlgo, "ECDSA");
    checkSevSignature(chain.oca, sevSigner(chain.oca, cache));
    return "self-signed";
  });

  // 5. CEK → PEK and OCA → PEK: the PEK carries one signature per slot and both must verify (docs/sev-interface.md §15 pitfall 4).
  run("CEK → PEK", [chain.cek.bytes, chain.pek.bytes], () => {
    checkSevSubject(chain.pek, Usage.PEK, isEcdsaAlgo, "ECDSA");
    if (chain.cek.key.kind !== "ecc" || !isOnCurve(chain.cek.key.pub))
      fail("CEK key is not a point on P-384");
    checkSevSignature(chain.pek, sevSigner(chain.cek, cache));
    return "verified";
  });
  run("OCA → PEK", [chain.oca.bytes, chain.pek.bytes], () => {
    checkSevSubject(chain.pek, Usage.PEK, isEcdsaAlgo, "ECDSA");
    if (chain.oca.key.kind !== "ecc" || !isOnCurve(chain.oca.key.pub))
      fail("OCA key is not a point on P-384");
    checkSevSignature(chain.pek, sevSigner(chain.oca, cache));
    return "verified";
  });

  // 6. PEK → PDH; the PDH is an ECDH key, used for the session only after this link holds.
  run("PEK → PDH", [chain.pek.bytes, chain.pdh.bytes], () => {
    checkSevSubject(chain.pdh, Usage.PDH, isEcdhAlgo, "ECDH");
    if (chain.pek.key.kind !== "ecc" || !isOnCurve(chain.pek.key.pub))
      fail("PEK key is not a point on P-384");
    checkSevSignature(chain.pdh, sevSigner(chain.pek, cache));
    return "verified";
  });

  for (const link of SEV_CHAIN_LINKS) {
    if (!links.some((l) => l.link === link)) {
      links.push({ link, ok: false, detail: "not checked: an earlier link failed" });
    }
  }
  return {
    ok: links.every((l) => l.ok),
    ...(root
      ? {
          root: {
            trust: root.trust,
            generation: root.generation,
            arkKeyId: toHex(root.ark.keyId),
            description: describeRoot(root),
          },
        }
      : {}),
    links,
  };
}
