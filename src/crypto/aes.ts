/** AES primitives used by the SEV protocols (CTR for transport, ECB blocks for the memory engine). */
import { createCipheriv, createDecipheriv } from "node:crypto";

/**
 * AES-128-CTR with the whole 16-byte IV as the initial counter block, incremented big-endian (OpenSSL's CTR; the
 * mode sevctl, sev-tool and the firmware use for wrap_tk and packet payloads, docs/sev-interface.md §15 pitfall 6). Encryption and
 * decryption are the same operation.
 */
export function aes128Ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-128-ctr", key, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/** AES-128-ECB over whole 16-byte blocks, no padding. */
export function aes128EcbEncrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-128-ecb", key, null).setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

export function aes128EcbDecrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createDecipheriv("aes-128-ecb", key, null).setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}
