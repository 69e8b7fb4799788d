/**
 * docs/threat-model.md §8 item 1 (E-ES-REGLEAK), issue 3: 10,000 exits of mixed reasons, fresh random canaries in all
 * 16 GPRs and in private memory before each. Under SEV-ES no canary may appear — at any offset, in either byte
 * order — in any byte the hypervisor can read (VMSA ciphertext, VMCB, GHCB, all of DRAM), except values the guest
 * itself put in the GHCB with their valid bit set.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canaryExitsProgram } from "../../guest/programs/canary-exits.ts";
import { createLab } from "./lab.ts";
import { scanForCanaries } from "./leak-scan.ts";
import { CanaryScanner } from "./test-support.ts";

const EXITS = 10_000;
const SEED = "register-leak-es";

describe(`SEV-ES register leak, ${EXITS} exits (seed ${SEED})`, () => {
  it("no canary reaches the hypervisor except GHCB fields the guest marked valid", () => {
    const scanner = new CanaryScanner();
    const rdrand = new Set<bigint>();
    let heldAtExits = 0;
    let guestExits = 0;
    const lab = createLab({
      source: canaryExitsProgram(EXITS),
      mode: "sev-es",
      seed: SEED,
      observer: {
        onRdrand: (v) => {
          scanner.add(v);
          rdrand.add(v);
        },
        onIntercept: (_code, gpr) => {
          guestExits++;
          for (let i = 0; i < 16; i++) if (rdrand.has(gpr[i]!)) heldAtExits++;
        },
      },
    });
    const { violations, ghcbExposures, vmexits, stopReason } = scanForCanaries(lab, scanner, 3 * EXITS);
    assert.match(stopReason, /isa-debug-exit/, "the guest ran to completion");
    assert.equal(guestExits, EXITS + 1); // + the power-off OUT
    assert.ok(vmexits >= EXITS, `${vmexits} #VMEXITs`);
    assert.ok(heldAtExits > 14 * EXITS, `${heldAtExits} register canaries held at exits`);
    assert.ok(scanner.size > 16 * EXITS, `${scanner.size} canaries`);
    // Not vacuous: the scanner does find what the guest exposes (RCX of CPUID, RAX/RDX of WRMSR).
    assert.ok(ghcbExposures >= EXITS / 2, `${ghcbExposures} exposures through valid GHCB fields`);
    assert.deepEqual(
      violations.slice(0, 10),
      [],
      `${violations.length} canary sightings outside valid GHCB fields`,
    );
  });
});
