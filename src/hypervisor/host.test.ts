/**
 * The emulated host (issue: "The hypervisor host"): encrypted and ordinary VMs side by side, pool capacity, the
 * operation table cell by cell, migration, and requirement checks before any firmware call.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { decodeVmsa } from "../measure/vmsa.ts";
import { Host } from "./host.ts";
import {
  OPERATION_RULES,
  OPERATIONS,
  type Operation,
  SECURITY_MODES,
  type SecurityMode,
} from "./operation-rules.ts";
import { memoryHash, vmSpec } from "./test-support.ts";

/** GPA of the default workload's private `state` area (code at 1 MiB, one code page, then data). */
const STATE_GPA = 0x101000;

describe("encrypted and ordinary VMs on one Rome host", () => {
  it("run at the same time; the hypervisor sees ciphertext and an encrypted VMSA for SEV-ES, plaintext otherwise", () => {
    const host = new Host({ name: "rome-01", generation: "rome", seed: 1 });
    host.define(vmSpec("secret", { security: "sev-es" }));
    host.define(vmSpec("plain"));
    for (const n of ["secret", "plain"]) {
      const s = host.start(n).status;
      assert.equal(s.power, "running", `${n}: ${s.reason}`);
      assert.equal(s.console, "OK\n");
    }
    const counter = (vm: string) =>
      new DataView(host.view(vm)!.readGuestPhysical(STATE_GPA, 8).buffer).getBigUint64(0, true);
    assert.equal(counter("plain"), 16n, "ordinary VM: the hypervisor reads the counter in plaintext");
    assert.notEqual(counter("secret"), 16n, "SEV-ES VM: the hypervisor reads ciphertext");

    const plainArea = host.view("plain")!.saveArea();
    assert.equal(plainArea.kind, "vmcb");
    const saveArea = new Uint8Array(4096);
    saveArea.set(plainArea.bytes.subarray(0x400, 0x400 + 0x670));
    assert.equal(decodeVmsa(saveArea).rbx, 16n, "ordinary VM: registers readable in the VMCB save area");

    const esArea = host.view("secret")!.saveArea();
    assert.equal(esArea.kind, "vmsa-ciphertext");
    const vmsa = decodeVmsa(esArea.bytes);
    assert.notEqual(vmsa.rbx, 16n, "SEV-ES: the VMSA is ciphertext");
    assert.notEqual(vmsa.efer, 0x1d00n);
    const esVmcb = new Uint8Array(4096);
    esVmcb.set(
      host
        .view("secret")!
        .vmcbPage()
        .subarray(0x400, 0x400 + 0x670),
    );
    assert.equal(decodeVmsa(esVmcb).rbx, 0n, "SEV-ES: the VMCB save area holds no guest registers");
  });
});

describe("ASID pools on the host", () => {
  it("with min_sev_asid = 5 the fifth SEV-ES VM is refused naming the pool; SEV still starts; power-off frees a slot", () => {
    const host = new Host({ name: "rome-small", generation: "rome", seed: 2, minSevAsid: 5 });
    for (let i = 0; i < 6; i++) host.define(vmSpec(`es${i}`, { security: "sev-es" }));
    host.define(vmSpec("sev0", { security: "sev" }));
    for (let i = 0; i < 4; i++) assert.equal(host.start(`es${i}`).status.power, "running");
    assert.throws(
      () => host.start("es4"),
      (e: unknown) =>
        isCiphervisorError(e, "ASID_POOL_EXHAUSTED") && /SEV-ES ASIDs \(1\.\.4\) are in use/.test(e.message),
    );
    assert.equal(host.status("es4").power, "defined", "nothing was launched");
    assert.equal(host.firmware.platformStatus().guestCount, 4);
    assert.equal(host.start("sev0").status.asid, 5, "plain SEV comes from its own pool");
    host.stop("es1");
    const s = host.start("es4").status;
    assert.equal(s.power, "running");
    assert.equal(s.asid, 2, "the freed ASID was flushed (WBINVD + DF_FLUSH) and reused");
  });
});

/** Puts a VM of `mode` in the power state an operation needs. */
function prepared(mode: SecurityMode, op: Operation): { host: Host; target: Host } {
  const host = new Host({ name: `src-${mode}-${op}`, generation: "milan", seed: `${mode}-${op}` });
  const target = new Host({ name: `dst-${mode}-${op}`, generation: "milan", seed: `t-${mode}-${op}` });
  host.define(vmSpec("vm", { security: mode }));
  const needsOff =
    op === "power-on" || op === "reconfigure-powered-off" || op === "cold-migrate" || op === "cold-clone";
  if (!needsOff) host.start("vm");
  if (op === "resume" && mode === "none") host.perform("vm", "suspend");
  return { host, target };
}

describe("the operation table, every cell", () => {
  for (const mode of SECURITY_MODES) {
    for (const op of OPERATIONS) {
      const rule = OPERATION_RULES[mode][op];
      it(`${mode} × ${op}: ${rule.allowed ? "allowed" : rule.code}`, () => {
        const { host, target } = prepared(mode, op);
        const before = { status: JSON.stringify(host.status("vm")), mem: memoryHash(host, "vm") };
        if (rule.allowed) {
          const s = host.perform("vm", op, { target });
          assert.ok(s.name.length > 0);
          return;
        }
        assert.throws(
          () => host.perform("vm", op, { target }),
          (e: unknown) => isCiphervisorError(e, rule.code) && e.message.includes(rule.reason),
        );
        assert.equal(JSON.stringify(host.status("vm")), before.status, "the VM keeps its state");
        assert.equal(host.status("vm").power, "running", "the VM keeps running");
        assert.equal(memoryHash(host, "vm"), before.mem, "memory unchanged");
        assert.deepEqual(target.list(), [], "nothing reached the target");
      });
    }
  }

  it("a memory dump of an encrypted VM is allowed when its policy permits debug, and reads plaintext", () => {
    const host = new Host({ name: "dbg", generation: "rome", seed: 3 });
    host.define(vmSpec("debuggable", { security: "sev", policy: 0 }));
    host.start("debuggable");
    const dump = host.memoryDump("debuggable");
    const page = dump.get(STATE_GPA)!;
    assert.equal(new DataView(page.buffer).getBigUint64(0, true), 16n);
  });
});

describe("migration", () => {
  it("live migration of an ordinary VM keeps its memory and registers; the guest runs on", () => {
    const a = new Host({ name: "a", generation: "rome", seed: 4 });
    const b = new Host({ name: "b", generation: "rome", seed: 5 });
    a.define(vmSpec("web"));
    a.start("web");
    const src = a.view("web")!;
    const pagesBefore = new Map(
      src.guest.npt.entries().map(([gpa, e]) => [gpa, src.readPhysical(e.hpa, 4096)]),
    );
    const regsBefore = src.saveArea().bytes.subarray(0x400, 0x400 + 0x670);
    const moved = a.liveMigrate("web", b);
    assert.equal(moved.power, "running");
    assert.deepEqual(a.list(), []);
    const dst = b.view("web")!;
    for (const [gpa, data] of pagesBefore) {
      assert.deepEqual(dst.readGuestPhysical(gpa, 4096), data, `page 0x${gpa.toString(16)}`);
    }
    assert.deepEqual(dst.saveArea().bytes.subarray(0x400, 0x400 + 0x670), regsBefore);
    assert.equal(b.run("web", 10).console, "OK\n");
  });

  it("an SEV-ES VM cannot be live-migrated; powered off it cold-migrates and relaunches with a new ASID and the same digest", () => {
    const a = new Host({ name: "a", generation: "rome", seed: 6 });
    const b = new Host({ name: "b", generation: "rome", seed: 7 });
    b.define(vmSpec("occupant", { security: "sev-es" }));
    b.start("occupant");
    a.define(vmSpec("db", { security: "sev-es", vcpus: 2 }));
    const first = a.start("db").status;
    assert.throws(() => a.liveMigrate("db", b), { code: "LIVE_MIGRATION_UNSUPPORTED" });
    assert.equal(a.status("db").power, "running");
    a.stop("db");
    a.coldMigrate("db", b);
    const second = b.start("db").status;
    assert.equal(second.power, "running");
    assert.notEqual(second.asid, undefined);
    assert.equal(second.asid, 2, "a new ASID on the target (1 is taken there)");
    assert.equal(second.launchDigest, first.launchDigest, "the same measured launch");
  });
});

describe("requirement checks, before the firmware is touched", () => {
  const cases: {
    name: string;
    host: () => Host;
    spec: Parameters<typeof vmSpec>[1];
    code: string;
    message: RegExp;
  }[] = [
    {
      name: "SEV-ES on Naples",
      host: () => new Host({ name: "naples-01", generation: "naples", seed: 8 }),
      spec: { security: "sev-es" },
      code: "CPU_GENERATION",
      message: /naples .*SEV-ES needs rome \(EPYC 7xx2\) or later/,
    },
    {
      name: "no ES pool (min_sev_asid = 1)",
      host: () => new Host({ name: "rome-noes", generation: "rome", seed: 9, minSevAsid: 1 }),
      spec: { security: "sev-es" },
      code: "SEV_ES_POOL_EMPTY",
      message: /no SEV-ES ASIDs: its BIOS sets min_sev_asid = 1/,
    },
    {
      name: "Windows on SEV-ES",
      host: () => new Host({ name: "rome-w", generation: "rome", seed: 10 }),
      spec: { security: "sev-es", guestOs: "windows-server-2022" },
      code: "GUEST_OS_UNSUPPORTED",
      message: /Windows Server 2022 does not support SEV-ES/,
    },
    {
      name: "legacy BIOS",
      host: () => new Host({ name: "rome-b", generation: "rome", seed: 11 }),
      spec: { security: "sev", firmware: { kind: "bios" } },
      code: "EFI_REQUIRED",
      message: /SEV needs EFI firmware \(OVMF\)/,
    },
    {
      name: "old virtual hardware",
      host: () => new Host({ name: "rome-h", generation: "rome", seed: 12 }),
      spec: { security: "sev-es", hardwareVersion: 17 },
      code: "HARDWARE_VERSION",
      message: /virtual hardware version 18 or later; this VM has version 17/,
    },
    {
      name: "PCI passthrough",
      host: () => new Host({ name: "rome-p", generation: "rome", seed: 13 }),
      spec: { security: "sev", devices: [{ kind: "pci-passthrough", detail: "0000:41:00.0" }] },
      code: "DEVICE_UNSUPPORTED",
      message: /pci-passthrough \(0000:41:00\.0\)/,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code}`, () => {
      const host = c.host();
      host.define(vmSpec("vm", c.spec));
      const findings = host.requirementFindings(host.spec("vm"));
      assert.deepEqual(
        findings.map((f) => f.code),
        [c.code],
      );
      assert.match(findings[0]!.message, c.message);
      assert.throws(
        () => host.start("vm"),
        (e: unknown) => isCiphervisorError(e, "REQUIREMENT_FAILED") && c.message.test(e.message),
      );
      assert.equal(host.firmware.platformStatus().guestCount, 0, "no LAUNCH_START was issued");
      assert.equal(host.status("vm").power, "defined");
    });
  }

  it("a kernel without SEV-ES support forced onto SEV-ES dies at its first #VC with a reason a person understands", () => {
    // The check above stops this at the front door; here the table is bypassed on purpose to show what the
    // guest itself does (the emulated kernel has no #VC handler).
    const host = new Host({ name: "rome-vc", generation: "rome", seed: 14 });
    const spec = vmSpec("old", { security: "sev-es", guestOs: "linux-4.16" });
    host.define(spec);
    const original = host.requirementFindings.bind(host);
    host.requirementFindings = (s) => original(s).filter((f) => f.code !== "GUEST_OS_UNSUPPORTED");
    const s = host.start("old").status;
    assert.equal(s.power, "crashed");
    assert.match(s.reason ?? "", /does not support SEV-ES: unhandled #VC on/);
  });
});
