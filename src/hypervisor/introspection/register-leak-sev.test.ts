/**
 * The negative control of the register-leak test (docs/threat-model.md §8 item 1): the same 10,000-exit canary run in
 * plain-SEV mode. Registers land in the VMCB save area in plaintext at every exit, so ≥ 99% of the register
 * canaries are visible to the hypervisor; private memory stays ciphertext, so memory canaries are not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canaryExitsProgram } from "../../guest/programs/canary-exits.ts";
import { handleExit } from "../kvm/exit-handler.ts";
import { createLab } from "./lab.ts";
import { CanaryScanner } from "./test-support.ts";

const EXITS = 10_000;

/** At any offset, either byte order (a different method from the scanner's, for the small per-exit search). */
function occurs(bytes: Buffer, v: bigint): boolean {
  const le = Buffer.alloc(8);
  le.writeBigUInt64LE(v);
  return bytes.includes(le) || bytes.includes(Buffer.from(le).reverse());
}
const SEED = "register-leak-sev";

describe(`plain-SEV negative control, ${EXITS} exits (seed ${SEED})`, () => {
  it("≥ 99% of register canaries are visible in the VMCB save area; memory canaries are not", () => {
    const rdrand = new Set<bigint>();
    const stored = new Set<bigint>();
    // Canaries held in registers at the exit now being taken.
    let held: bigint[] = [];
    const lab = createLab({
      source: canaryExitsProgram(EXITS),
      mode: "sev",
      seed: SEED,
      observer: {
        onRdrand: (v) => {
          rdrand.add(v);
        },
        onStore: (_gva, _size, v) => {
          if (rdrand.has(v)) stored.add(v);
        },
        onIntercept: (_code, gpr) => {
          for (let i = 0; i < 16; i++) if (rdrand.has(gpr[i]!)) held.push(gpr[i]!);
        },
      },
    });
    let total = 0;
    let visible = 0;
    let stopReason = "";
    for (let i = 0; i < 2 * EXITS; i++) {
      const exit = lab.machine.vmrun(lab.vm.vmcb);
      const page = Buffer.from(lab.view.saveArea().bytes);
      total += held.length;
      visible += held.filter((v) => occurs(page, v)).length;
      held = [];
      const handled = handleExit(lab.vm, exit);
      if (handled.outcome.action === "stop") {
        stopReason = handled.outcome.reason;
        break;
      }
    }
    const memory = new CanaryScanner();
    for (const v of stored) memory.add(v);
    const memoryHits = lab.view.memoryImage().flatMap((f) => memory.scan(f.bytes));

    assert.match(stopReason, /isa-debug-exit/);
    assert.ok(total > 14 * EXITS, `${total} register canaries`);
    assert.ok(visible / total >= 0.99, `visible ${visible} of ${total}`);
    assert.equal(stored.size, EXITS);
    assert.equal(memoryHits.length, 0, "private memory is ciphertext in DRAM");
  });
});
