import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { GUEST_OS_PROFILES, guestOsProfile, supportsMode } from "./os-profiles.ts";

describe("guest OS profiles (one table, a source per row)", () => {
  it("every row has an id, a name and a source; SEV-ES implies SEV and a GHCB protocol range", () => {
    assert.equal(new Set(GUEST_OS_PROFILES.map((p) => p.id)).size, GUEST_OS_PROFILES.length);
    for (const p of GUEST_OS_PROFILES) {
      assert.ok(p.name && p.source.length > 20, p.id);
      if (p.sevEs) {
        assert.ok(p.sev, p.id);
        assert.ok(
          p.ghcbProtocol && p.ghcbProtocol.min >= 1 && p.ghcbProtocol.max >= p.ghcbProtocol.min,
          p.id,
        );
      }
    }
  });

  it("Linux ≥ 5.10 runs SEV-ES, Linux 4.16–5.9 only SEV, Windows Server neither", () => {
    assert.deepEqual(supportsMode(guestOsProfile("linux-5.10"), "sev-es"), { ok: true });
    assert.deepEqual(supportsMode(guestOsProfile("linux-4.16"), "sev"), { ok: true });
    assert.deepEqual(supportsMode(guestOsProfile("linux-4.16"), "sev-es"), {
      ok: false,
      reason: "guest OS Linux 4.16–5.9 does not support SEV-ES",
    });
    for (const id of ["windows-server-2019", "windows-server-2022"]) {
      assert.equal(supportsMode(guestOsProfile(id), "sev").ok, false);
      assert.equal(supportsMode(guestOsProfile(id), "sev-es").ok, false);
      assert.deepEqual(supportsMode(guestOsProfile(id), "none"), { ok: true });
    }
    assert.throws(
      () => guestOsProfile("beos"),
      (e) => isCiphervisorError(e, "INVALID_INPUT") && /unknown guest OS 'beos'/.test(e.message),
    );
  });
});
