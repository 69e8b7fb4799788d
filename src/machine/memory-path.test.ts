/**
 * Two properties of the guest memory path that the rest of the suite relies on without pinning down
 * (docs/sev-interface.md §13.1–13.2; AMD64 APM vol. 2, section 15.34 "Secure Encrypted Virtualization"):
 *
 * 1. The memory-encryption tweak is per system physical address, not per page offset: the same plaintext at the
 *    same offset of two different pages is stored as different ciphertext (in both XE and XEX modes). A tweak
 *    built from the offset bits alone would make equal pages look equal in DRAM and let the hypervisor move a block
 *    from one page to another unnoticed; ciphertext.test.ts only varies the address within ±4 KiB.
 * 2. Instruction fetches are always private under SEV (AMD64 APM vol. 2, section 15.34: instruction fetches are
 *    always treated as private): code on a page the guest maps shared (C-bit clear) is still decrypted with the
 *    VM's key, so a hypervisor that writes plaintext into a shared page cannot make the guest execute it. Data
 *    reads of the same page follow the C-bit and see DRAM as it is.
 *
 * Built on the real pieces the machine uses (Dram, the key-slot table, the NPT, guest page tables in encrypted
 * memory) and driven through MemoryPath, the object execution.ts fetches and loads through.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { KeySlotTable } from "../sev/key-slots.ts";
import { Dram, PAGE_SIZE } from "./dram.ts";
import { makeEntry } from "./guest-paging.ts";
import { Access, MemoryPath } from "./memory-path.ts";
import { NestedPageTable } from "./nested-page-table.ts";

const ASID = 5;
const C_BIT = 47;
/** Guest-physical = host-physical + this: the NPT is not the identity, so GPA and SPA tweaks would differ. */
const HOST_OFFSET = 0x40_0000;
const CR3 = 0x1000; // page directory (GPA)
const PT = 0x2000; // the one page table (GPA)

interface Rig {
  dram: Dram;
  slots: KeySlotTable;
  path(sev: boolean): MemoryPath;
}

/**
 * A guest with `pages` (GVA = GPA, 4 KiB each) mapped private or shared by its own page table. The tables live in
 * private memory, as every walk is private.
 */
function rig(mode: "xe" | "xex", pages: { gpa: number; private: boolean }[]): Rig {
  const rng = seededRandom(`memory-path-${mode}`);
  const dram = new Dram(16 << 20);
  const slots = new KeySlotTable(mode, rng);
  slots.program(ASID, rng.bytes(16));
  const npt = new NestedPageTable();
  for (const gpa of [CR3, PT, ...pages.map((p) => p.gpa)]) npt.map(gpa, gpa + HOST_OFFSET);
  const pd = new Uint8Array(PAGE_SIZE);
  new DataView(pd.buffer).setBigUint64(0, makeEntry(PT, { cBit: C_BIT, private: true }), true);
  const pt = new Uint8Array(PAGE_SIZE);
  for (const p of pages)
    new DataView(pt.buffer).setBigUint64(
      (p.gpa / PAGE_SIZE) * 8,
      makeEntry(p.gpa, { cBit: C_BIT, ...p }),
      true,
    );
  dram.write(CR3 + HOST_OFFSET, slots.encrypt(ASID, CR3 + HOST_OFFSET, pd));
  dram.write(PT + HOST_OFFSET, slots.encrypt(ASID, PT + HOST_OFFSET, pt));
  return {
    dram,
    slots,
    path: (sev) =>
      new MemoryPath({ memory: dram, keySlots: slots, npt, asid: ASID, sev, cBit: C_BIT, cr3: CR3 }),
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("the memory-encryption tweak is per physical address", () => {
  for (const mode of ["xe", "xex"] as const) {
    it(`${mode}: the same 16 bytes at the same offset of two pages never give the same ciphertext (1,000 pairs)`, () => {
      const rng = seededRandom(`tweak-${mode}`);
      const slots = new KeySlotTable(mode, rng);
      slots.program(1, rng.bytes(16));
      const u32 = () => new DataView(rng.bytes(4).buffer).getUint32(0, true);
      for (let i = 0; i < 1000; i++) {
        const offset = (u32() % (PAGE_SIZE / 16)) * 16;
        const pageA = u32() % 0x8_0000; // page numbers below 2 GiB
        const pageB = (pageA + 1 + (u32() % 0x7_ffff)) % 0x8_0000;
        const p = rng.bytes(16);
        const a = slots.encrypt(1, pageA * PAGE_SIZE + offset, p);
        const b = slots.encrypt(1, pageB * PAGE_SIZE + offset, p);
        assert.notEqual(
          hex(a),
          hex(b),
          `pages 0x${pageA.toString(16)} and 0x${pageB.toString(16)} @ 0x${offset.toString(16)}`,
        );
        assert.equal(hex(slots.decrypt(1, pageB * PAGE_SIZE + offset, b)), hex(p));
      }
    });
  }

  it("a guest writing one page's content to two private pages leaves two different pages in DRAM", () => {
    const pages = [0x10_000, 0x11_000, 0x7f_000].map((gpa) => ({ gpa, private: true }));
    const r = rig("xex", pages);
    const content = seededRandom("page").bytes(PAGE_SIZE);
    const path = r.path(true);
    for (const { gpa } of pages) path.write(gpa, content);
    path.flush();
    const stored = pages.map(({ gpa }) => r.dram.read(gpa + HOST_OFFSET, PAGE_SIZE));
    for (let off = 0; off < PAGE_SIZE; off += 16) {
      const blocks = stored.map((s) => hex(s.subarray(off, off + 16)));
      assert.equal(new Set(blocks).size, blocks.length, `offset 0x${off.toString(16)} repeats across pages`);
      assert.ok(!blocks.includes(hex(content.subarray(off, off + 16))), "stored as ciphertext");
    }
    // Each reads back as what was written, through a fresh path (nothing cached).
    const again = r.path(true);
    for (const { gpa } of pages) assert.equal(hex(again.read(gpa, PAGE_SIZE)), hex(content));
  });
});

describe("instruction fetches are always private (AMD64 APM vol. 2, section 15.34)", () => {
  const CODE = 0x20_000;
  const code = seededRandom("code").bytes(PAGE_SIZE);

  it("code on a page the guest maps shared is decrypted with the VM's key; data reads of it are not", () => {
    const r = rig("xex", [{ gpa: CODE, private: false }]);
    const hpa = CODE + HOST_OFFSET;
    r.dram.write(hpa, r.slots.encrypt(ASID, hpa, code));
    const path = r.path(true);
    assert.deepEqual(path.resolve(CODE, Access.Read), { gpa: CODE, hpa, private: false });
    assert.deepEqual(path.resolve(CODE, Access.Fetch), { gpa: CODE, hpa, private: true });
    assert.equal(hex(path.fetchPage(CODE).data), hex(code), "the fetch sees the decrypted code");
    assert.equal(hex(path.read(CODE, PAGE_SIZE)), hex(r.dram.read(hpa, PAGE_SIZE)), "a data read sees DRAM");
    assert.notEqual(hex(path.read(CODE, 16)), hex(code.subarray(0, 16)));
  });

  it("plaintext the hypervisor put in a shared page is not what the guest executes", () => {
    const r = rig("xex", [{ gpa: CODE, private: false }]);
    const hpa = CODE + HOST_OFFSET;
    r.dram.write(hpa, code); // readable as-is through the shared mapping …
    const path = r.path(true);
    assert.equal(hex(path.read(CODE, PAGE_SIZE)), hex(code));
    // … but fetched through the VM's key: the guest runs D_K(code), never the injected bytes.
    const fetched = path.fetchPage(CODE).data;
    assert.equal(hex(fetched), hex(r.slots.decrypt(ASID, hpa, code)));
    for (let off = 0; off < PAGE_SIZE; off += 16)
      assert.notEqual(hex(fetched.subarray(off, off + 16)), hex(code.subarray(off, off + 16)));
  });

  it("without SEV (VMCB SEV bit clear) the same fetch reads DRAM as it is", () => {
    const r = rig("xex", [{ gpa: CODE, private: false }]);
    const hpa = CODE + HOST_OFFSET;
    r.dram.write(hpa, code);
    // An ordinary VM's page tables are plaintext: rewrite them unencrypted for this path.
    for (const gpa of [CR3, PT]) {
      const h = gpa + HOST_OFFSET;
      r.dram.write(h, r.slots.decrypt(ASID, h, r.dram.read(h, PAGE_SIZE)));
    }
    const path = r.path(false);
    assert.equal(path.resolve(CODE, Access.Fetch).private, false);
    assert.equal(hex(path.fetchPage(CODE).data), hex(code));
  });
});
