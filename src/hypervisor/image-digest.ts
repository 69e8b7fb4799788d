/**
 * The host's SHA-256 of a launch image (the firmware a VM boots), computed once per image content rather than at
 * every launch and twice within one. The host needs it twice per launch: as the image's digest in `LaunchInputs`
 * (what it tells the guest owner it loaded) and as the first bytes of its own record of the launch digest,
 * SHA-256(firmware ‖ [hashes table] ‖ [VMSA × n]) (docs/sev-interface.md §8.1). One context that has absorbed the
 * image serves both: `copy()` it, then finish it or go on with the bytes measured after the image.
 *
 * The Secure Processor's own measurement is not this: LAUNCH_UPDATE_DATA still hashes every byte it is handed
 * (src/sev/handlers/launch.ts), so the launch digest the firmware MACs is computed independently of the host.
 *
 * Caching is keyed by the image buffer and safe against a caller changing that buffer between launches: each
 * entry keeps a private copy of the bytes it hashed and is used only while the buffer still equals it (a memcmp,
 * ~20 × cheaper than SHA-256 over the same bytes). The entry lives as long as the buffer does.
 */
import { createHash, type Hash } from "node:crypto";

interface Entry {
  /** The bytes `state` absorbed, copied: the buffer itself may change after it was hashed. */
  readonly bytes: Buffer;
  /** SHA-256 after exactly `bytes`; never finished, only copied. */
  readonly state: Hash;
}

const entries = new WeakMap<Uint8Array, Entry>();

/** A fresh SHA-256 context that has absorbed exactly `image`, for the caller to finish or extend. */
export function imageHash(image: Uint8Array): Hash {
  const hit = entries.get(image);
  if (hit?.bytes.equals(image)) return hit.state.copy();
  const bytes = Buffer.from(image);
  const state = createHash("sha256").update(bytes);
  entries.set(image, { bytes, state });
  return state.copy();
}
