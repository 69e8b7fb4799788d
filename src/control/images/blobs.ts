/**
 * Where image bytes live: content-addressed by SHA-256, one blob per distinct content however many names point at
 * it (the catalog's records are in the inventory). A blob is written to a temporary file and renamed into place,
 * so a reader never sees half an image, and it is checked against its address on every read, so bytes changed on
 * disk are refused rather than booted.
 *
 * @example
 * ```ts
 * const blobs = fileBlobStore(join(dataDir, "images"));
 * const sha = await blobs.put(bytes); // the same bytes again: the same address, nothing written
 * const back = await blobs.get(sha);
 * ```
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256 } from "../../crypto/hash.ts";
import { CiphervisorError } from "../../errors.ts";
import { toHex } from "../../lib/bytes.ts";

export interface BlobStore {
  /** Stores `bytes` under their SHA-256 (hex) and returns it; `created` is false when the blob was already there. */
  put(bytes: Uint8Array): Promise<{ sha256: string; created: boolean }>;
  /** The bytes of a blob; NOT_FOUND when absent, MALFORMED when they no longer hash to their address. */
  get(sha256: string): Promise<Uint8Array>;
  has(sha256: string): Promise<boolean>;
  /** Removes a blob (absent: nothing to do). */
  delete(sha256: string): Promise<void>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function address(sha: string): string {
  if (!SHA256_HEX.test(sha)) throw new CiphervisorError("INVALID_INPUT", "a blob address is 64 hex digits");
  return sha;
}

function verified(sha: string, bytes: Uint8Array): Uint8Array {
  if (toHex(sha256(bytes)) !== sha) {
    throw new CiphervisorError(
      "MALFORMED",
      `the stored image ${sha} no longer matches its SHA-256; re-upload it`,
      {
        details: { sha256: sha },
      },
    );
  }
  return bytes;
}

function missing(sha: string): CiphervisorError {
  return new CiphervisorError("NOT_FOUND", `no stored image has SHA-256 ${sha}`, {
    details: { sha256: sha },
  });
}

function io(what: string, e: unknown): CiphervisorError {
  return new CiphervisorError("IO", `cannot ${what}: ${(e as Error).message}`, { cause: e });
}

/** Blobs as files `dir/sha256/<hex>` (the directory is created, mode 0700). */
export function fileBlobStore(dir: string): BlobStore {
  const root = join(dir, "sha256");
  const path = (sha: string) => join(root, address(sha));
  const has = async (sha: string) => {
    try {
      return (await stat(path(sha))).isFile();
    } catch {
      return false;
    }
  };
  return {
    has,
    async put(bytes) {
      const sha = toHex(sha256(bytes));
      if (await has(sha)) return { sha256: sha, created: false };
      const tmp = join(root, `.${sha}.${randomBytes(6).toString("hex")}.tmp`);
      try {
        await mkdir(root, { recursive: true, mode: 0o700 });
        await writeFile(tmp, bytes, { mode: 0o600, flag: "wx" });
        await rename(tmp, path(sha));
      } catch (e) {
        await rm(tmp, { force: true });
        throw io(`store image ${sha}`, e);
      }
      return { sha256: sha, created: true };
    },
    async get(sha) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(path(sha)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") throw missing(sha);
        throw io(`read image ${sha}`, e);
      }
      return verified(sha, bytes);
    },
    async delete(sha) {
      try {
        await rm(path(sha), { force: true });
      } catch (e) {
        throw io(`remove image ${sha}`, e);
      }
    },
  };
}

/** Blobs in memory (tests, and a node started without a data directory). */
export function memoryBlobStore(): BlobStore {
  const blobs = new Map<string, Uint8Array>();
  return {
    async has(sha) {
      return blobs.has(address(sha));
    },
    async put(bytes) {
      const sha = toHex(sha256(bytes));
      if (blobs.has(sha)) return { sha256: sha, created: false };
      blobs.set(sha, bytes.slice());
      return { sha256: sha, created: true };
    },
    async get(sha) {
      const b = blobs.get(address(sha));
      if (!b) throw missing(sha);
      return verified(sha, b.slice());
    },
    async delete(sha) {
      blobs.delete(address(sha));
    },
  };
}
