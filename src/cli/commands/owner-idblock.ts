/**
 * `ciphervisor owner id-block`: the guest owner signs what an SEV-SNP launch must be — the launch digest `owner
 * measure --mode snp` computes and the guest policy — into an ID block and its authentication information (SNP ABI
 * 56860, SNP_LAUNCH_FINISH). The host passes both to the firmware (QEMU's `id-block` / `id-auth`, this project's
 * `vm create --id-block --id-auth`); the firmware refuses a launch whose digest or policy differ, or whose signature
 * does not verify, and every report of the guest carries the ID key's digest (and the author key's) for the
 * owner's verifier to check. The keys are the owner's ECDSA P-384 private keys in PEM or DER (`openssl ecparam
 * -name secp384r1 -genkey`); they are read here and never sent anywhere.
 */
import { createPrivateKey } from "node:crypto";
import type { Command } from "commander";
import type { EcKeyPair } from "../../crypto/ec.ts";
import { CiphervisorError } from "../../errors.ts";
import { DEFAULT_SNP_POLICY } from "../../hypervisor/vm-spec.ts";
import { toHex } from "../../lib/bytes.ts";
import {
  encodeIdBlock,
  encodeSnpPublicKey,
  ID_AUTH_LAYOUT,
  ID_BLOCK_VERSION,
  SNP_PUBKEY_SIZE,
  signIdAuth,
  snpKeyDigest,
} from "../../sev/snp/id-block.ts";
import { parseHexFlag, parseIntFlag, parsePolicy, readInputFile } from "../args.ts";
import type { CliIo } from "../io.ts";

interface IdBlockFlags {
  measurement: string;
  idKey: string;
  authorKey?: string;
  policy?: string;
  familyId?: string;
  imageId?: string;
  guestSvn?: string;
  json?: boolean;
}

/** An ECDSA P-384 private key from a PEM or DER file, as the scalar and point the SNP structures carry. */
function readP384Key(path: string, flag: string): EcKeyPair {
  const bytes = readInputFile(path, flag);
  let jwk: { crv?: string; d?: string; x?: string; y?: string };
  try {
    const text = Buffer.from(bytes).toString("latin1");
    const key = text.includes("-----BEGIN")
      ? createPrivateKey(text)
      : createPrivateKey({ key: Buffer.from(bytes), format: "der", type: "pkcs8" });
    jwk = key.export({ format: "jwk" }) as typeof jwk;
  } catch {
    throw new CiphervisorError("INVALID_INPUT", `${flag} ${path} is not a PEM or DER private key`);
  }
  if (jwk.crv !== "P-384" || !jwk.d || !jwk.x || !jwk.y) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${flag} ${path} is not an ECDSA P-384 key (SNP signs with P-384)`,
    );
  }
  const b = (s: string) => new Uint8Array(Buffer.from(s, "base64url"));
  return { d: b(jwk.d), pub: { x: b(jwk.x), y: b(jwk.y) } };
}

export function registerOwnerIdBlock(owner: Command, io: CliIo): void {
  owner
    .command("id-block")
    .description(
      "sign an SEV-SNP ID block (expected launch digest and policy) for vm create --id-block --id-auth",
    )
    .requiredOption("--measurement <hex>", "the expected launch digest, 48 bytes (owner measure --mode snp)")
    .requiredOption("--id-key <file>", "the ID key: an ECDSA P-384 private key, PEM or DER")
    .option(
      "--author-key <file>",
      "an author key that signs the ID key (then vm create --author-key-enabled)",
    )
    .option(
      "--policy <n>",
      `the guest policy the VM launches with (default ${`0x${DEFAULT_SNP_POLICY.toString(16)}`})`,
    )
    .option("--family-id <hex>", "FAMILY_ID, 16 bytes (default zeros)")
    .option("--image-id <hex>", "IMAGE_ID, 16 bytes (default zeros)")
    .option("--guest-svn <n>", "GUEST_SVN (default 0)")
    .option("--json", "print JSON")
    .action((f: IdBlockFlags) => {
      const zeros = new Uint8Array(16);
      const block = encodeIdBlock({
        ld: parseHexFlag(f.measurement, "--measurement", 48),
        familyId: f.familyId === undefined ? zeros : parseHexFlag(f.familyId, "--family-id", 16),
        imageId: f.imageId === undefined ? zeros : parseHexFlag(f.imageId, "--image-id", 16),
        version: ID_BLOCK_VERSION,
        guestSvn: f.guestSvn === undefined ? 0 : parseIntFlag(f.guestSvn, "--guest-svn", 0, 0xffffffff),
        policy: BigInt(f.policy === undefined ? DEFAULT_SNP_POLICY : parsePolicy(f.policy)),
      });
      const idKey = readP384Key(f.idKey, "--id-key");
      const authorKey = f.authorKey === undefined ? undefined : readP384Key(f.authorKey, "--author-key");
      const auth = signIdAuth(block, idKey, authorKey);
      const out = {
        idBlock: Buffer.from(block).toString("base64"),
        idAuth: Buffer.from(auth).toString("base64"),
        idKeyDigest: toHex(snpKeyDigest(encodeSnpPublicKey(idKey.pub))),
        ...(authorKey
          ? {
              authorKeyDigest: toHex(
                snpKeyDigest(
                  auth.slice(ID_AUTH_LAYOUT.authorKey, ID_AUTH_LAYOUT.authorKey + SNP_PUBKEY_SIZE),
                ),
              ),
            }
          : {}),
        authorKeyEnabled: authorKey !== undefined,
      };
      if (f.json) {
        io.out(`${JSON.stringify(out, null, 2)}\n`);
        return;
      }
      io.out(`id-block: ${out.idBlock}\nid-auth: ${out.idAuth}\nid-key-digest: ${out.idKeyDigest}\n`);
      if (out.authorKeyDigest) io.out(`author-key-digest: ${out.authorKeyDigest}\n`);
    });
}
