/**
 * Security changes are classified per VM into enable / policy change / downgrade / debug, each with its own
 * permission; policies are validated against the mode; the VM-level compatibility checks reuse the hypervisor's
 * requirement table.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { configFindings, hypervisorSpec, modeChangeFindings, NO_POOL_USE, poolReports } from "./compat.ts";
import { classifyChange, resolvePolicy, validatePolicy } from "./security-change.ts";
import { linuxSpec } from "./testing/control-fixture.ts";

describe("security changes", () => {
  const cases: [string, [string, number], [string, number], string, string[]][] = [
    ["enable SEV-ES", ["none", 0], ["sev-es", 0x7], "vm.security.enable", ["vm.security.enable"]],
    [
      "enable with debug",
      ["none", 0],
      ["sev", 0x2],
      "vm.security.enable",
      ["vm.debug.allow", "vm.security.enable"],
    ],
    ["SEV → SEV-ES", ["sev", 0x3], ["sev-es", 0x7], "vm.security.enable", ["vm.security.enable"]],
    ["SEV-ES → SEV", ["sev-es", 0x7], ["sev", 0x3], "vm.security.downgrade", ["vm.security.downgrade"]],
    ["off", ["sev-es", 0x7], ["none", 0], "vm.security.disable", ["vm.security.downgrade"]],
    ["strengthen policy", ["sev", 0x3], ["sev", 0x3b], "vm.policy.change", ["vm.security.policy"]],
    ["clear NOSEND", ["sev", 0xb], ["sev", 0x3], "vm.security.downgrade", ["vm.security.downgrade"]],
    ["clear NODBG", ["sev-es", 0x7], ["sev-es", 0x6], "vm.security.downgrade", ["vm.debug.allow"]],
    [
      "lower firmware minimum",
      ["sev", 0x0118_0003],
      ["sev", 0x0017_0003],
      "vm.security.downgrade",
      ["vm.security.downgrade"],
    ],
    [
      "raise firmware minimum",
      ["sev", 0x3],
      ["sev", 0x0018_0003],
      "vm.policy.change",
      ["vm.security.policy"],
    ],
    ["no change", ["sev", 0x3], ["sev", 0x3], "vm.policy.change", []],
    // SEV-SNP policies (docs/sev-interface.md §14): their own format, bit 0 is ABI_MINOR, not NODBG.
    ["SEV-ES → SEV-SNP", ["sev-es", 0x7], ["sev-snp", 0x30000], "vm.security.enable", ["vm.security.enable"]],
    ["enable SEV-SNP", ["none", 0], ["sev-snp", 0x30000], "vm.security.enable", ["vm.security.enable"]],
    [
      "enable SEV-SNP with DEBUG",
      ["none", 0],
      ["sev-snp", 0x30000 | (1 << 19)],
      "vm.security.enable",
      ["vm.debug.allow", "vm.security.enable"],
    ],
    [
      "SEV-SNP → SEV-ES",
      ["sev-snp", 0x30000],
      ["sev-es", 0x7],
      "vm.security.downgrade",
      ["vm.security.downgrade"],
    ],
    [
      "SNP: set DEBUG",
      ["sev-snp", 0x30000],
      ["sev-snp", 0xb0000],
      "vm.security.downgrade",
      ["vm.debug.allow"],
    ],
    [
      "SNP: set MIGRATE_MA",
      ["sev-snp", 0x30000],
      ["sev-snp", 0x70000],
      "vm.security.downgrade",
      ["vm.security.downgrade"],
    ],
    [
      "SNP: forbid SMT",
      ["sev-snp", 0x30000],
      ["sev-snp", 0x20000],
      "vm.policy.change",
      ["vm.security.policy"],
    ],
    [
      "SNP: allow SMT",
      ["sev-snp", 0x20000],
      ["sev-snp", 0x30000],
      "vm.security.downgrade",
      ["vm.security.downgrade"],
    ],
    [
      "SNP: clear SINGLE_SOCKET",
      ["sev-snp", 0x130000],
      ["sev-snp", 0x30000],
      "vm.security.downgrade",
      ["vm.security.downgrade"],
    ],
    [
      "SNP: lower ABI minimum",
      ["sev-snp", 0x30155],
      ["sev-snp", 0x30100],
      "vm.security.downgrade",
      ["vm.security.downgrade"],
    ],
    [
      "SNP: raise ABI minimum (bit 0 is not NODBG)",
      ["sev-snp", 0x30000],
      ["sev-snp", 0x30001],
      "vm.policy.change",
      ["vm.security.policy"],
    ],
  ];
  for (const [name, [bm, bp], [am, ap], action, perms] of cases) {
    it(name, () => {
      const c = classifyChange({ mode: bm as "sev", policy: bp }, { mode: am as "sev", policy: ap });
      assert.equal(c.action, action);
      assert.deepEqual(c.permissions, perms);
      assert.equal(c.unchanged, name === "no change");
      if (c.action === "vm.security.downgrade" || c.action === "vm.security.disable")
        assert.ok(c.weakened.length > 0);
    });
  }

  it("answers a repeated question with the same frozen verdict, and different questions apart", () => {
    // classifyChange remembers its answers (a bulk change asks the same few for every VM): asking again in any
    // order must give each question its own answer, and nobody can edit one that others share.
    const answers = cases.map(([, [bm, bp], [am, ap]]) =>
      classifyChange({ mode: bm as "sev", policy: bp }, { mode: am as "sev", policy: ap }),
    );
    [...cases].reverse().forEach(([name, [bm, bp], [am, ap], action, perms], i) => {
      const c = classifyChange({ mode: bm as "sev", policy: bp }, { mode: am as "sev", policy: ap });
      assert.equal(c, answers[cases.length - 1 - i], name);
      assert.equal(c.action, action, name);
      assert.deepEqual(c.permissions, perms, name);
    });
    const one = answers[0];
    assert.ok(
      one && Object.isFrozen(one) && Object.isFrozen(one.permissions) && Object.isFrozen(one.weakened),
    );
  });

  it("resolves and validates policies against the mode", () => {
    assert.equal(resolvePolicy({ mode: "none", policy: 0 }, "sev-es", undefined), 0x7);
    assert.equal(resolvePolicy({ mode: "sev", policy: 0x33 }, "sev", undefined), 0x33);
    assert.equal(resolvePolicy({ mode: "sev", policy: 0x33 }, "sev-es", undefined), 0x7);
    assert.equal(resolvePolicy({ mode: "sev", policy: 0x33 }, "none", 5), 0);
    for (const [mode, policy] of [
      ["sev-es", 0x3],
      ["sev", 0x7],
      ["none", 1],
      ["sev", 0x40],
      ["sev", 2 ** 32],
      ["sev", -1],
    ] as const) {
      assert.throws(
        () => validatePolicy(mode, policy),
        (e: unknown) => isCiphervisorError(e, "INVALID_INPUT") && e.details?.field === "policy",
        `${mode} ${policy}`,
      );
    }
    validatePolicy("sev-es", 0x0118_003f);
    assert.equal(resolvePolicy({ mode: "sev-es", policy: 0x7 }, "sev-snp", undefined), 0x30000);
    for (const policy of [0x10000, 0x30000 | (1 << 26), 0x7]) {
      assert.throws(
        () => validatePolicy("sev-snp", policy),
        (e: unknown) => isCiphervisorError(e, "INVALID_INPUT") && e.details?.field === "policy",
        `sev-snp ${policy}`,
      );
    }
    validatePolicy("sev-snp", 0x3ff_ffff);
  });
});

describe("compatibility checks", () => {
  const vm = { id: "vm_1", name: "a", spec: linuxSpec, securityMode: "sev-es" as const, policy: 0 };

  it("builds the hypervisor's spec (inventory id as the name, default policy) and the pools from the ASID split", () => {
    const s = hypervisorSpec(vm);
    assert.deepEqual(
      [s.name, s.security, s.policy, s.firmware.kind, s.devices],
      ["vm_1", "sev-es", 0x7, "efi", []],
    );
    const rome = { sevAsids: 410, esAsids: 99, snpAsids: 0, esMode: "sev-es" as const };
    assert.deepEqual(poolReports(rome, { sev: 3, sevEs: 99, snp: 0 }), {
      snp: { first: 0, last: 0, size: 0, used: 0, free: 0 },
      sevEs: { first: 1, last: 99, size: 99, used: 99, free: 0 },
      sev: { first: 100, last: 509, size: 410, used: 3, free: 407 },
    });
    // An SNP host: the low range serves SEV-SNP guests, SEV-ES has none (CVE-2025-48514).
    assert.deepEqual(poolReports({ ...rome, esMode: "snp" }, { sev: 0, sevEs: 0, snp: 5 }).snp, {
      first: 1,
      last: 99,
      size: 99,
      used: 5,
      free: 94,
    });
    assert.equal(poolReports({ ...rome, esMode: "snp" }, NO_POOL_USE).sevEs.size, 0);
    // Ciphertext Hiding splits the low range: SNP 1..40, SEV-ES 41..99, whatever esMode says.
    const split = poolReports({ ...rome, snpAsids: 40 }, { sev: 1, sevEs: 2, snp: 3 });
    assert.deepEqual(
      [
        split.snp.first,
        split.snp.last,
        split.snp.free,
        split.sevEs.first,
        split.sevEs.last,
        split.sevEs.free,
      ],
      [1, 40, 37, 41, 99, 57],
    );
  });

  it("reports only the VM's own configuration when it has no host, and the power state for a mode change", () => {
    assert.deepEqual(configFindings(vm), []);
    const bad = {
      ...vm,
      spec: { ...linuxSpec, guestOs: "windows-server-2022", firmware: "bios" as const, secureBoot: true },
    };
    assert.deepEqual(
      configFindings(bad).map((f) => f.code),
      ["GUEST_OS_UNSUPPORTED", "EFI_REQUIRED", "SECURE_BOOT"],
    );
    assert.deepEqual(
      configFindings({ ...vm, spec: { ...linuxSpec, guestOs: "plan9" } }).map((f) => f.code),
      ["GUEST_OS_UNSUPPORTED"],
    );
    assert.deepEqual(
      modeChangeFindings(vm, "running", undefined).map((f) => f.code),
      ["POWER_STATE"],
    );
    assert.deepEqual(
      configFindings({ ...bad, securityMode: "none" }),
      [],
      "ordinary VMs have no requirements",
    );
  });
});
