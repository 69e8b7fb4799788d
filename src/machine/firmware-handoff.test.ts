/**
 * The guest firmware's hand-off of an SEV-SNP guest (firmware-handoff.ts): it PVALIDATEs each private page it loads
 * before writing it — the host only assigned them (RMPUPDATE leaves a page unvalidated) — skips the pages the launch
 * measured, and refuses, writing nothing, a page not assigned to the guest at its GPA or one already validated
 * (CF = 1). A guest that is not SNP-active is loaded as before, without PVALIDATE.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { encodeVmsa } from "../measure/vmsa.ts";
import { KeySlotTable } from "../sev/key-slots.ts";
import { Dram } from "./dram.ts";
import { firmwareHandoff, type HandoffPage } from "./firmware-handoff.ts";
import { NestedPageTable } from "./nested-page-table.ts";
import { Rmp, RmpReturn } from "./rmp.ts";
import { VmsaIntegrityStore } from "./trusted-memory.ts";
import { Vmcb } from "./vmcb.ts";

const ASID = 4;
const VMSA_PA = 0x20000;
const PAGE = 4096;
/** Guest pages: GPA 0x1000·i on HPA 0x100000 + 0x1000·i. */
const hpa = (gpa: number) => 0x100000 + gpa;

function bench(sevFeatures: bigint) {
  const memory = new Dram(4 * 1024 * 1024);
  const keySlots = new KeySlotTable("xex", seededRandom("handoff"));
  keySlots.program(ASID, new Uint8Array(16).fill(9));
  const vmsaIntegrity = new VmsaIntegrityStore();
  const rmp = new Rmp({ end: memory.size });
  const npt = new NestedPageTable();
  for (let gpa = 0x1000; gpa <= 0x5000; gpa += PAGE) npt.map(gpa, hpa(gpa));
  const cipher = keySlots.encrypt(ASID, VMSA_PA, encodeVmsa({ sevFeatures }));
  memory.write(VMSA_PA, cipher);
  vmsaIntegrity.record(ASID, VMSA_PA, cipher);
  const vmcb = new Vmcb(0x10000, { asid: ASID, mode: "sev-snp", npt, vmsaPa: VMSA_PA });
  const assign = (gpa: number) =>
    assert.equal(rmp.rmpupdate(hpa(gpa), { assigned: true, asid: ASID, gpa }), RmpReturn.SUCCESS);
  const handoff = (pages: HandoffPage[]) =>
    firmwareHandoff({ memory, keySlots, vmsaIntegrity, rmp }, vmcb, pages, { rip: 0x1234n });
  const page = (gpa: number, fill: number, o: Partial<HandoffPage> = {}): HandoffPage => ({
    gpa,
    data: new Uint8Array(PAGE).fill(fill),
    private: true,
    ...o,
  });
  return { memory, keySlots, rmp, assign, handoff, page };
}

describe("the SEV-SNP guest firmware's hand-off validates what it loads", () => {
  it("PVALIDATEs the host-assigned pages, skips the measured ones, writes shared pages in plaintext", () => {
    const b = bench(1n);
    b.assign(0x1000);
    b.assign(0x2000);
    b.rmp.pvalidate(hpa(0x2000), { asid: ASID, gpa: 0x2000, validate: true }); // what SNP_LAUNCH_UPDATE did
    const r = b.handoff([
      b.page(0x1000, 0xaa),
      b.page(0x2000, 0xbb, { measured: true }),
      b.page(0x3000, 0xcc, { private: false }),
    ]);
    assert.deepEqual(r, { ok: true });
    assert.equal(b.rmp.entry(hpa(0x1000)).validated, true);
    assert.equal(b.rmp.entry(hpa(0x2000)).validated, true);
    assert.deepEqual(
      b.keySlots.decrypt(ASID, hpa(0x1000), b.memory.read(hpa(0x1000), PAGE)),
      new Uint8Array(PAGE).fill(0xaa),
    );
    assert.deepEqual(b.memory.read(hpa(0x3000), PAGE), new Uint8Array(PAGE).fill(0xcc));
  });

  it("refuses a page the host did not assign (#NPF, RMP) or one already validated (CF = 1), and writes nothing", () => {
    const cases: [string, (b: ReturnType<typeof bench>) => void, RegExp][] = [
      ["not assigned", () => {}, /faulted \(#NPF, RMP\)/],
      [
        "already validated",
        (b) => b.rmp.pvalidate(hpa(0x4000), { asid: ASID, gpa: 0x4000, validate: true }),
        /changed nothing: the page was already validated/,
      ],
    ];
    for (const [what, prepare, why] of cases) {
      const b = bench(1n);
      b.assign(0x1000);
      if (what !== "not assigned") b.assign(0x4000);
      prepare(b);
      const r = b.handoff([b.page(0x1000, 0xaa), b.page(0x4000, 0xdd)]);
      assert.equal(r.ok, false, what);
      assert.match((r as { reason: string }).reason, why, what);
      assert.deepEqual(b.memory.read(hpa(0x1000), PAGE), new Uint8Array(PAGE), `${what}: nothing written`);
    }
  });

  it("a guest that is not SNP-active (SEV_FEATURES bit 0 clear) is loaded without PVALIDATE", () => {
    const b = bench(0n);
    b.assign(0x1000);
    assert.deepEqual(b.handoff([b.page(0x1000, 0xaa)]), { ok: true });
    assert.equal(b.rmp.entry(hpa(0x1000)).validated, false);
  });
});
