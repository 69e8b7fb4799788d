import { createHash, createHmac } from "node:crypto";

export type HashName = "sha256" | "sha384";

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function sha384(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha384");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function digest(name: HashName, ...parts: Uint8Array[]): Uint8Array {
  return name === "sha256" ? sha256(...parts) : sha384(...parts);
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
