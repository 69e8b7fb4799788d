/**
 * One-off generator of the emulated AMD root of trust: an ARK and an ASK per CPU generation, in AMD's exact
 * binary format (RSA-2048/SHA-256 for naples, RSA-4096/SHA-384 for rome and later) with key ids that cannot be
 * mistaken for AMD's. Private keys go to src/sev/manufacturer/emulated-amd-keys.json (the emulated "AMD", which
 * signs CEKs); the public certificates go to src/certs/builtin/emulated/<generation>/.
 *
 * Run: `npx tsx scripts/gen-emulated-roots.ts`. Keys already in the JSON file are kept (their certificates come out
 * byte for byte the same, the salts being seeded); only a generation without keys gets new ones, as Turin did when
 * it joined the emulated fleet. Delete the file to replace the whole emulated root, which invalidates every chain
 * exported before.
 */
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { encodeAmdCert } from "../src/certs/amd-cert.ts";
import { sha256 } from "../src/crypto/hash.ts";
import { seededRandom } from "../src/crypto/random.ts";
import { rsaKeyPairFromPem } from "../src/crypto/rsa.ts";

const generations = { naples: 2048, rome: 4096, milan: 4096, genoa: 4096, turin: 4096 } as const;
const keysFile = "src/sev/manufacturer/emulated-amd-keys.json";
const keys: Record<string, { ark: string; ask: string }> = existsSync(keysFile)
  ? JSON.parse(readFileSync(keysFile, "utf8"))
  : {};
for (const [gen, bits] of Object.entries(generations)) {
  if (keys[gen]) continue;
  const pem = () =>
    generateKeyPairSync("rsa", { modulusLength: bits, publicExponent: 65537 }).privateKey.export({
      format: "pem",
      type: "pkcs8",
    }) as string;
  keys[gen] = { ark: pem(), ask: pem() };
}
writeFileSync(keysFile, `${JSON.stringify(keys, null, 2)}\n`);
for (const gen of Object.keys(generations)) {
  const k = keys[gen]!;
  const ark = rsaKeyPairFromPem(k.ark);
  const ask = rsaKeyPairFromPem(k.ask);
  const arkId = emulatedKeyId(gen, "ARK");
  const askId = emulatedKeyId(gen, "ASK");
  const rng = seededRandom(`emulated-root-${gen}`);
  const arkCert = encodeAmdCert({ keyId: arkId, certifyingId: arkId, keyUsage: 0x00, key: ark }, ark, rng);
  const askCert = encodeAmdCert({ keyId: askId, certifyingId: arkId, keyUsage: 0x13, key: ask }, ark, rng);
  mkdirSync(`src/certs/builtin/emulated/${gen}`, { recursive: true });
  writeFileSync(`src/certs/builtin/emulated/${gen}/ark.cert`, arkCert);
  writeFileSync(`src/certs/builtin/emulated/${gen}/ask.cert`, askCert);
}

/** Key ids start with the ASCII bytes "CVEMU" so nobody mistakes them for AMD's. */
function emulatedKeyId(gen: string, role: string): Uint8Array {
  const id = sha256(new TextEncoder().encode(`ciphervisor emulated ${role} ${gen}`)).slice(0, 16);
  id.set(new TextEncoder().encode("CVEMU"), 0);
  return id;
}
