/**
 * `GET /v1/vms/{id}/hypervisor-view` for an SEV-SNP VM (issue 14): the VM boots through SNP's launch and the RMP
 * (introspection/snp-lab.ts); its hypervisor column holds no register canary the guest did not expose and no page
 * canary, and the answer adds `hostWrite`, the hypervisor's replay of the private page refused by the RMP, which
 * the verdict now states from the run. A part without SNP is a typed REQUIREMENT_FAILED; the other modes' answers
 * carry no `hostWrite`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { linuxSpec } from "../../control/testing/control-fixture.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

interface Answer {
  mode: string;
  saveArea: { kind: string };
  exits: {
    registers: { guest: string; hypervisor: string; foundAt: string | null; exposedByGuest: boolean }[];
  }[];
  memory: { guest: string; hypervisor: string; canaries: { value: string; visible: boolean }[] };
  summary: Record<string, number>;
  hostWrite?: {
    vmexit: number;
    refused: boolean;
    unchanged: boolean;
    fault?: { code: string; errorCode: string };
    rmp?: { assigned: boolean; asid: number; validated: boolean };
  };
  verdict: string;
}

async function view(a: ApiFixture, id: string, mode?: string) {
  return a.call("viewer", "GET", `/v1/vms/${id}/hypervisor-view${mode ? `?mode=${mode}` : ""}`);
}

describe("GET /v1/vms/{id}/hypervisor-view of an SEV-SNP VM", () => {
  it("no unexposed register canary and no page canary in the hypervisor column; its write to the page is refused", () =>
    withApi(async (a) => {
      const hostId = await a.host("milan-view", "milan");
      const vm = await a.vm("snp-view", "sev-snp", { hostId, spec: linuxSpec });
      const r = await view(a, vm.id);
      assert.equal(r.statusCode, 200, r.body);
      const v = json(r) as unknown as Answer;
      assert.equal(v.mode, "sev-snp");
      assert.equal(v.saveArea.kind, "vmsa-ciphertext");
      const regs = v.exits.flatMap((e) => e.registers);
      assert.ok(regs.length >= 15, `${regs.length} registers shown`);
      for (const reg of regs) {
        if (reg.exposedByGuest) continue;
        assert.equal(reg.foundAt, null, `${reg.guest} is nowhere the hypervisor can read`);
        assert.notEqual(reg.hypervisor, reg.guest);
      }
      assert.ok(v.summary.registersHeld! > 0);
      assert.equal(v.summary.visibleNotExposed, 0);
      assert.ok(v.summary.memoryCanaries! > 0);
      assert.equal(v.summary.memoryCanariesVisible, 0);
      assert.ok(v.memory.canaries.length > 0 && v.memory.canaries.every((c) => !c.visible));
      assert.notEqual(
        v.memory.hypervisor,
        v.memory.guest,
        "the private page is ciphertext to the hypervisor",
      );
      const w = v.hostWrite;
      assert.ok(w, "SNP answers carry hostWrite");
      assert.deepEqual(
        [w.refused, w.unchanged, w.fault?.code, w.fault?.errorCode],
        [true, true, "RMP_VIOLATION", "0x80000003"],
      );
      assert.deepEqual([w.rmp?.assigned, w.rmp?.validated], [true, true]);
      assert.match(v.verdict, /Reverse Map Table refused its write .*#PF 0x80000003, RMP/);
    }));

  it("the other modes of the same VM answer without hostWrite; a part without SNP is REQUIREMENT_FAILED", () =>
    withApi(async (a) => {
      const milan = await a.host("milan-cmp", "milan");
      const vm = await a.vm("cmp", "sev-snp", { hostId: milan, spec: linuxSpec });
      for (const mode of ["none", "sev", "sev-es"]) {
        const r = await view(a, vm.id, mode);
        assert.equal(r.statusCode, 200, r.body);
        assert.equal("hostWrite" in json(r), false, mode);
      }
      const rome = await a.host("rome-cmp", "rome");
      const old = await a.vm("old", "sev-es", { hostId: rome, spec: linuxSpec });
      const refused = await view(a, old.id, "sev-snp");
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(json(refused).code, "REQUIREMENT_FAILED");
      assert.match(String(json(refused).detail ?? json(refused).title), /rome .* does not support SEV-SNP/);
    }));
});
