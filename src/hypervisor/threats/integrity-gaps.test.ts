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
import { SvmExit } from "../../machine/exit-codes.ts";
import { handleExit } from "../kvm/exit-handler.ts";

const TRIALS = 1000;

function u64(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** Runs the guest to its next HLT, handling every other exit. */
function toHlt(lab: ReturnType<typeof createLab>): void {
  for (let i = 0; i < 20; i++) {
    const h = handleExit(lab.vm, lab.machine.vmrun(lab.vm.vmcb));
    if (h.exit.exitCode === SvmExit.HLT) return;
    assert.equal(h.outcome.action, "resume", h.outcome.action === "stop" ? h.outcome.reason : "");
  }
  assert.fail("no HLT");
}

const REPLAY = `
.private cell, 4096
.shared  mailbox, 4096
start:
loop:
    rdrand rax
    store [cell], rax           ; value A
    hlt                         ; the hypervisor copies the ciphertext of cell
    rdrand rax
    store [cell], rax           ; value B overwrites it
    hlt                         ; the hypervisor writes A's ciphertext back
    load  rbx, [cell]
    store [mailbox], rbx        ; the guest's own service reports what it read
    hlt
    jmp   loop
`;

const SEVERED = `
.private secret, 4096
.private response, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x5afe5afe5afe5afe
    store [response], rax       ; what the echo service should send
loop:
    rdrand rax
    store [secret], rax         ; a fresh secret the guest never sends
    hlt                         ; a request arrives
    load  rbx, [response]
    store [mailbox], rbx        ; echo service: response buffer → shared mailbox
    hlt
    jmp   loop
`;

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
        toHlt(lab);
        const old = lab.view.readGuestPhysical(cell, 4096);
        toHlt(lab);
        lab.view.writeGuestPhysical(cell, old);
        toHlt(lab);
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
        toHlt(lab);
        // Odd trials: point the response buffer's GPA at the secret's frame; even: put it back (guest notices nothing).
        lab.view.remap(response, t % 2 === 0 ? lab.view.frameOf(sym.get("secret")!)! : original);
        toHlt(lab);
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
    toHlt(lab);
    lab.view.writeGuestPhysical(page + 0x40, lab.view.readGuestPhysical(page, 16));
    toHlt(lab);
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
