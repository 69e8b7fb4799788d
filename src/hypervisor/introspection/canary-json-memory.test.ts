/**
 * `demo hypervisor-view --json` keeps every GHCB, deflated, until the save areas are written. 100,000 exits once
 * held 1.6 GB of RSS because each kept page (≈ 60 bytes) was a view of zlib's 16 KiB output buffer: what a kept
 * page pins is checked here as a size.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { keptDeflated } from "./canary-json.ts";

describe("the streamed hypervisor-view document", () => {
  it("a kept GHCB pins at most a pool slab, not zlib's output buffer, and inflates back", () => {
    const ghcb = new Uint8Array(4096);
    ghcb.set([0x07, 0, 0, 0, 0x72, 0], 0x390);
    const kept = keptDeflated(ghcb);
    assert.ok(kept.length < 200, `deflated to ${kept.length} bytes`);
    assert.ok(kept.buffer.byteLength <= Buffer.poolSize, `pins ${kept.buffer.byteLength} bytes`);
    assert.ok(deflateRawSync(ghcb).buffer.byteLength > Buffer.poolSize, "what zlib hands back pins more");
    assert.deepEqual(new Uint8Array(inflateRawSync(kept)), ghcb);
  });
});
