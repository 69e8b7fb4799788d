/**
 * docs/threat-model.md §8 item 3 (E-VMSA-INTEGRITY), issue 3: 10,000 trials in which the hypervisor flips a random bit
 * of the SEV-ES VMSA ciphertext or restores a VMSA from an earlier exit: VMRUN refuses every one (VMEXIT_INVALID).
 * Control: the same edits to a plain-SEV VMCB save area take effect, every time — what plain SEV lacks.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../../crypto/random.ts";
import { createLab } from "../../hypervisor/introspection/lab.ts";
import { SvmExit, VMEXIT_INVALID } from "../../machine/exit-codes.ts";
import { decodeVmsa, VMSA_LAYOUT } from "../../measure/vmsa.ts";
import { handleExit } from "../kvm/exit-handler.ts";

const LOOP = "start:\n  add r8, 1\n  hlt\n  jmp start\n";
const TRIALS = 10_000;
const CONTROL_TRIALS = 2_000;

function byte(rng: { bytes(n: number): Uint8Array }): number {
  const b = rng.bytes(2);
  return (b[0]! | (b[1]! << 8)) % 4096;
}

describe("VMSA integrity (E-VMSA-INTEGRITY)", () => {
  it(`SEV-ES: ${TRIALS} flipped bits and replayed older VMSAs — VMRUN refuses 100%`, () => {
    const rng = seededRandom("vmsa-integrity");
    const lab = createLab({ source: LOOP, mode: "sev-es", seed: "vmsa-integrity" });
    const vmsaPa = lab.vm.vmcb.control.vmsaPa;
    // Boot (GHCB MSR protocol), then the first HLT.
    lab.run({ until: (h) => h.exit.exitCode === SvmExit.HLT, maxExits: 10 });
    let older = lab.view.readPhysical(vmsaPa, 4096);
    handleExit(lab.vm, lab.machine.vmrun(lab.vm.vmcb));
    let refused = 0;
    for (let t = 0; t < TRIALS; t++) {
      const current = lab.view.readPhysical(vmsaPa, 4096);
      if (t % 2 === 0) {
        const bad = current.slice();
        bad[byte(rng)]! ^= 1 << (rng.bytes(1)[0]! & 7);
        lab.view.writePhysical(vmsaPa, bad);
      } else {
        lab.view.writePhysical(vmsaPa, older);
      }
      const exit = lab.machine.vmrun(lab.vm.vmcb);
      if (exit.exitCode === VMEXIT_INVALID && /changed or replayed/.test(exit.reason ?? "")) refused++;
      // Put the genuine VMSA back and let the guest take one more exit, so the next "older" one differs.
      lab.view.writePhysical(vmsaPa, current);
      const ok = lab.machine.vmrun(lab.vm.vmcb);
      assert.equal(ok.exitCode, SvmExit.HLT, `trial ${t}: the untouched VMSA still runs`);
      older = current;
    }
    assert.equal(refused, TRIALS);
  });

  it(`plain SEV control: ${CONTROL_TRIALS} edits of the VMCB save area all take effect`, () => {
    const rng = seededRandom("vmsa-integrity-control");
    const lab = createLab({ source: LOOP, mode: "sev", seed: "vmsa-integrity-control" });
    const save = lab.vm.vmcb.saveAreaPa;
    const read = () => {
      const page = new Uint8Array(4096);
      page.set(lab.view.readPhysical(save, 0x670));
      return decodeVmsa(page);
    };
    lab.run({ until: (h) => h.exit.exitCode === SvmExit.HLT, maxExits: 10 });
    const fields = ["rbx", "rsi", "rdi", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const;
    let effective = 0;
    let older = lab.view.readPhysical(save, 0x670);
    for (let t = 0; t < CONTROL_TRIALS; t++) {
      const current = lab.view.readPhysical(save, 0x670);
      let expect: (after: ReturnType<typeof read>) => boolean;
      if (t % 2 === 0) {
        // Flip one bit of a register the guest never touches: the guest runs with it, the next exit shows it.
        const f = fields[rng.bytes(1)[0]! % fields.length]!;
        const bit = rng.bytes(1)[0]! & 63;
        const before = read()[f];
        const edited = current.slice();
        const off = VMSA_LAYOUT[f].offset + (bit >> 3);
        edited[off]! ^= 1 << (bit & 7);
        lab.view.writePhysical(save, edited);
        expect = (after) => after[f] === (before ^ (1n << BigInt(bit)));
      } else {
        // Replay the state of an earlier exit: the guest's counter goes back.
        const r8Then = (() => {
          const p = new Uint8Array(4096);
          p.set(older);
          return decodeVmsa(p).r8;
        })();
        lab.view.writePhysical(save, older);
        expect = (after) => after.r8 === r8Then + 1n;
      }
      const h = handleExit(lab.vm, lab.machine.vmrun(lab.vm.vmcb));
      assert.equal(h.exit.exitCode, SvmExit.HLT);
      if (expect(read())) effective++;
      older = current;
    }
    assert.equal(effective, CONTROL_TRIALS);
  });
});
