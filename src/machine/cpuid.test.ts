import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isEmulatedSnpGeneration } from "../sev/manufacturer/emulated-snp.ts";
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

  it("C-bit 47 on Naples and Rome, 51 from Milan on; 15 / 509 / 509 / 1006 / 1006 ASIDs", () => {
    assert.deepEqual(
      GENERATIONS.map((g) => [CPU_MODELS[g].cBit, CPU_MODELS[g].maxAsid]),
      [
        [47, 15],
        [47, 509],
        [51, 509],
        [51, 1006],
        [51, 1006],
      ],
    );
  });

  it("SEV-SNP (EAX bit 4) agrees with the `snp` fact and with the emulated SNP products; ciphertext hiding is Turin's alone", () => {
    for (const g of GENERATIONS) {
      const m = CPU_MODELS[g];
      assert.equal((m.cpuid8000001f.eax & SEV_FEATURE_BITS.SEV_SNP) !== 0, m.snp, g);
      assert.equal(isEmulatedSnpGeneration(g), m.snp, g);
      if (m.ciphertextHiding) assert.ok(m.snp, `${g}: ciphertext hiding is an SNP feature`);
    }
    assert.deepEqual(
      GENERATIONS.filter((g) => CPU_MODELS[g].ciphertextHiding),
      ["turin"],
    );
  });

  it("Turin is an EPYC 9655's leaf (anrieff/libcpuid tests/amd/zen5/epyc-turin.test: CFFFFFFB-000041B3-000003EE)", () => {
    const t = CPU_MODELS.turin;
    const leaf = hostCpuid8000001f(t, 1);
    assert.deepEqual(
      leaf,
      { eax: 0xcffffffb, ebx: 0x41b3, ecx: 0x3ee, edx: 1 },
      "that BIOS's min_sev_asid is 1",
    );
    assert.equal((leaf.ebx >> 12) & 0xf, 4, "four VMPLs");
    // CPUID(1).EAX 0x00B00F21: base family 0xF + extended 0x0B = family 0x1A (Zen 5), model 2, stepping 1.
    const eax = t.cpuidSignature;
    assert.equal(((eax >> 8) & 0xf) + ((eax >> 20) & 0xff), 0x1a);
    assert.equal((((eax >> 16) & 0xf) << 4) | ((eax >> 4) & 0xf), 2);
    assert.equal(t.memoryMode, CPU_MODELS.genoa.memoryMode);
    // What an SNP pool split needs is on the model: the highest ASID and the default min_sev_asid.
    const p = asidPools(t);
    assert.deepEqual(
      [p.es.count, p.sev.count],
      [t.defaultMinSevAsid - 1, t.maxAsid - t.defaultMinSevAsid + 1],
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
