/**
 * Fuzzing the owner-side binary formats: the launch session buffer (src/crypto/session.ts), the secret packet header
 * (src/crypto/packet.ts), the secret table the guest reads (src/owner/secret.ts) and the OVMF footer table
 * (src/measure/ovmf-footer.ts). Proves, for arbitrary bytes and for real OVMF tails from test/fixtures/measure with
 * random bit flips, truncations and extensions, that each parser returns or throws a CiphervisorError with a code in
 * ERROR_CODES; that results are bounded by the input (no more footer entries than 18-byte trailers fit, no more
 * secret bytes than were given); and that every serializer round-trips: parseSession(encodeSession(x)) = x,
 * parsePacketHeader(encodePacketHeader(x)) = x, decodeSecretTable(encodeSecretTable(x)) = x, and a footer table built
 * from entries parses back to those entries. Budget and seed: test/fuzz/support.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { encodePacketHeader, PACKET_HEADER_SIZE, parsePacketHeader } from "../../src/crypto/packet.ts";
import { encodeSession, parseSession, SESSION_SIZE } from "../../src/crypto/session.ts";
import { concat, guidToBytes, u16le } from "../../src/lib/bytes.ts";
import { OvmfGuid, parseOvmfFooter } from "../../src/measure/ovmf-footer.ts";
import { decodeSecretTable, encodeSecretTable, MAX_SECRET_PAYLOAD } from "../../src/owner/secret.ts";
import { bytes, fixtureBytes, mutated, mutatedRange, params, typed } from "./support.ts";

const fixed = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

describe("fuzz: session buffers and packet headers (crypto/session.ts, crypto/packet.ts)", () => {
  it("arbitrary bytes parse or throw MALFORMED", () => {
    fc.assert(
      fc.property(fc.oneof(bytes(512), fixed(SESSION_SIZE), fixed(PACKET_HEADER_SIZE)), (b) => {
        for (const parse of [parseSession, parsePacketHeader]) {
          const out = typed(() => parse(b));
          if (!out.ok) assert.equal(out.code, "MALFORMED");
        }
      }),
      params(400),
    );
  });

  it("parseSession(encodeSession(x)) = x, and encodeSession(parseSession(b)) = b", () => {
    const session = fc.record({
      nonce: fixed(16),
      wrapTk: fixed(32),
      wrapIv: fixed(16),
      wrapMac: fixed(32),
      policyMac: fixed(32),
    });
    fc.assert(
      fc.property(session, fixed(SESSION_SIZE), (x, b) => {
        assert.deepEqual(parseSession(encodeSession(x)), { ...x });
        assert.deepEqual(encodeSession(parseSession(b)), b);
      }),
      params(300),
    );
  });

  it("parsePacketHeader(encodePacketHeader(x)) = x, and back", () => {
    const header = fc.record({ flags: fc.nat(0xffffffff), iv: fixed(16), mac: fixed(32) });
    fc.assert(
      fc.property(header, fixed(PACKET_HEADER_SIZE), (x, b) => {
        assert.deepEqual(parsePacketHeader(encodePacketHeader(x)), { ...x });
        assert.deepEqual(encodePacketHeader(parsePacketHeader(b)), b);
      }),
      params(300),
    );
  });
});

const guid = fc.uuid({ version: [1, 2, 3, 4, 5] });
const entries = fc.array(fc.record({ guid, data: fc.uint8Array({ maxLength: 300 }) }), {
  minLength: 1,
  maxLength: 8,
});

describe("fuzz: secret tables (owner/secret.ts)", () => {
  it("decodeSecretTable(encodeSecretTable(x)) = x", () => {
    fc.assert(
      fc.property(entries, (x) => {
        const table = encodeSecretTable(x);
        assert.ok(table.length <= MAX_SECRET_PAYLOAD && table.length % 16 === 0);
        assert.deepEqual(
          decodeSecretTable(table),
          x.map((e) => ({ guid: e.guid, data: e.data })),
        );
      }),
      params(300),
    );
  });

  it("arbitrary bytes and damaged real tables decode or throw MALFORMED, never more data than given", () => {
    const damaged = entries.chain((x) => {
      const t = encodeSecretTable(x);
      return fc.oneof(mutated(t), mutatedRange(t, 0, Math.min(t.length, 64)));
    });
    fc.assert(
      fc.property(fc.oneof(bytes(2048), damaged), (b) => {
        const out = typed(() => decodeSecretTable(b));
        if (!out.ok) return assert.equal(out.code, "MALFORMED");
        const total = out.value.reduce((n, e) => n + 20 + e.data.length, 20);
        assert.ok(total <= b.length, "entries fit in the table");
      }),
      params(400),
    );
  });
});

/** An image whose tail carries a footer table with `list`, nearest the end first (the order they are read). */
function imageWith(list: { guid: string; data: Uint8Array }[], lead: Uint8Array): Uint8Array {
  const body = list
    .slice()
    .reverse()
    .map((e) => concat(e.data, u16le(e.data.length + 18), guidToBytes(e.guid)));
  const tableSize = body.reduce((n, b) => n + b.length, 0) + 18;
  return concat(lead, ...body, u16le(tableSize), guidToBytes(OvmfGuid.FOOTER_TABLE), new Uint8Array(32));
}

const KNOWN = [
  OvmfGuid.SEV_ES_RESET_BLOCK,
  OvmfGuid.SEV_SECRET_AREA,
  OvmfGuid.SEV_KERNEL_HASHES_AREA,
  OvmfGuid.SNP_METADATA,
  OvmfGuid.TDX_METADATA,
];
const ovmfEntry = fc.record({
  guid: fc.oneof(fc.constantFrom(...KNOWN), guid),
  data: fc.uint8Array({ minLength: 8, maxLength: 64 }),
});

describe("fuzz: OVMF footer tables (measure/ovmf-footer.ts)", () => {
  const tails = [
    fixtureBytes("measure/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9"),
    fixtureBytes("measure/sev-snp-measure/ovmf_AmdSev_suffix.bin"),
  ];

  it("arbitrary bytes, and real OVMF tails damaged anywhere or in the footer, parse or throw MALFORMED", () => {
    const footerArea = tails.map((t) => mutatedRange(t, t.length - 512, t.length, 6));
    fc.assert(
      fc.property(fc.oneof(bytes(), ...tails.map((t) => mutated(t)), ...footerArea), (b) => {
        const out = typed(() => parseOvmfFooter(b));
        if (!out.ok) return assert.equal(out.code, "MALFORMED");
        const f = out.value;
        assert.ok(f.tableSize <= b.length);
        assert.ok(f.entries.length * 18 <= f.tableSize, "no more entries than trailers fit");
        for (const e of f.entries) assert.ok(e.offset >= 0 && e.offset + e.data.length <= b.length);
      }),
      params(400),
    );
  });

  it("a table built from entries parses back to them, and the first known entry of each GUID wins", () => {
    fc.assert(
      fc.property(fc.array(ovmfEntry, { maxLength: 10 }), fc.uint8Array({ maxLength: 64 }), (list, lead) => {
        const f = parseOvmfFooter(imageWith(list, lead));
        assert.equal(f.present, true);
        assert.deepEqual(
          f.entries.map((e) => ({ guid: e.guid, data: e.data })),
          list.map((e) => ({ guid: e.guid, data: e.data })),
        );
        const reset = list.find((e) => e.guid === OvmfGuid.SEV_ES_RESET_BLOCK);
        const eip = reset && new DataView(reset.data.buffer, reset.data.byteOffset).getUint32(0, true);
        assert.equal(f.sevEsResetEip, eip);
      }),
      params(300),
    );
  });
});
