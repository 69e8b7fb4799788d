/**
 * The emulated "AMD": the ARK and ASK of each generation, and the Key Distribution Service that hands out
 * ASK-signed CEKs by chip ID (docs/sev-interface.md §11.3, §15 pitfalls 18 and 24).
 *
 * Real CEKs are derived inside each chip and registered by AMD at manufacture. Here a chip's CEK is derived from
 * its GET_ID value and a manufacturer secret, so the emulated KDS can compute any chip's CEK from the ID alone —
 * no registry, no global state — while the chip (SecureProcessor) derives the same key for itself.
 *
 * These keys are the emulated root of trust only. They are public in this repository by design: an emulated
 * platform proves nothing about real hardware, and owners verify it against the *emulated* root explicitly.
 */
import { encodeAmdCert } from "../../certs/amd-cert.ts";
import { Algo, encodeSevCert, signSevCertRsa, Usage } from "../../certs/sev-cert.ts";
import { type EcKeyPair, generateEcKeyPair } from "../../crypto/ec.ts";
import { sha256 } from "../../crypto/hash.ts";
import { seededRandom } from "../../crypto/random.ts";
import { type RsaKeyPair, rsaKeyPairFromPem } from "../../crypto/rsa.ts";
import { concat } from "../../lib/bytes.ts";
import type { Generation } from "../../machine/cpu-models.ts";
import keys from "./emulated-amd-keys.json" with { type: "json" };

interface GenerationRoot {
  ark: RsaKeyPair;
  ask: RsaKeyPair;
  arkCert: Uint8Array;
  askCert: Uint8Array;
  cekMaster: Uint8Array;
  vcekMaster: Uint8Array;
}

const cache = new Map<Generation, GenerationRoot>();

/** Key ids start with the ASCII bytes "CVEMU" so nobody mistakes them for AMD's. */
export function emulatedKeyId(generation: Generation, role: "ARK" | "ASK"): Uint8Array {
  const id = sha256(new TextEncoder().encode(`ciphervisor emulated ${role} ${generation}`)).slice(0, 16);
  id.set(new TextEncoder().encode("CVEMU"), 0);
  return id;
}

function root(generation: Generation): GenerationRoot {
  let r = cache.get(generation);
  if (!r) {
    const k = (keys as Record<string, { ark: string; ask: string }>)[generation];
    if (!k) throw new RangeError(`no emulated root for ${generation}`);
    const ark = rsaKeyPairFromPem(k.ark);
    const ask = rsaKeyPairFromPem(k.ask);
    // The same seeded salt stream as scripts/gen-emulated-roots.ts, so these bytes equal the committed certificates.
    const rng = seededRandom(`emulated-root-${generation}`);
    const arkId = emulatedKeyId(generation, "ARK");
    const askId = emulatedKeyId(generation, "ASK");
    const arkCert = encodeAmdCert(
      { keyId: arkId, certifyingId: arkId, keyUsage: Usage.ARK, key: ark },
      ark,
      rng,
    );
    const askCert = encodeAmdCert(
      { keyId: askId, certifyingId: arkId, keyUsage: Usage.ASK, key: ask },
      ark,
      rng,
    );
    r = {
      ark,
      ask,
      arkCert,
      askCert,
      cekMaster: sha256(new TextEncoder().encode(`cek-master\0${k.ask}`)),
      vcekMaster: sha256(new TextEncoder().encode(`vcek-master\0${k.ask}`)),
    };
    cache.set(generation, r);
  }
  return r;
}

/** The emulated ARK and ASK of a generation, in AMD's binary format. */
export function emulatedRootCerts(generation: Generation): { ark: Uint8Array; ask: Uint8Array } {
  const r = root(generation);
  return { ark: r.arkCert.slice(), ask: r.askCert.slice() };
}

/** The CEK key pair of the chip whose GET_ID value is `chipId`. Called by that chip and by the emulated KDS. */
export function deriveCek(generation: Generation, chipId: Uint8Array): EcKeyPair {
  return generateEcKeyPair(seededRandom(concat(root(generation).cekMaster, chipId)));
}

/**
 * The VCEK key pair of the chip `chipId` at the TCB `reportedTcb` (SEV-SNP; docs/sev-interface.md §14). A real chip
 * derives its VCEK from a chip-unique secret and the TCB it runs at, so every firmware update yields a new key (SNP
 * ABI 56860, "VCEK" in the key-derivation chapter; VCEK specification 57230). Here the secret is a per-generation
 * manufacturer master and the chip id: called by that chip's Secure Processor (to sign reports) and by the emulated
 * KDS (which puts only the public half into the certificate).
 */
export function deriveVcek(generation: Generation, chipId: Uint8Array, reportedTcb: bigint): EcKeyPair {
  const tcb = new Uint8Array(8);
  new DataView(tcb.buffer).setBigUint64(0, BigInt.asUintN(64, reportedTcb), true);
  return generateEcKeyPair(seededRandom(concat(root(generation).vcekMaster, chipId, tcb)));
}

/**
 * The emulated ARK and ASK key pairs of a generation, for the emulated manufacturer's own X.509 issuing
 * (`emulated-snp.ts`: the SNP ARK, ASK, VCEKs and CRL carry the same RSA keys as the legacy-format roots, as AMD's
 * do, docs/sev-interface.md §11.2). Nothing outside `sev/manufacturer` calls this.
 */
export function emulatedIssuerKeys(generation: Generation): { ark: RsaKeyPair; ask: RsaKeyPair } {
  const r = root(generation);
  return { ark: r.ark, ask: r.ask };
}

/** API version stamped on KDS-issued CEKs (the real Rome and Naples CEKs from AMD's KDS show 0.14). */
export const CEK_API = { major: 0, minor: 14 } as const;

/** The CEK certificate without the ASK signature, as the chip's PDH_CERT_EXPORT returns it (docs/sev-interface.md §15 pitfall 18). */
export function unsignedCekCert(generation: Generation, chipId: Uint8Array): Uint8Array {
  return encodeSevCert({
    apiMajor: CEK_API.major,
    apiMinor: CEK_API.minor,
    usage: Usage.CEK,
    algo: Algo.ECDSA_SHA256,
    pub: deriveCek(generation, chipId).pub,
  });
}

/**
 * The emulated KDS: the ASK-signed CEK for a chip ID (what `https://kdsintf.amd.com/cek/id/<id>` returns for real
 * chips). Naples ASKs are RSA-2048 and sign with RSA_SHA256; later ones are RSA-4096 with RSA_SHA384, as in the
 * real chains.
 */
export function kdsSignedCek(generation: Generation, chipId: Uint8Array): Uint8Array {
  // Deterministic, so remembering answers is only a speed-up (an RSA-4096 signature costs ~8 ms).
  const key = `${generation}:${Buffer.from(chipId).toString("hex")}`;
  const hit = kdsCache.get(key);
  if (hit) return hit.slice();
  const signed = signCek(generation, chipId);
  if (kdsCache.size > 256) kdsCache.clear();
  kdsCache.set(key, signed);
  return signed.slice();
}

const kdsCache = new Map<string, Uint8Array>();

function signCek(generation: Generation, chipId: Uint8Array): Uint8Array {
  const r = root(generation);
  const algo = r.ask.bits === 2048 ? Algo.RSA_SHA256 : Algo.RSA_SHA384;
  return signSevCertRsa(
    unsignedCekCert(generation, chipId),
    1,
    Usage.ASK,
    r.ask,
    algo,
    seededRandom(concat(new TextEncoder().encode("kds-salt"), chipId)),
  );
}
