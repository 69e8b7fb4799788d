import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { VmsaIntegrityStore } from "./trusted-memory.ts";

describe("VmsaIntegrityStore (trusted memory, docs/sev-interface.md §12.1)", () => {
  it("accepts exactly the recorded ciphertext for that ASID and address", () => {
    const store = new VmsaIntegrityStore();
    const page = seededRandom("vmsa").bytes(4096);
    assert.equal(store.check(1, 0x5000, page), false, "nothing recorded yet");
    store.record(1, 0x5000, page);
    assert.ok(store.has(1, 0x5000));
    assert.ok(store.check(1, 0x5000, page.slice()));
    assert.equal(store.check(2, 0x5000, page), false, "another ASID");
    assert.equal(store.check(1, 0x6000, page), false, "another address");
    const flipped = page.slice();
    flipped[4095]! ^= 0x80;
    assert.equal(store.check(1, 0x5000, flipped), false);
    assert.equal(store.check(1, 0x5000, page.subarray(0, 4080)), false);
  });

  it("keeps its own copy, replaces older records, and forgets an ASID", () => {
    const store = new VmsaIntegrityStore();
    const page = new Uint8Array(4096);
    store.record(3, 0x1000, page);
    page[0] = 1; // the caller's buffer changing later must not change the record
    assert.equal(store.check(3, 0x1000, page), false);
    store.record(3, 0x1000, page);
    assert.ok(store.check(3, 0x1000, page));
    assert.equal(store.check(3, 0x1000, new Uint8Array(4096)), false, "an older VMSA is a replay");
    store.record(4, 0x1000, page);
    store.forget(3);
    assert.equal(store.has(3, 0x1000), false);
    assert.ok(store.has(4, 0x1000));
    assert.throws(() => store.record(3, 0x1000, new Uint8Array(16)), RangeError);
  });
});
