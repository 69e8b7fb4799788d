import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CPU_MODELS, GENERATIONS } from "./cpu-models.ts";
import { asidClass, asidPools, hostCpuid8000001f, SEV_FEATURE_BITS } from "./cpuid.ts";

describe("CPUID 0x8000001F and the CPU table agree (docs/sev-interface.md §7.1)", () => {
  for (const g of GENERATIONS) {
    const m = CPU_MODELS[g];
    it(`${g}: C-bit, reduction, max ASID and SEV-ES bit match the table row`, () => {
      const leaf = hostCpuid8000001f(m, m.defaultMinSevAsid);
      assert.equal(leaf.ebx & 0x3f, m.cBit);
      assert.equal((leaf.ebx >> 6) & 0x3f, m.reducedPhysBits);
      assert.equal(leaf.ecx, m.maxAsid);
      assert.equal(leaf.edx, m.defaultMinSevAsid);
      assert.equal((leaf.eax & SEV_FEATURE_BITS.SEV_ES) !== 0, m.sevEs);
      assert.equal(leaf.eax & SEV_FEATURE_BITS.SEV, SEV_FEATURE_BITS.SEV);
      assert.ok(m.source.length > 0);
    });
  }

  it("C-bit 47 on Naples and Rome, 51 from Milan on; 15 / 509 / 509 / 1006 ASIDs", () => {
    assert.deepEqual(
      GENERATIONS.map((g) => [CPU_MODELS[g].cBit, CPU_MODELS[g].maxAsid]),
      [
        [47, 15],
        [47, 509],
        [51, 509],
        [51, 1006],
      ],
    );
  });
});

describe("ASID pools (§7.2)", () => {
  it("ES ASIDs are the low range 1..min−1, SEV ASIDs min..max", () => {
    const p = asidPools(CPU_MODELS.rome, 100);
    assert.deepEqual(p.es, { first: 1, last: 99, count: 99 });
    assert.deepEqual(p.sev, { first: 100, last: 509, count: 410 });
    assert.deepEqual(p.sevEs, { available: true });
    assert.equal(asidClass(CPU_MODELS.rome, 100, 99), "es");
    assert.equal(asidClass(CPU_MODELS.rome, 100, 100), "sev");
    assert.equal(asidClass(CPU_MODELS.rome, 100, 0), undefined);
    assert.equal(asidClass(CPU_MODELS.rome, 100, 510), undefined);
  });

  it("min_sev_asid = 1 leaves no ES pool and says so", () => {
    const p = asidPools(CPU_MODELS.milan, 1);
    assert.equal(p.es.count, 0);
    assert.equal(p.sev.count, 509);
    assert.equal(p.sevEs.available, false);
    assert.match((p.sevEs as { reason: string }).reason, /min_sev_asid = 1/);
  });

  it("Naples has no SEV-ES at all, whatever the BIOS says", () => {
    const p = asidPools(CPU_MODELS.naples, 1);
    assert.equal(p.sevEs.available, false);
    assert.match((p.sevEs as { reason: string }).reason, /naples .* does not support SEV-ES/);
    assert.throws(() => asidPools(CPU_MODELS.naples, 5), /min_sev_asid must be 1/);
  });
});
