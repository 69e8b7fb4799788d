/**
 * The CLI as a process: exit codes through the process boundary, stdout carrying exactly one JSON document with
 * --json (nothing else, no progress), and Ctrl-C (SIGINT) mid-run — work in flight finishes, nothing new starts,
 * a summary is printed, the exit code is 130 and the inventory is consistent. The server runs in this process;
 * the gate on the emulated hosts holds VM starts in flight so the interrupt lands mid-run without timing.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Env } from "./io.ts";
import { gateStarts, oneLineError, withCliServer } from "./testing/cli-server.ts";

const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "ciphervisor.js");

interface Proc {
  readonly child: ChildProcess;
  /** Resolves when stderr has matched `re`. */
  stderrMatches(re: RegExp): Promise<void>;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>;
}

function start(env: Env, ...argv: string[]): Proc {
  const child = spawn(process.execPath, [bin, ...argv], {
    env: { PATH: process.env.PATH, ...env } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
    for (const w of [...waiters]) {
      if (w.re.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>(
    (resolve) => child.on("close", (code, signal) => resolve({ code, signal, out, err })),
  );
  return {
    child,
    done,
    stderrMatches: (re) =>
      new Promise<void>((resolve) => {
        if (re.test(err)) resolve();
        else waiters.push({ re, resolve });
      }),
  };
}

function run(env: Env, ...argv: string[]) {
  return start(env, ...argv).done;
}

describe("the ciphervisor process", () => {
  it("exits with the documented codes and keeps --json stdout pure", async () => {
    await withCliServer(
      async (s) => {
        const bulk = await run(s.env("ops"), "vm", "set", "--all", "--sev-es", "on", "--yes", "--json");
        assert.equal(bulk.code, 3, bulk.err);
        assert.equal(bulk.err, "");
        const doc = JSON.parse(bulk.out) as {
          ok: number;
          failed: { vm: string; code: string; message: string }[];
          operation: string;
        };
        assert.deepEqual(Object.keys(doc).slice(0, 3), ["ok", "failed", "operation"]);
        assert.equal(doc.failed.length, 5);
        assert.match(doc.operation, /^op_/);
        for (const f of doc.failed) assert.deepEqual(Object.keys(f), ["vm", "code", "message"]);

        const list = await run(s.env("viewer"), "vm", "list", "--json");
        assert.equal(list.code, 0);
        assert.equal((JSON.parse(list.out) as unknown[]).length, 9);

        const missing = await run(s.env("viewer"), "vm", "get", "nope");
        assert.equal(missing.code, 4);
        assert.equal(missing.out, "");
        assert.ok(oneLineError(missing.err, "NOT_FOUND"), missing.err);

        const usage = await run(s.env("viewer"), "vm", "list", "--selector", "mode=tdx");
        assert.equal(usage.code, 2);
        assert.ok(oneLineError(usage.err, "INVALID_INPUT"), usage.err);

        const refused = await run(s.env("ops"), "vm", "migrate", "db-1", "--live");
        assert.equal(refused.code, 6);
        assert.ok(oneLineError(refused.err, "LIVE_MIGRATION_UNSUPPORTED"), refused.err);

        const auth = await run(s.env("viewer", { CIPHERVISOR_TOKEN: "cvt_not-a-real-token" }), "vm", "list");
        assert.equal(auth.code, 5);
        assert.ok(oneLineError(auth.err, "UNAUTHENTICATED"), auth.err);

        const down = await run(
          { HOME: s.home, CIPHERVISOR_SERVER: "http://127.0.0.1:9", CIPHERVISOR_TOKEN: "x" },
          "vm",
          "list",
        );
        assert.equal(down.code, 1);
        assert.ok(oneLineError(down.err, "UNREACHABLE"), down.err);
      },
      { demo: true },
    );
  });

  it("on SIGINT finishes the starts in flight, starts nothing new, prints a summary and exits 130", async () => {
    await withCliServer(async (s) => {
      const rome = await s.host("rome-1", "rome");
      for (let i = 1; i <= 10; i++) await s.vm(`w-${String(i).padStart(2, "0")}`, "sev-es", { hostId: rome });
      const gate = gateStarts(s, 1);
      const p = start(s.env("ops"), "vm", "start", "--all", "--yes", "--parallel", "2");
      await gate.until(2);
      p.child.kill("SIGINT");
      await p.stderrMatches(/interrupted; finishing the VM starts in flight/);
      gate.open();
      const r = await p.done;
      assert.equal(r.code, 130, r.err);
      assert.match(r.out, /^started 3 VMs, 0 failed, 7 not started \(interrupted\)\n/);
      const vms = [...(await s.vms()).values()];
      assert.equal(vms.filter((v) => v.powerState === "running").length, 3);
      assert.equal(vms.filter((v) => v.powerState === "off").length, 7);
      const hosts = JSON.parse((await run(s.env("viewer"), "host", "get", "rome-1", "--json")).out);
      assert.equal(hosts.pools.sevEs.used, 3, "a key slot leaked or was not taken");
    });
  });

  it("on SIGINT during vm set --restart brings the VM in flight back up, changed, and touches no other", async () => {
    await withCliServer(async (s) => {
      const rome = await s.host("rome-1", "rome");
      for (let i = 1; i <= 6; i++) await s.vm(`r-${i}`, "none", { hostId: rome });
      assert.equal((await s.cli("ops", "vm", "start", "--all", "--yes")).code, 0);
      const gate = gateStarts(s, 0);
      const p = start(
        s.env("ops"),
        "vm",
        "set",
        "--selector",
        "name=r-*",
        "--sev-es",
        "on",
        "--restart",
        "--parallel",
        "1",
      );
      await gate.until(1);
      p.child.kill("SIGINT");
      await p.stderrMatches(/interrupted; finishing the VM changes and restarts in flight/);
      gate.open();
      const r = await p.done;
      assert.equal(r.code, 130, r.err);
      assert.match(r.out, /^changed 1 VM, 0 failed, 5 not started \(interrupted\)/);
      const vms = [...(await s.vms()).values()];
      assert.ok(
        vms.every((v) => v.powerState === "running"),
        "a VM was left powered off",
      );
      assert.deepEqual(vms.map((v) => v.securityMode).sort(), [
        "none",
        "none",
        "none",
        "none",
        "none",
        "sev-es",
      ]);
    });
  });
});
