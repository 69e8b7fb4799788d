/**
 * Two entries of an OVMF footer table with the same GUID (docs/sev-interface.md §8.4): the one read first wins —
 * the table is walked backwards from the footer, so that is the entry nearest the end of the image — as QEMU's
 * `pc_system_ovmf_table_find` does (src/measure/ovmf-footer.ts). The reset EIP and the secret and kernel-hashes
 * areas decide where a VMM puts the launch secret and the hashes table and which AP reset vector the measured VMSAs
 * carry, so a verifier and a VMM that picked different duplicates would disagree about the same image. Both entries
 * stay listed in `entries`, in table order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { concat, guidToBytes, u16le, u32le } from "../lib/bytes.ts";
import { OvmfGuid, parseOvmfFooter } from "./ovmf-footer.ts";

/** An image whose tail carries a footer table with `entries`, listed nearest the end first (the walk order). */
function imageWith(entries: [string, Uint8Array][]): Uint8Array {
  const body = entries
    .slice()
    .reverse()
    .map(([guid, data]) => concat(data, u16le(data.length + 18), guidToBytes(guid)));
  const tableSize = body.reduce((n, b) => n + b.length, 0) + 18;
  return concat(
    new Uint8Array(64).fill(0xff),
    ...body,
    u16le(tableSize),
    guidToBytes(OvmfGuid.FOOTER_TABLE),
    new Uint8Array(32),
  );
}

const area = (base: number, size: number) => concat(u32le(base), u32le(size));

describe("OVMF footer: duplicate GUIDs, the entry nearest the end wins", () => {
  it("for each known entry, with another entry between the two copies", () => {
    const cases = [
      { guid: OvmfGuid.SEV_ES_RESET_BLOCK, near: u32le(0x0080b004), far: u32le(0x00ff0000) },
      { guid: OvmfGuid.SEV_SECRET_AREA, near: area(0x0080c000, 0xc00), far: area(0x00900000, 0x1000) },
      { guid: OvmfGuid.SEV_KERNEL_HASHES_AREA, near: area(0x0080cc00, 0x400), far: area(0x00a00000, 0x800) },
      { guid: OvmfGuid.SNP_METADATA, near: u32le(0x554), far: u32le(0x999) },
      { guid: OvmfGuid.TDX_METADATA, near: u32le(0x770), far: u32le(0x111) },
    ];
    const filler = "11111111-2222-3333-4444-555555555555";
    for (const c of cases) {
      const f = parseOvmfFooter(
        imageWith([
          [c.guid, c.near],
          [filler, new Uint8Array([9, 9])],
          [c.guid, c.far],
        ]),
      );
      const reference = parseOvmfFooter(imageWith([[c.guid, c.near]]));
      const { entries: _a, tableSize: _b, ...withDuplicate } = f;
      const { entries: _c, tableSize: _d, ...alone } = reference;
      assert.deepEqual(withDuplicate, alone, `${c.guid}: the nearer entry decides`);
      assert.deepEqual(
        f.entries.map((e) => [e.guid, [...e.data]]),
        [
          [c.guid, [...c.near]],
          [filler, [9, 9]],
          [c.guid, [...c.far]],
        ],
        "both copies are listed, in table order",
      );
    }
  });

  it("the same holds when the two copies are adjacent, and whichever value is nearer wins", () => {
    for (const [near, far] of [
      [0x1000, 0x2000],
      [0x2000, 0x1000],
    ] as const) {
      const f = parseOvmfFooter(
        imageWith([
          [OvmfGuid.SEV_ES_RESET_BLOCK, u32le(near)],
          [OvmfGuid.SEV_ES_RESET_BLOCK, u32le(far)],
        ]),
      );
      assert.equal(f.sevEsResetEip, near);
    }
  });
});
