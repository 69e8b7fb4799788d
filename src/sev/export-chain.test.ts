/**
 * The emulated platform as a guest owner meets it: its exported chain verifies with the owner's verifier against
 * the emulated root (and not against AMD's), a session made with the owner toolkit for its PDH is accepted by
 * LAUNCH_START, and the same session with one flipped wrap_mac byte is refused.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseSevChain, verifySevChain } from "../certs/chain.ts";
import { loadBuiltinRoots } from "../certs/roots.ts";
import { seededRandom } from "../crypto/random.ts";
import { GENERATIONS } from "../machine/cpu-models.ts";
import { createLaunchSession } from "../owner/session.ts";
import { createEmulatedPlatform } from "./emulated-platform.ts";
import { exportFullChain } from "./export.ts";
import { emulatedRootCerts } from "./manufacturer/emulated-amd.ts";
import { formatStatus, SevStatus } from "./status.ts";
import { statusOf } from "./test-support.ts";

describe("an exported emulated chain", () => {
  for (const generation of GENERATIONS) {
    it(`${generation}: verifies against the emulated root, not against AMD's`, () => {
      const { client } = createEmulatedPlatform({ generation, seed: `export-${generation}` });
      const chain = parseSevChain(exportFullChain(client));
      const report = verifySevChain(chain, { roots: loadBuiltinRoots("emulated") });
      assert.equal(report.root?.generation, generation);
      assert.ok(report.links.every((l) => l.ok));
      assert.throws(() => verifySevChain(chain, { roots: loadBuiltinRoots("amd") }), {
        code: "CHAIN_INVALID",
      });
    });
  }

  it("the PDH_CERT_EXPORT CEK alone is unsigned: verification names the ASK → CEK link", () => {
    const { client } = createEmulatedPlatform({ seed: "unsigned-cek" });
    const full = exportFullChain(client);
    const chain = parseSevChain({ ...full, cek: client.pdhCertExport().cek });
    assert.throws(() => verifySevChain(chain, { roots: loadBuiltinRoots("emulated") }), /ASK → CEK/);
  });

  it("the emulated ARK and ASK equal the committed built-in certificates", () => {
    for (const generation of GENERATIONS) {
      const { ark, ask } = emulatedRootCerts(generation);
      const dir = new URL(`../certs/builtin/emulated/${generation}/`, import.meta.url);
      assert.deepEqual(ark, new Uint8Array(readFileSync(new URL("ark.cert", dir))));
      assert.deepEqual(ask, new Uint8Array(readFileSync(new URL("ask.cert", dir))));
    }
  });
});

describe("a guest owner's session for the exported PDH", () => {
  it("is accepted by LAUNCH_START; a flipped wrap_mac byte is refused and changes nothing", () => {
    const { client } = createEmulatedPlatform({ seed: "session" });
    const chain = exportFullChain(client);
    verifySevChain(parseSevChain(chain), { roots: loadBuiltinRoots("emulated") });
    const policy = 0x05;
    const s = createLaunchSession(chain.pdh, policy, seededRandom("owner"));
    for (let i = 0; i < 32; i++) {
      const bad = s.session.slice();
      bad[0x40 + i]! ^= 1 << (i % 8);
      const status = statusOf(() => client.launchStart({ policy, godhCert: s.godhCert, session: bad }));
      assert.equal(formatStatus(status), formatStatus(SevStatus.BAD_MEASUREMENT), `wrap_mac byte ${i}`);
    }
    assert.equal(client.platformStatus().guestCount, 0);
    // A policy other than the one the session's policy_mac covers is refused too.
    const other = statusOf(() =>
      client.launchStart({ policy: 0x07, godhCert: s.godhCert, session: s.session }),
    );
    assert.equal(formatStatus(other), formatStatus(SevStatus.POLICY_FAILURE));
    const { handle } = client.launchStart({ policy, godhCert: s.godhCert, session: s.session });
    assert.equal(client.guestStatus(handle).policy, policy);
  });
});
