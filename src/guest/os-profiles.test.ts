import assert from "node:assert/strict";
import { existsSync } from "node:fs";
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

/** `major.minor` of a Linux kernelVersion, as a comparable number (5.19 → 519). */
function linuxVersion(v: string): number {
  const m = /^(\d+)\.(\d+)$/.exec(v);
  assert.ok(m, `Linux kernelVersion '${v}' is major.minor`);
  return Number(m[1]) * 100 + Number(m[2]);
}

describe("guest OS profiles: distribution rows agree with their kernels", () => {
  const GENERIC = ["linux-5.19", "linux-5.10", "linux-4.16", "windows-server-2022", "windows-server-2019"];

  it("keeps the five generic rows first, in order (their indexes place the emulated kernels)", () => {
    assert.deepEqual(
      GUEST_OS_PROFILES.slice(0, GENERIC.length).map((p) => p.id),
      GENERIC,
    );
  });

  it("ids are stable lowercase names; every source is public (no path outside the repository), unconfirmed values say so", () => {
    for (const p of GUEST_OS_PROFILES) {
      assert.match(p.id, /^[a-z][a-z0-9.-]*[a-z0-9]$/, p.id);
      assert.doesNotMatch(p.source, /\.\.\//, `${p.id}: a source points outside the repository`);
      const local = p.source.match(/docs\/[\w.-]+\.md/g) ?? [];
      for (const f of local)
        assert.ok(existsSync(new URL(`../../${f}`, import.meta.url)), `${p.id}: ${f} exists`);
      if (!GENERIC.includes(p.id)) assert.match(p.source, /https:\/\//, `${p.id} cites a public URL`);
    }
  });

  it("features follow the upstream kernel unless the source names a backport", () => {
    for (const p of GUEST_OS_PROFILES) {
      if (p.family === "windows") {
        assert.match(p.kernelVersion, /^10\.0\.\d+$/, p.id);
        assert.equal(p.sevSnp, false, `${p.id}: no KVM SEV-SNP guest support is documented for Windows`);
        assert.equal(p.efiSecret, false, `${p.id}: efi_secret is a Linux driver`);
        continue;
      }
      const v = linuxVersion(p.kernelVersion);
      // A row may claim more than its upstream version only with "[backport]" in its source.
      const backport = p.source.includes("[backport]");
      // SEV guest: upstream 4.15 (AMD's table); SEV-ES guest (#VC handler, GHCB v1): 5.10; GHCB v2, efi_secret: 5.19.
      if (p.sev) assert.ok(v >= 415 || backport, `${p.id}: SEV on ${p.kernelVersion}`);
      if (p.sevEs) assert.ok(v >= 510 || backport, `${p.id}: SEV-ES on ${p.kernelVersion}`);
      if ((p.ghcbProtocol?.max ?? 0) >= 2)
        assert.ok(v >= 519 || backport, `${p.id}: GHCB v2 on ${p.kernelVersion}`);
      if (p.efiSecret) {
        assert.ok(p.sevEs, `${p.id}: efi_secret rows are SEV-ES capable`);
        assert.ok(v >= 519 || backport, `${p.id}: efi_secret on ${p.kernelVersion}`);
      }
      if (!p.sevEs) assert.equal(p.ghcbProtocol, undefined, `${p.id}: no GHCB without SEV-ES`);
      // SEV-SNP guest: upstream 5.19, with GHCB v2; every SNP kernel is an SEV-ES kernel.
      if (p.sevSnp) {
        assert.ok(v >= 519 || backport, `${p.id}: SEV-SNP on ${p.kernelVersion}`);
        assert.ok(p.sevEs && (p.ghcbProtocol?.max ?? 0) >= 2, `${p.id}: SEV-SNP needs SEV-ES and GHCB v2`);
      } else if (v >= 519) {
        assert.fail(`${p.id}: Linux ${p.kernelVersion} has upstream SEV-SNP guest support`);
      }
      // A feature the kernel version would have but the row denies must be explained.
      if (v >= 510 && p.sev && !p.sevEs) assert.match(p.source, /\[unconfirmed\]/, p.id);
    }
  });

  it("real releases: Ubuntu 20.04 SEV only, Ubuntu 22.04 SEV-ES with GHCB v1, RHEL 9 and SLES 15 SP4 SEV-ES", () => {
    assert.deepEqual(supportsMode(guestOsProfile("ubuntu-20.04"), "sev"), { ok: true });
    assert.deepEqual(supportsMode(guestOsProfile("ubuntu-20.04"), "sev-es"), {
      ok: false,
      reason: "guest OS Ubuntu 20.04 LTS does not support SEV-ES",
    });
    assert.deepEqual(guestOsProfile("ubuntu-22.04").ghcbProtocol, { min: 1, max: 1 });
    assert.equal(guestOsProfile("ubuntu-22.04").efiSecret, false);
    for (const id of ["rhel-9", "sles-15-sp4", "debian-11", "debian-12", "ubuntu-24.04"]) {
      assert.deepEqual(supportsMode(guestOsProfile(id), "sev-es"), { ok: true }, id);
    }
    assert.equal(guestOsProfile("linux-5.19").efiSecret, true);
  });

  it("an unknown id is INVALID_INPUT naming every valid id", () => {
    assert.throws(
      () => guestOsProfile("ubuntu-99.04"),
      (e) =>
        isCiphervisorError(e, "INVALID_INPUT") && GUEST_OS_PROFILES.every((p) => e.message.includes(p.id)),
    );
  });
});
