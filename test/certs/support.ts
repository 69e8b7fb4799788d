/**
 * Test support for the certificate tests: fixture loading (test/fixtures/certs, provenance in its README) and a
 * synthetic chain rooted in ciphervisor's emulated AMD root, signed with the emulated manufacturer keys
 * (src/sev/manufacturer/emulated-amd-keys.json) — the shape of chain an emulated platform exports.
 */
import { readFileSync } from "node:fs";
import type { SevChainBytes } from "../../src/certs/chain.ts";
import type { Generation } from "../../src/certs/roots.ts";
import { Algo, encodeSevCert, signSevCertEcdsa, signSevCertRsa, Usage } from "../../src/certs/sev-cert.ts";
import { generateEcKeyPair } from "../../src/crypto/ec.ts";
import { seededRandom } from "../../src/crypto/random.ts";
import { rsaKeyPairFromPem } from "../../src/crypto/rsa.ts";

export function fixture(path: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/certs/${path}`, import.meta.url)));
}

export function fixturePath(path: string): string {
  return new URL(`../fixtures/certs/${path}`, import.meta.url).pathname;
}

/** The six files of a real chain: "rome" or "naples". */
export function realChain(gen: "rome" | "naples"): Required<SevChainBytes> {
  const f = (n: string) => fixture(`${gen}/${n}.cert`);
  return { ark: f("ark"), ask: f("ask"), cek: f("cek"), oca: f("oca"), pek: f("pek"), pdh: f("pdh") };
}

function builtinEmulated(gen: Generation, name: "ark" | "ask"): Uint8Array {
  return new Uint8Array(
    readFileSync(new URL(`../../src/certs/builtin/emulated/${gen}/${name}.cert`, import.meta.url)),
  );
}

/**
 * A complete chain under the emulated root of `gen`: CEK signed by the emulated ASK (RSA-PSS with the hash the
 * ASK's size calls for), self-signed OCA, PEK signed by OCA (slot 1) and CEK (slot 2), PDH signed by the PEK.
 */
export function emulatedChain(gen: Generation, seed = "test"): Required<SevChainBytes> {
  const keys = JSON.parse(
    readFileSync(new URL("../../src/sev/manufacturer/emulated-amd-keys.json", import.meta.url), "utf8"),
  ) as Record<string, { ask: string }>;
  const ask = rsaKeyPairFromPem(keys[gen]!.ask);
  const rng = seededRandom(`emulated-chain-${gen}-${seed}`);
  const cekKey = generateEcKeyPair(rng);
  const ocaKey = generateEcKeyPair(rng);
  const pekKey = generateEcKeyPair(rng);
  const pdhKey = generateEcKeyPair(rng);
  const body = (usage: number, algo: number, pub: typeof cekKey.pub) =>
    encodeSevCert({ apiMajor: 1, apiMinor: 55, usage, algo, pub });
  const cekAlgo = gen === "naples" ? Algo.RSA_SHA256 : Algo.RSA_SHA384;
  const cek = signSevCertRsa(body(Usage.CEK, Algo.ECDSA_SHA256, cekKey.pub), 1, Usage.ASK, ask, cekAlgo, rng);
  const oca = signSevCertEcdsa(body(Usage.OCA, Algo.ECDSA_SHA256, ocaKey.pub), 1, Usage.OCA, ocaKey.d);
  const pek = signSevCertEcdsa(
    signSevCertEcdsa(body(Usage.PEK, Algo.ECDSA_SHA256, pekKey.pub), 1, Usage.OCA, ocaKey.d),
    2,
    Usage.CEK,
    cekKey.d,
  );
  const pdh = signSevCertEcdsa(body(Usage.PDH, Algo.ECDH_SHA256, pdhKey.pub), 1, Usage.PEK, pekKey.d);
  return { ark: builtinEmulated(gen, "ark"), ask: builtinEmulated(gen, "ask"), cek, oca, pek, pdh };
}

/** A deterministic PRNG for sampling bit positions (mulberry32). */
export function sampler(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}
