/**
 * `imageHash` (image-digest.ts): the host's SHA-256 of a launch image, cached per buffer — and only while the buffer
 * still holds the bytes that were hashed.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { imageHash } from "./image-digest.ts";

const sha = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

describe("imageHash", () => {
  it("is SHA-256 of the image, and each call a fresh context the caller may extend", () => {
    const image = seededRandom("image-digest").bytes(3 * 4096 + 16);
    const tail = new Uint8Array([1, 2, 3]);
    assert.equal(imageHash(image).update(tail).digest("hex"), sha(image, tail));
    // The cached state was copied, not extended: a second call starts right after the image again.
    assert.equal(imageHash(image).digest("hex"), sha(image));
  });

  it("follows the bytes when the same buffer is changed in place", () => {
    const image = seededRandom("image-digest-mutated").bytes(8192);
    const before = imageHash(image).digest("hex");
    image[5000]! ^= 0x01;
    const after = imageHash(image).digest("hex");
    assert.notEqual(after, before);
    assert.equal(after, sha(image));
  });

  it("gives equal images in different buffers the same digest", () => {
    const a = seededRandom("image-digest-twin").bytes(4096);
    assert.equal(imageHash(a.slice()).digest("hex"), imageHash(a).digest("hex"));
  });
});
