/**
 * docs/threat-model.md §8 item 5 (E-INTEGRITY-GAPS), issue 3: SEV and SEV-ES give memory no integrity, so a faithful
 * emulator lets the hypervisor replay old ciphertext, remap guest pages (SEVered) and — in Naples' weak XE mode —
 * move ciphertext blocks with a predictable effect (Du et al. 2017). SNP's Reverse Map Table (src/machine/rmp.ts)
 * closes these: snp-integrity.test.ts runs the same attacks against an SNP guest and shows each failing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixedXeTweakConstants, tweak } from "../../crypto/xex.ts";
import { createLab } from "../../hypervisor/introspection/lab.ts";
import { handleExit } from "../kvm/exit-handler.ts";
import { mustHlt, REPLAY, SEVERED, u64 } from "./integrity-attacks.ts";

const esStep = (lab: ReturnType<typeof createLab>) => () =>
  handleExit(lab.vm, lab.machine.vmrun(lab.vm.vmcb));

const TRIALS = 1000;

describe("memory integrity gaps before SNP (E-INTEGRITY-GAPS)", () => {
  for (const mode of ["sev", "sev-es"] as const) {
    it(`${mode}: ${TRIALS} replays of old ciphertext all succeed`, () => {
      const values: bigint[] = [];
      const lab = createLab({
        source: REPLAY,
        mode,
        seed: `replay-${mode}`,
        observer: { onRdrand: (v) => values.push(v) },
      });
      const sym = lab.image.program.symbols;
      const cell = sym.get("cell")!;
      let replayed = 0;
      for (let t = 0; t < TRIALS; t++) {
        mustHlt(esStep(lab));
        const old = lab.view.readGuestPhysical(cell, 4096);
        mustHlt(esStep(lab));
        lab.view.writeGuestPhysical(cell, old);
        mustHlt(esStep(lab));
        const reported = u64(lab.view.readGuestPhysical(sym.get("mailbox")!, 8));
        const [a, b] = values.slice(-2);
        assert.notEqual(a, b);
        if (reported === a) replayed++;
      }
      assert.equal(replayed, TRIALS);
    });

    it(`${mode}: ${TRIALS} SEVered remaps make the guest's echo service send its secret`, () => {
      const secrets: bigint[] = [];
      const lab = createLab({
        source: SEVERED,
        mode,
        seed: `severed-${mode}`,
        observer: { onRdrand: (v) => secrets.push(v) },
      });
      const sym = lab.image.program.symbols;
      const response = sym.get("response")!;
      const original = lab.view.frameOf(response)!;
      let leaked = 0;
      for (let t = 0; t < TRIALS; t++) {
        mustHlt(esStep(lab));
        // Odd trials: point the response buffer's GPA at the secret's frame; even: put it back (guest notices nothing).
        lab.view.remap(response, t % 2 === 0 ? lab.view.frameOf(sym.get("secret")!)! : original);
        mustHlt(esStep(lab));
        const sent = u64(lab.view.readGuestPhysical(sym.get("mailbox")!, 8));
        if (t % 2 === 0 && sent === secrets.at(-1)) leaked++;
        if (t % 2 === 1) assert.equal(sent, 0x5afe5afe5afe5afen);
      }
      assert.equal(leaked, TRIALS / 2);
    });
  }

  it("naples (XE mode, SEV): a ciphertext block moved from a to b decrypts to P ⊕ T(a) ⊕ T(b) in the guest", () => {
    const lab = createLab({
      generation: "naples",
      mode: "sev",
      source: `
.private page, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x0123456789abcdef
    store [page], rax
    mov   rax, 0x1111111111111111
    store [page+8], rax
    hlt                        ; the hypervisor moves the block at page+0 to page+0x40
    load  rbx, [page+0x40]
    store [mailbox], rbx
    load  rbx, [page+0x48]
    store [mailbox+8], rbx
    hlt
`,
    });
    const sym = lab.image.program.symbols;
    const page = sym.get("page")!;
    mustHlt(esStep(lab));
    lab.view.writeGuestPhysical(page + 0x40, lab.view.readGuestPhysical(page, 16));
    mustHlt(esStep(lab));
    const hpa = lab.view.frameOf(page)!;
    const t = fixedXeTweakConstants();
    const ta = tweak(t, hpa);
    const tb = tweak(t, hpa + 0x40);
    const p = new Uint8Array(16);
    new DataView(p.buffer).setBigUint64(0, 0x0123456789abcdefn, true);
    new DataView(p.buffer).setBigUint64(8, 0x1111111111111111n, true);
    const predicted = p.map((x, i) => x ^ ta[i]! ^ tb[i]!);
    assert.deepEqual(lab.view.readGuestPhysical(sym.get("mailbox")!, 16), predicted);
  });
});
