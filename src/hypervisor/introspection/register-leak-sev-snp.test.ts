/**
 * docs/threat-model.md §8 item 1 (E-ES-REGLEAK) for SEV-SNP guests (issue 14): the canary program of
 * register-leak-sev-es.test.ts on an SNP guest launched through SNP's commands and the RMP (snp-lab.ts). No canary
 * may appear — at any offset, in either byte order — in any byte the hypervisor can read (VMSA ciphertext, VMCB,
 * GHCB, all of DRAM), except values the guest itself put in the GHCB with their valid bit set. And what SNP adds
 * over SEV-ES: the experiment's replay of the canaries' page is refused by the RMP and changes nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canaryExitsProgram } from "../../guest/programs/canary-exits.ts";
import { PAGE_SIZE } from "../../machine/dram.ts";
import { runCanaryExperiment } from "./canary-experiment.ts";
import { scanForCanaries } from "./leak-scan.ts";
import { createSnpLab } from "./snp-lab.ts";
import { CanaryScanner } from "./test-support.ts";

const EXITS = 10_000;
const SEED = "register-leak-snp";

describe(`SEV-SNP register leak, ${EXITS} exits (seed ${SEED})`, () => {
  it("no canary reaches the hypervisor except GHCB fields the guest marked valid", () => {
    const scanner = new CanaryScanner();
    const rdrand = new Set<bigint>();
    let heldAtExits = 0;
    let guestExits = 0;
    const lab = createSnpLab({
      source: canaryExitsProgram(EXITS),
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
    const { violations, ghcbExposures, stopReason } = scanForCanaries(lab, scanner, 3 * EXITS, (save) =>
      assert.equal(save.kind, "vmsa-ciphertext"),
    );
    assert.match(stopReason, /isa-debug-exit/, "the guest ran to completion");
    assert.equal(guestExits, EXITS + 1); // + the power-off OUT
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

  it("the experiment: nothing visible the guest did not expose, no page canary, and the host's replay refused", () => {
    const r = runCanaryExperiment({ mode: "sev-snp", exits: 64, seed: SEED });
    assert.match(r.stopReason, /isa-debug-exit/);
    assert.ok(r.registerVisibility.held > 14 * 64);
    assert.equal(r.registerVisibility.visibleNotExposed, 0);
    assert.ok(r.registerVisibility.visible > 0, "the values the guest exposed in the GHCB are found");
    assert.equal(r.canaries.memory.length, 64);
    assert.deepEqual(r.memoryCanariesVisible, []);
    const w = r.hostWrite;
    assert.ok(w, "an SNP run records the host write");
    assert.deepEqual(
      [w.refused, w.unchanged, w.fault?.code, w.fault?.errorCode],
      [true, true, "RMP_VIOLATION", "0x80000003"],
    );
    assert.deepEqual(
      [w.rmp?.assigned, w.rmp?.validated, w.rmp?.asid],
      [true, true, 1],
      "the page is the guest's in the RMP",
    );
    assert.equal(w.gpa % PAGE_SIZE, 0);
    assert.ok(
      !runCanaryExperiment({ mode: "sev-es", exits: 4, seed: SEED }).hostWrite,
      "SEV-ES runs have none",
    );
  });
});
