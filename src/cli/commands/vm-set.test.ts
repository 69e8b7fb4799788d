import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { memoryIo } from "../io.ts";
import { type CliServer, oneLineError, withCliServer } from "../testing/cli-server.ts";

interface Plan {
  whatIf: true;
  change: number;
  unchanged: number;
  refused: number;
  items: {
    name: string;
    outcome: "change" | "unchanged" | "refused";
    code?: string;
    reason?: string;
    action?: string;
  }[];
  capacity: {
    host: string;
    pool: string;
    size: number;
    used: number;
    usedAfter: number;
    vms: number;
    vmsAfter: number;
  }[];
}

interface Result {
  ok: number;
  changed: number;
  unchanged: number;
  failed: { vm: string; code: string; message: string }[];
  operation: string | null;
}

async function auditCount(s: CliServer, action: string): Promise<number> {
  return (await s.inventory.audit.list({ action }, { limit: 5000 })).items.length;
}

/** What a plan says per VM, in the shape a result can be compared with. */
function planned(p: Plan): { changed: string[]; refused: [string, string][]; unchanged: number } {
  return {
    changed: p.items
      .filter((i) => i.outcome === "change")
      .map((i) => i.name)
      .sort(),
    refused: p.items
      .filter((i) => i.outcome === "refused")
      .map((i): [string, string] => [i.name, i.code ?? ""])
      .sort(),
    unchanged: p.unchanged,
  };
}

describe("ciphervisor vm set", () => {
  it("--what-if changes nothing, and the real run then does exactly what it said (mixed fleet, exit 3)", async () => {
    await withCliServer(
      async (s) => {
        const before = await s.snapshot();
        const dryRuns = await s.dryRuns();
        const w = await s.cli("ops", "vm", "set", "--all", "--sev-es", "on", "--what-if", "--json");
        assert.equal(w.code, 0, w.err);
        assert.equal(await s.snapshot(), before, "the what-if changed the inventory or the audit log");
        assert.equal(await s.dryRuns(), dryRuns + 1, "one dry-run audit record");
        const plan = JSON.parse(w.out) as Plan;
        // The demo fleet: test-1 can change; batch-1 boots BIOS on an old hardware version; the running VMs are
        // bound to their mode until powered off; three SEV-ES VMs are already there.
        assert.deepEqual(planned(plan), {
          changed: ["test-1"],
          refused: [
            ["batch-1", "EFI_REQUIRED"],
            ["legacy-1", "POWER_STATE"],
            ["web-1", "POWER_STATE"],
            ["web-2", "POWER_STATE"],
            ["win-1", "POWER_STATE"],
          ],
          unchanged: 3,
        });
        assert.match(plan.items.find((i) => i.name === "batch-1")?.reason ?? "", /SEV-ES needs EFI firmware/);
        const rome1 = plan.capacity.find((c) => c.host === "rome-1" && c.pool === "sev-es");
        assert.deepEqual([rome1?.vms, rome1?.vmsAfter, rome1?.used, rome1?.usedAfter], [1, 2, 1, 1]);

        const table = await s.cli("ops", "vm", "set", "--all", "--sev-es", "on", "--what-if");
        assert.match(
          table.out,
          /^what-if: vm set sev-es — 9 VMs: 1 would change, 3 already as asked, 5 refused\. Nothing was changed\.\n/,
        );
        assert.match(table.out, /\ntest-1 +sev-es 0x7 +rome-1\n/);
        assert.equal(await s.snapshot(), before);

        const real = await s.cli("ops", "vm", "set", "--all", "--sev-es", "on", "--yes", "--json");
        assert.equal(real.code, 3, real.err);
        assert.equal(real.err, "");
        const r = JSON.parse(real.out) as Result;
        assert.match(r.operation ?? "", /^op_/);
        assert.deepEqual(
          {
            changed: (await s.cli("viewer", "vm", "list", "--selector", "mode=sev-es", "-o", "name")).out
              .split("\n")
              .filter((n) => n !== "" && !["db-1", "db-2", "vault-1"].includes(n)),
            refused: r.failed.map((f): [string, string] => [f.vm, f.code]).sort(),
            unchanged: r.unchanged,
          },
          planned(plan),
        );
        assert.equal(r.changed, 1);
        assert.equal(r.ok, 4);
        assert.match(r.failed.find((f) => f.vm === "win-1")?.message ?? "", /power it off first/);

        // Re-running changes nothing new: same refusals, nothing changed, no new enable records, no new versions.
        const enabled = await auditCount(s, "vm.security.enable");
        const versions = [...(await s.vms()).values()].map((v) => v.version);
        const again = await s.cli("ops", "vm", "set", "--all", "--sev-es", "on", "--yes", "--json");
        assert.equal(again.code, 3);
        const r2 = JSON.parse(again.out) as Result;
        assert.deepEqual([r2.changed, r2.unchanged, r2.failed.length], [0, 4, 5]);
        assert.equal(await auditCount(s, "vm.security.enable"), enabled);
        assert.deepEqual(
          [...(await s.vms()).values()].map((v) => v.version),
          versions,
        );

        const human = await s.cli("ops", "vm", "set", "--all", "--sev-es", "on", "--yes");
        assert.match(
          human.out,
          /^changed 0 VMs, 4 already as asked, 5 failed \(operation op_[0-9a-z]{26}\)\nVM +CODE +REASON\n/,
        );
      },
      { demo: true },
    );
  });

  it("--restart changes running VMs only within their hosts' free key slots, and never leaves one off", async () => {
    await withCliServer(async (s) => {
      // rome-2's BIOS leaves 4 SEV-ES slots; one is taken by an SEV-ES VM already running there.
      const rome2 = await s.host("rome-2", "rome", 5);
      await s.vm("es-0", "sev-es", { hostId: rome2 });
      for (let i = 1; i <= 5; i++) await s.vm(`app-${i}`, "none", { hostId: rome2 });
      const started = await s.cli("ops", "vm", "start", "--all", "--yes");
      assert.equal(started.code, 0, started.err);
      const before = await s.snapshot();
      const w = await s.cli(
        "ops",
        "vm",
        "set",
        "--selector",
        "name=app-*",
        "--sev-es",
        "on",
        "--restart",
        "--what-if",
        "--json",
      );
      assert.equal(w.code, 0, w.err);
      assert.equal(await s.snapshot(), before);
      const plan = JSON.parse(w.out) as Plan;
      // Three of the five fit (which three follows id order, random within a millisecond); two are refused.
      const p = planned(plan);
      assert.equal(p.changed.length, 3);
      assert.deepEqual(
        p.refused.map(([, code]) => code),
        ["ASID_POOL_EXHAUSTED", "ASID_POOL_EXHAUSTED"],
      );
      const refused = p.refused.map(([n]) => n);
      assert.match(
        plan.items.find((i) => i.name === refused[0])?.reason ?? "",
        /no free SEV-ES key slot.*stays running unchanged/,
      );
      assert.deepEqual(
        plan.capacity
          .filter((c) => c.pool === "sev-es")
          .map((c) => [c.host, c.pool, c.size, c.used, c.usedAfter]),
        [["rome-2", "sev-es", 4, 1, 4]],
      );

      const real = await s.cli(
        "ops",
        "vm",
        "set",
        "--selector",
        "name=app-*",
        "--sev-es",
        "on",
        "--restart",
        "--json",
      );
      assert.equal(real.code, 3, real.err);
      const r = JSON.parse(real.out) as Result;
      assert.deepEqual([r.ok, r.changed], [3, 3]);
      assert.deepEqual(r.failed.map((f): [string, string] => [f.vm, f.code]).sort(), planned(plan).refused);
      const vms = await s.vms();
      for (const n of p.changed) {
        assert.deepEqual([vms.get(n)?.securityMode, vms.get(n)?.powerState], ["sev-es", "running"], n);
      }
      for (const n of refused) {
        assert.deepEqual([vms.get(n)?.securityMode, vms.get(n)?.powerState], ["none", "running"], n);
      }
      // Without the power permission a restart is refused per VM, and nothing is touched.
      const noPower = await s.cli(
        "security-admin",
        "vm",
        "set",
        ...refused,
        "--sev-es",
        "on",
        "--restart",
        "--json",
      );
      assert.equal(noPower.code, 3);
      assert.deepEqual(
        (JSON.parse(noPower.out) as Result).failed.map((f) => f.code),
        ["FORBIDDEN", "FORBIDDEN"],
      );
    });
  });

  it("--restart over the demo fleet: running VMs change and come back, the ones already SEV-ES are unchanged", async () => {
    await withCliServer(
      async (s) => {
        // The report that started it: SEV-ES VMs already running on rome-1 came back as failed INTERNAL.
        const rome = await s.cli(
          "ops",
          "vm",
          "set",
          "--selector",
          "host=rome-1",
          "--sev-es",
          "on",
          "--restart",
          "--json",
        );
        assert.equal(rome.code, 0, rome.err);
        const r1 = JSON.parse(rome.out) as Result;
        assert.deepEqual([r1.changed, r1.unchanged, r1.failed], [2, 1, []]);

        const w = await s.cli(
          "ops",
          "vm",
          "set",
          "--all",
          "--sev-es",
          "on",
          "--restart",
          "--what-if",
          "--json",
        );
        assert.equal(w.code, 0, w.err);
        const plan = JSON.parse(w.out) as Plan & { restart: number };
        const real = await s.cli(
          "ops",
          "vm",
          "set",
          "--all",
          "--sev-es",
          "on",
          "--restart",
          "--yes",
          "--json",
        );
        assert.equal(real.code, 3, real.err);
        const r = JSON.parse(real.out) as Result;
        assert.deepEqual(planned(plan), {
          changed: ["web-2"],
          refused: [
            ["batch-1", "EFI_REQUIRED"],
            ["legacy-1", "CPU_GENERATION"],
            ["win-1", "GUEST_OS_UNSUPPORTED"],
          ],
          unchanged: 5,
        });
        assert.equal(plan.restart, 1);
        assert.deepEqual(
          r.failed.map((f): [string, string] => [f.vm, f.code]).sort(),
          planned(plan).refused,
          "the run refused what the plan refused",
        );
        assert.deepEqual([r.ok, r.changed, r.unchanged], [6, 1, 5]);
        const vms = await s.vms();
        const state = (n: string) => [vms.get(n)?.powerState, vms.get(n)?.securityMode];
        assert.deepEqual(state("web-1"), ["running", "sev-es"]);
        assert.deepEqual(state("web-2"), ["running", "sev-es"]);
        assert.deepEqual(state("test-1"), ["off", "sev-es"]);
        assert.deepEqual(state("legacy-1"), ["running", "sev"], "refused: left running as it was");
        assert.deepEqual(state("win-1"), ["running", "none"]);
        assert.deepEqual(state("batch-1"), ["off", "none"]);
        const op = (await s.inventory.operations.get(r.operation ?? ""))?.params;
        assert.deepEqual(
          [op?.restart, op?.parallel],
          [true, 4],
          "one server-side operation did the restarts",
        );
      },
      { demo: true },
    );
  });

  it("turning protection off needs --yes and the downgrade permission", async () => {
    await withCliServer(
      async (s) => {
        const no = await s.cli("all", "vm", "set", "vault-1", "--sev-es", "off");
        assert.equal(no.code, 2);
        assert.ok(oneLineError(no.err, "CONFIRMATION_REQUIRED"), no.err);
        assert.match(no.err, /turning protection off \(protection off\) for 1 VM exposes their memory/);
        const denied = await s.cli("ops", "vm", "set", "vault-1", "--sev-es", "off", "--yes");
        assert.equal(denied.code, 5, denied.err);
        assert.ok(oneLineError(denied.err, "FORBIDDEN"), denied.err);
        assert.equal((await s.vms()).get("vault-1")?.securityMode, "sev-es");
        const ok = await s.cli("all", "vm", "set", "vault-1", "--sev-es", "off", "--yes");
        assert.equal(ok.code, 0, ok.err);
        assert.deepEqual(
          [(await s.vms()).get("vault-1")?.securityMode, (await s.vms()).get("vault-1")?.policy],
          ["none", 0],
        );
        const downgrade = (await s.inventory.audit.list({ action: "vm.security.disable" }, { limit: 10 }))
          .items;
        assert.equal(downgrade.length, 1);
      },
      { demo: true },
    );
  });

  it("takes names from --from-file - (what vm list -o name prints) and refuses bad input in one line", async () => {
    await withCliServer(
      async (s) => {
        const list = await s.cli(
          "viewer",
          "vm",
          "list",
          "--selector",
          "power=off,mode=none,os=linux",
          "-o",
          "name",
        );
        assert.deepEqual(list.out, "batch-1\ntest-1\n");
        const io = memoryIo({ env: s.env("ops"), stdin: "test-1\n" });
        const r = await s.cliWith(io, "vm", "set", "--from-file", "-", "--sev-es", "on");
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /^changed 1 VM, 0 failed \(operation op_/);
        const bad = async (exit: number, code: string, ...argv: string[]) => {
          const x = await s.cli("ops", "vm", "set", ...argv);
          assert.equal(x.code, exit, `${argv.join(" ")}: ${x.err}`);
          assert.ok(oneLineError(x.err, code), x.err);
        };
        await bad(2, "USAGE", "test-1");
        await bad(2, "USAGE", "--sev-es", "on");
        await bad(2, "USAGE", "test-1", "--sev-es", "on", "--sev", "off");
        await bad(2, "INVALID_INPUT", "test-1", "--sev-es", "yes");
        await bad(2, "INVALID_INPUT", "test-1", "--policy", "NODBG,SPEED");
        await bad(2, "INVALID_INPUT", "test-1", "--policy", "0x1ffffffff");
        await bad(2, "INVALID_INPUT", "--selector", "mode=sev-tdx", "--sev-es", "on");
        await bad(4, "NOT_FOUND", "nope", "--sev-es", "on");
        await bad(2, "CONFIRMATION_REQUIRED", "--all", "--sev-es", "on");
        await bad(6, "POWER_STATE", "web-1", "--sev-es", "on");
        await bad(6, "GUEST_OS_UNSUPPORTED", "win-1", "--sev-es", "on", "--restart");
        await bad(5, "FORBIDDEN", "test-1", "--sev", "on", "--token", s.tokens.viewer);
        const policy = await s.cli(
          "ops",
          "vm",
          "set",
          "vault-1",
          "--policy",
          "NODBG,NOKS,ES,NOSEND",
          "--json",
        );
        assert.equal(policy.code, 0, policy.err);
        assert.equal((await s.vms()).get("vault-1")?.policy, 0xf);
      },
      { demo: true },
    );
  });

  it("draws progress on a terminal's stderr only, never into --json output", async () => {
    await withCliServer(async (s) => {
      for (let i = 1; i <= 3; i++) await s.vm(`p-${i}`);
      let drawn = "";
      const terminal = Object.assign(
        new Writable({
          write(chunk, _enc, done) {
            drawn += String(chunk);
            done();
          },
        }),
        { isTTY: true, columns: 120 },
      );
      const tty = (as: "ops" | "all") =>
        Object.assign(memoryIo({ env: s.env(as) }), { stderrIsTTY: true, progressStream: terminal });
      const j = await s.cliWith(tty("ops"), "vm", "set", "--all", "--sev-es", "on", "--yes", "--json");
      assert.equal(j.code, 0, j.err);
      assert.equal(drawn, "", "progress was drawn with --json");
      assert.equal((JSON.parse(j.out) as Result).changed, 3);
      const t = await s.cliWith(tty("all"), "vm", "set", "--all", "--sev-es", "off", "--yes");
      assert.equal(t.code, 0, t.err);
      assert.match(drawn, /vm set \[.*\] \d+% \| \d+\/3 \| ok \d+ failed 0 \| ETA/);
      assert.doesNotMatch(t.out, /ETA/);
      assert.ok(!t.out.includes(String.fromCharCode(27)), "terminal escapes on stdout");
      drawn = "";
      await s.cliWith(tty("ops"), "vm", "set", "--all", "--sev-es", "on", "--yes", "--quiet");
      assert.equal(drawn, "");
    });
  });
});
