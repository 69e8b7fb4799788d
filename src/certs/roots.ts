/**
 * Built-in roots of trust: AMD's published ARK and ASK per CPU generation, and ciphervisor's emulated ones
 * (docs/sev-interface.md §11.2, §11.3, §15 pitfall 24). A verifier never trusts the ARK a platform sends: it picks one of
 * these, and the platform's ARK must equal it.
 *
 * The certificates ship as files next to this module (`builtin/<trust>/<generation>/{ark,ask}.cert`, provenance in
 * `builtin/README.md`) and are read relative to it, so the package works from any working directory. Reading
 * packaged, immutable data is the one file access `certs/` allows itself.
 *
 * @example
 * ```ts
 * const rome = loadBuiltinRoot("amd", "rome");
 * amdGenerationOfArkKeyId(rome.ark.keyId); // "rome"
 * ```
 */
import { readFileSync } from "node:fs";
import { CiphervisorError } from "../errors.ts";
import { toHex } from "../lib/bytes.ts";
import { type AmdCert, parseAmdCert } from "./amd-cert.ts";

/** CPU generations with AMD roots, oldest first (docs/architecture.md §6 "Names"). */
export const GENERATIONS = ["naples", "rome", "milan", "genoa", "turin"] as const;
export type Generation = (typeof GENERATIONS)[number];

/** `amd`: AMD's real roots, for real hardware. `emulated`: the synthetic root of the emulated fleet. */
export const TRUST_SETS = ["amd", "emulated"] as const;
export type TrustSet = (typeof TRUST_SETS)[number];

/**
 * AMD's ARK and ASK key ids per generation (docs/sev-interface.md §11.2 table), as lowercase hex. sev-tool pins the ARK
 * key id the same way; the built-in files are checked against this table every time they are loaded.
 */
export const AMD_KEY_IDS: Readonly<Record<Generation, { readonly ark: string; readonly ask: string }>> = {
  naples: { ark: "1bb987c359494606b174945601c9ea5b", ask: "e139970cfc464377ae61b289e2f9e96e" },
  rome: { ark: "e6002122fb58419399d15fee7b131351", ask: "c6cbcf145b3146f498e40ecb4ad4fded" },
  milan: { ark: "94c38e4177d0479292a7ae671d083fb6", ask: "73478c05cc174bfeb06e718fa75dc3c8" },
  genoa: { ark: "9f9d4a8fe761456599f6946c4c010f3a", ask: "acbb4ad21acc436fb3e932f812cd01b0" },
  turin: { ark: "d05c3a8bde484904b49552422ceb3942", ask: "15051693f7304d65a527b4a7f3f7cb77" },
};

/** Generations for which `scripts/gen-emulated-roots.ts` made an emulated root. */
export const EMULATED_GENERATIONS: readonly Generation[] = ["naples", "rome", "milan", "genoa", "turin"];

/** Emulated key ids begin with ASCII "CVEMU" so they can never be mistaken for AMD's (docs/sev-interface.md §15 pitfall 24). */
const EMULATED_PREFIX = new TextEncoder().encode("CVEMU");

/** A pinned ARK with the ASK it certified. */
export interface TrustedRoot {
  trust: TrustSet;
  generation: Generation;
  ark: AmdCert;
  ask: AmdCert;
}

export function isGeneration(s: string): s is Generation {
  return (GENERATIONS as readonly string[]).includes(s);
}

/** True for a key id of ciphervisor's emulated root. */
export function isEmulatedKeyId(keyId: Uint8Array): boolean {
  return EMULATED_PREFIX.every((b, i) => keyId[i] === b);
}

/** The AMD generation whose pinned ARK key id is `keyId`, or undefined for any other id. */
export function amdGenerationOfArkKeyId(keyId: Uint8Array): Generation | undefined {
  const hex = toHex(keyId);
  return GENERATIONS.find((g) => AMD_KEY_IDS[g].ark === hex);
}

/** A one-line name for a root, e.g. "AMD rome root (ARK e6002122…)". */
export function describeRoot(root: TrustedRoot): string {
  const who = root.trust === "amd" ? "AMD" : "emulated";
  return `${who} ${root.generation} root (ARK ${toHex(root.ark.keyId).slice(0, 8)}…)`;
}

function readBuiltin(trust: TrustSet, generation: Generation, name: "ark" | "ask"): Uint8Array {
  const url = new URL(`./builtin/${trust}/${generation}/${name}.cert`, import.meta.url);
  try {
    return new Uint8Array(readFileSync(url));
  } catch (e) {
    throw new CiphervisorError(
      "INTERNAL",
      `built-in ${trust} ${generation} ${name.toUpperCase()} is missing from this installation`,
      { cause: e },
    );
  }
}

/**
 * Loads the built-in root of one generation and checks it is the one this code pins: AMD key ids from the §11.2
 * table, emulated key ids with the "CVEMU" prefix, and ASK.certifying_id = ARK.key_id. Signatures are checked by
 * the chain verifier, which treats the ARK self-signature as the first link.
 *
 * @throws CiphervisorError NOT_FOUND when the trust set has no root for the generation,
 *   INTERNAL when a packaged file is missing or is not the pinned root.
 */
export function loadBuiltinRoot(trust: TrustSet, generation: Generation): TrustedRoot {
  if (trust === "emulated" && !EMULATED_GENERATIONS.includes(generation)) {
    throw new CiphervisorError(
      "NOT_FOUND",
      `there is no emulated ${generation} root (emulated roots: ${EMULATED_GENERATIONS.join(", ")})`,
    );
  }
  const what = (n: string) => `built-in ${trust} ${generation} ${n}`;
  const ark = parseAmdCert(readBuiltin(trust, generation, "ark"), what("ARK"));
  const ask = parseAmdCert(readBuiltin(trust, generation, "ask"), what("ASK"));
  const pinned =
    trust === "amd"
      ? toHex(ark.keyId) === AMD_KEY_IDS[generation].ark && toHex(ask.keyId) === AMD_KEY_IDS[generation].ask
      : isEmulatedKeyId(ark.keyId) && isEmulatedKeyId(ask.keyId);
  if (!pinned || toHex(ask.certifyingId) !== toHex(ark.keyId)) {
    throw new CiphervisorError(
      "INTERNAL",
      `${what("root")} does not carry the pinned key ids (corrupted installation?)`,
    );
  }
  return { trust, generation, ark, ask };
}

/** Every built-in root of a trust set, oldest generation first. */
export function loadBuiltinRoots(trust: TrustSet): TrustedRoot[] {
  const gens = trust === "amd" ? GENERATIONS : EMULATED_GENERATIONS;
  return gens.map((g) => loadBuiltinRoot(trust, g));
}
