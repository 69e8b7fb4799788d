/**
 * `ecdh` (ec.ts) loads each private scalar into an ECDH context once; the shared secret must still be the one of
 * the scalar the buffer holds now (docs/sev-interface.md §9.2).
 */
import assert from "node:assert/strict";
import { createECDH } from "node:crypto";
import { describe, it } from "node:test";
import { ecdh, generateEcKeyPair } from "./ec.ts";
import { seededRandom } from "./random.ts";

/** Z by a context created for this call alone. */
function reference(d: Uint8Array, peer: { x: Uint8Array; y: Uint8Array }): Uint8Array {
  const e = createECDH("secp384r1");
  e.setPrivateKey(d);
  return new Uint8Array(e.computeSecret(Buffer.concat([Buffer.from([4]), peer.x, peer.y])));
}

describe("ecdh with a long-lived private key", () => {
  const rng = seededRandom("ecdh-context");
  const a = generateEcKeyPair(rng);
  const b = generateEcKeyPair(rng);
  const c = generateEcKeyPair(rng);

  it("gives the same Z as a fresh context, for every peer, and symmetric", () => {
    assert.deepEqual(ecdh(a.d, b.pub), reference(a.d, b.pub));
    assert.deepEqual(ecdh(a.d, c.pub), reference(a.d, c.pub));
    assert.deepEqual(ecdh(a.d, b.pub), ecdh(b.d, a.pub));
  });

  it("follows the scalar when the same buffer is overwritten with another key", () => {
    const d = a.d.slice();
    const before = ecdh(d, b.pub);
    d.set(c.d);
    const after = ecdh(d, b.pub);
    assert.notDeepEqual(after, before);
    assert.deepEqual(after, reference(c.d, b.pub));
  });
});
