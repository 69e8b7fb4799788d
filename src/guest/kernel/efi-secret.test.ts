import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { encodeSecretTable } from "../../owner/secret.ts";
import { efiSecretMessages, MAX_SECRET_LINES } from "./efi-secret.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const guid = (i: number) => `736869e5-84f0-4973-92ec-${i.toString(16).padStart(12, "0")}`;

/** The table as it sits in the 3 KiB secret area: the owner's padded table, then zeros. */
function area(table: Uint8Array): Uint8Array {
  const a = new Uint8Array(0xc00);
  a.set(table);
  return a;
}

describe("the guest's efi_secret reader", () => {
  it("reads what the owner toolkit encodes: one line per entry, in order, with the data's SHA-256", () => {
    const entries = [
      { guid: guid(1), data: new TextEncoder().encode("first") },
      { guid: guid(2), data: new Uint8Array(0) },
      { guid: guid(3), data: new Uint8Array(300).fill(0xa5) },
    ];
    assert.deepEqual(
      efiSecretMessages(area(encodeSecretTable(entries))),
      entries.map((e) => `efi_secret: secret ${e.guid} (${e.data.length} bytes) sha256 ${sha(e.data)}`),
    );
  });

  it("an area without the table's GUID (no secret injected) gives no messages", () => {
    assert.deepEqual(efiSecretMessages(new Uint8Array(0xc00)), []);
    assert.deepEqual(efiSecretMessages(new Uint8Array(8)), []);
  });

  it("a malformed table is named, never half-read", () => {
    const good = encodeSecretTable([{ guid: guid(1), data: new Uint8Array(4) }]);
    const longer = area(good);
    new DataView(longer.buffer).setUint32(16, 0xc01, true);
    assert.match(efiSecretMessages(longer)[0]!, /malformed secret table: length 3073 outside 20\.\.3072/);
    const badEntry = area(good);
    new DataView(badEntry.buffer).setUint32(36, 7, true);
    assert.deepEqual(efiSecretMessages(badEntry), [
      "efi_secret: malformed secret table: entry at offset 20 has length 7",
    ]);
    const cut = area(good);
    new DataView(cut.buffer).setUint32(16, 30, true);
    assert.match(efiSecretMessages(cut)[0]!, /truncated entry at offset 20/);
  });

  it(`prints at most ${MAX_SECRET_LINES} entries and counts the rest`, () => {
    const entries = Array.from({ length: MAX_SECRET_LINES + 3 }, (_, i) => ({
      guid: guid(i),
      data: new Uint8Array(1),
    }));
    const lines = efiSecretMessages(area(encodeSecretTable(entries)));
    assert.equal(lines.length, MAX_SECRET_LINES + 1);
    assert.equal(lines.at(-1), "efi_secret: … and 3 more secrets");
  });
});
