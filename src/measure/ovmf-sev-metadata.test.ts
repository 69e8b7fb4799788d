import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type ErrorCode, isCiphervisorError } from "../errors.ts";
import { concat, guidToBytes, u16le, u32le } from "../lib/bytes.ts";
import { OvmfGuid, parseOvmfFooter } from "./ovmf-footer.ts";
import { parseSevMetadata, requireSevMetadata, SevMetadataSectionType } from "./ovmf-sev-metadata.ts";

const fixture = (p: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/measure/${p}`, import.meta.url)));
const AMDSEV = fixture("sev-snp-measure/ovmf_AmdSev_suffix.bin");
const OVMFX64 = fixture("sev-snp-measure/ovmf_OvmfX64_suffix.bin");
const SEVCTL_OVMF = fixture("sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");

function fails(code: ErrorCode, pattern: RegExp) {
  return (e: unknown) => isCiphervisorError(e, code) && pattern.test(e.message);
}

/**
 * A synthetic image: `body` (the metadata block first, at offset 0), then a footer table whose only entry is the SNP
 * metadata offset (counted from the image end; by default the block's real position).
 */
function imageWith(block: Uint8Array, opts: { offsetFromEnd?: number } = {}): Uint8Array {
  const entryData = (offset: number) => u32le(offset);
  const tailLength = 4 + 18 + 18 + 32;
  const total = 4096;
  const pad = new Uint8Array(total - block.length - tailLength);
  const offset = opts.offsetFromEnd ?? total;
  const entry = concat(entryData(offset), u16le(22), guidToBytes(OvmfGuid.SNP_METADATA));
  return concat(
    block,
    pad,
    entry,
    u16le(entry.length + 18),
    guidToBytes(OvmfGuid.FOOTER_TABLE),
    new Uint8Array(32),
  );
}

function block(
  sections: [number, number, number][],
  o: { sig?: string; version?: number; length?: number } = {},
) {
  const length = o.length ?? 16 + 12 * sections.length;
  return concat(
    new TextEncoder().encode(o.sig ?? "ASEV"),
    u32le(length),
    u32le(o.version ?? 1),
    u32le(sections.length),
    ...sections.map(([gpa, size, type]) => concat(u32le(gpa), u32le(size), u32le(type))),
  );
}

describe("OVMF SEV metadata (docs/sev-interface.md §8.6)", () => {
  it("reads the edk2-stable202405 AmdSevX64 suffix", () => {
    const m = parseSevMetadata(AMDSEV);
    assert.ok(m);
    assert.equal(m.offsetFromEnd, 0x554);
    assert.equal(m.imageOffset, 4096 - 0x554);
    assert.equal(m.length, 100);
    assert.equal(m.version, 1);
    assert.deepEqual(
      m.sections.map((s) => [s.gpa, s.size, s.name]),
      [
        [0x800000, 0x9000, "SNP_SEC_MEM"],
        [0x80a000, 0x3000, "SNP_SEC_MEM"],
        [0x80d000, 0x1000, "SNP_SECRETS"],
        [0x80e000, 0x1000, "CPUID"],
        [0x80f000, 0x1000, "SVSM_CAA"],
        [0x810000, 0x1000, "SNP_KERNEL_HASHES"],
        [0x811000, 0xf000, "SNP_SEC_MEM"],
      ],
    );
    assert.equal(m.sections[5]?.type, SevMetadataSectionType.SNP_KERNEL_HASHES);
  });

  it("reads the edk2-stable202405 OvmfPkgX64 suffix, which has no SNP_KERNEL_HASHES section", () => {
    const m = requireSevMetadata(OVMFX64);
    assert.equal(m.offsetFromEnd, 0x548);
    assert.deepEqual(
      m.sections.map((s) => s.name),
      ["SNP_SEC_MEM", "SNP_SEC_MEM", "SNP_SECRETS", "CPUID", "SVSM_CAA", "SNP_SEC_MEM"],
    );
    assert.equal(m.sections[5]?.size, 0x10000);
  });

  it("an image without the footer entry has none; an SNP launch refuses it with SEV_METADATA_MISSING", () => {
    assert.equal(parseSevMetadata(SEVCTL_OVMF), undefined);
    assert.equal(parseSevMetadata(new Uint8Array(4096)), undefined);
    assert.throws(() => requireSevMetadata(SEVCTL_OVMF), fails("SEV_METADATA_MISSING", /GUID dc886566/));
    assert.throws(
      () => requireSevMetadata(new Uint8Array(8192)),
      fails("SEV_METADATA_MISSING", /no OVMF footer table/),
    );
    // A footer parsed beforehand may be passed in.
    assert.equal(parseSevMetadata(AMDSEV, parseOvmfFooter(AMDSEV))?.sections.length, 7);
  });

  it("parses a synthetic block placed anywhere the footer says", () => {
    const m = parseSevMetadata(imageWith(block([[0x1000, 0x2000, 2]])));
    assert.deepEqual(m?.sections, [{ gpa: 0x1000, size: 0x2000, type: 2, name: "SNP_SECRETS" }]);
    assert.deepEqual(parseSevMetadata(imageWith(block([])))?.sections, []);
  });

  it("refuses every malformed block with MALFORMED, never an out-of-range read", () => {
    const cases: [Uint8Array, RegExp][] = [
      [imageWith(block([]), { offsetFromEnd: 5000 }), /outside it/],
      [imageWith(block([]), { offsetFromEnd: 8 }), /outside it/],
      [imageWith(block([], { sig: "XSEV" })), /no "ASEV" signature/],
      [imageWith(block([], { version: 2 })), /version 2/],
      [imageWith(block([], { length: 8 })), /length 8/],
      [imageWith(block([], { length: 5000 })), /length 5000/],
      [imageWith(block([[0, 0x1000, 1]], { length: 20 })), /1 descriptors need 28 bytes/],
      [imageWith(block([[0, 0x1000, 7]])), /unknown section type/],
      [imageWith(block([[0x800, 0x1000, 1]])), /whole 4 KiB pages/],
      [imageWith(block([[0x1000, 0x800, 1]])), /whole 4 KiB pages/],
      [imageWith(block([[0x1000, 0, 1]])), /whole 4 KiB pages/],
      [imageWith(block([[0xfffff000, 0x2000, 1]])), /past 4 GiB/],
    ];
    for (const [image, pattern] of cases) {
      assert.throws(() => parseSevMetadata(image), fails("MALFORMED", pattern), String(pattern));
    }
  });
});
