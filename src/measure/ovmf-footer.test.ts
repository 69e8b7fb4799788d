import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CiphervisorError, isCiphervisorError } from "../errors.ts";
import { concat, guidToBytes, u16le, u32le } from "../lib/bytes.ts";
import { OvmfGuid, parseOvmfFooter, requireSevEsResetEip } from "./ovmf-footer.ts";

const fixture = (p: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/measure/${p}`, import.meta.url)));
const SEVCTL_OVMF = fixture("sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");
const SNP_MEASURE_OVMF = fixture("sev-snp-measure/ovmf_AmdSev_suffix.bin");

/** An image whose tail carries a footer table with `entries` (listed in table order, i.e. nearest the end first). */
function imageWith(
  entries: [string, Uint8Array][],
  opts: { stray?: number; sizeDelta?: number } = {},
): Uint8Array {
  const body = entries
    .slice()
    .reverse()
    .map(([guid, data]) => concat(data, u16le(data.length + 18), guidToBytes(guid)));
  const stray = new Uint8Array(opts.stray ?? 0).fill(0xaa);
  const tableSize = stray.length + body.reduce((n, b) => n + b.length, 0) + 18 + (opts.sizeDelta ?? 0);
  return concat(
    new Uint8Array(64).fill(0xff),
    stray,
    ...body,
    u16le(tableSize),
    guidToBytes(OvmfGuid.FOOTER_TABLE),
    new Uint8Array(32),
  );
}

function assertMalformed(image: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseOvmfFooter(image),
    (e: unknown) => isCiphervisorError(e, "MALFORMED") && pattern.test(e.message),
  );
}

describe("OVMF footer table (docs/sev-interface.md §8.4)", () => {
  it("reads the sevctl trimmed OVMF (edk2-ovmf 20220126, el9)", () => {
    const f = parseOvmfFooter(SEVCTL_OVMF);
    assert.equal(f.present, true);
    assert.equal(f.tableSize, 114);
    assert.equal(f.sevEsResetEip, 0x0080b004);
    assert.deepEqual(f.secretArea, { base: 0x0080c000, size: 0xc00 });
    assert.deepEqual(f.kernelHashesArea, { base: 0x0080cc00, size: 0x400 });
    assert.equal(f.snpMetadataOffset, undefined);
    assert.equal(f.tdxMetadataOffset, 0x770);
    assert.equal(f.entries.length, 4);
    assert.equal(f.entries[0]?.guid, OvmfGuid.SEV_ES_RESET_BLOCK);
  });

  it("reads the edk2-stable202405 AmdSevX64 suffix (sev-snp-measure)", () => {
    const f = parseOvmfFooter(SNP_MEASURE_OVMF);
    assert.equal(f.tableSize, 136);
    assert.equal(f.sevEsResetEip, 0x0080b004);
    assert.deepEqual(f.secretArea, { base: 0x00810000, size: 0xc00 });
    assert.deepEqual(f.kernelHashesArea, { base: 0x00810c00, size: 0x400 });
    assert.equal(f.snpMetadataOffset, 0x554);
    assert.equal(f.tdxMetadataOffset, 0x9d0);
    // Each entry's data offset points at its bytes in the image.
    for (const e of f.entries)
      assert.deepEqual(SNP_MEASURE_OVMF.slice(e.offset, e.offset + e.data.length), e.data);
  });

  it("treats an image without the footer GUID as having no table, which SEV-ES refuses", () => {
    for (const image of [new Uint8Array(4096), new Uint8Array(10), SEVCTL_OVMF.slice(0, 4000)]) {
      const f = parseOvmfFooter(image);
      assert.deepEqual(f, { present: false, tableSize: 0, entries: [] });
      assert.throws(
        () => requireSevEsResetEip(f),
        (e: unknown) => isCiphervisorError(e, "INVALID_INPUT") && /no OVMF footer table/.test(e.message),
      );
    }
    const noReset = parseOvmfFooter(imageWith([[OvmfGuid.SEV_SECRET_AREA, concat(u32le(1), u32le(2))]]));
    assert.throws(
      () => requireSevEsResetEip(noReset),
      (e: unknown) => isCiphervisorError(e, "INVALID_INPUT") && /no SEV-ES reset block/.test(e.message),
    );
  });

  it("parses a synthetic table and keeps unknown entries", () => {
    const unknown = "11111111-2222-3333-4444-555555555555";
    const f = parseOvmfFooter(
      imageWith([
        [OvmfGuid.SEV_ES_RESET_BLOCK, u32le(0x12345678)],
        [unknown, new Uint8Array([1, 2, 3])],
        [OvmfGuid.SEV_KERNEL_HASHES_AREA, concat(u32le(0x9000), u32le(0x400))],
      ]),
    );
    assert.equal(f.sevEsResetEip, 0x12345678);
    assert.deepEqual(f.kernelHashesArea, { base: 0x9000, size: 0x400 });
    assert.deepEqual(
      f.entries.map((e) => e.guid),
      [OvmfGuid.SEV_ES_RESET_BLOCK, unknown, OvmfGuid.SEV_KERNEL_HASHES_AREA],
    );
    // A table with no entries but the footer itself is legal.
    assert.deepEqual(parseOvmfFooter(imageWith([])).entries, []);
  });

  it("refuses bad sizes with MALFORMED", () => {
    const tail = (image: Uint8Array, sizeAtFooter: number) => {
      const copy = image.slice();
      copy.set(u16le(sizeAtFooter), copy.length - 32 - 18);
      return copy;
    };
    assertMalformed(tail(SEVCTL_OVMF, 17), /smaller than the 18-byte footer entry/);
    assertMalformed(tail(SEVCTL_OVMF.slice(4000), 80), /runs past the start/);
    assertMalformed(imageWith([[OvmfGuid.SEV_ES_RESET_BLOCK, u32le(1)]], { stray: 5 }), /5 stray bytes/);
    assertMalformed(imageWith([[OvmfGuid.SEV_ES_RESET_BLOCK, u32le(1)]], { sizeDelta: -2 }), /has size 22/);
    assertMalformed(
      imageWith([[OvmfGuid.SEV_ES_RESET_BLOCK, new Uint8Array(2)]]),
      /reset block entry holds 2 bytes/,
    );
    assertMalformed(imageWith([[OvmfGuid.SEV_SECRET_AREA, u32le(1)]]), /secret area entry holds 4 bytes/);
    // An entry whose size field is below the 18-byte trailer.
    const bad = SEVCTL_OVMF.slice();
    const firstEntrySize = bad.length - 32 - 18 - 18;
    bad.set(u16le(3), firstEntrySize);
    assertMalformed(bad, /has size 3/);
  });

  it("never throws anything but MALFORMED for random corruption and truncation of real tails", () => {
    const images = [SEVCTL_OVMF, SNP_MEASURE_OVMF];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 220 }), fc.integer({ min: 0, max: 255 })), {
          maxLength: 6,
        }),
        fc.integer({ min: 0, max: 4096 }),
        (which, edits, keep) => {
          const src = images[which]!;
          const image = src.slice(src.length - Math.max(keep, 0));
          for (const [fromEnd, value] of edits) {
            if (fromEnd <= image.length) image[image.length - fromEnd] = value;
          }
          try {
            parseOvmfFooter(image);
          } catch (e) {
            if (!(e instanceof CiphervisorError) || e.code !== "MALFORMED") throw e;
          }
        },
      ),
      { numRuns: 400, seed: 20240605 },
    );
  });
});
