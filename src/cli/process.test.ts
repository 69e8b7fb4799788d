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

  it("on SIGINT stops following and says how to reattach; the server finishes every start", async () => {
    await withCliServer(async (s) => {
      const rome = await s.host("rome-1", "rome");
      for (let i = 1; i <= 10; i++) await s.vm(`w-${String(i).padStart(2, "0")}`, "sev-es", { hostId: rome });
      const gate = gateStarts(s, 1);
      const p = start(s.env("ops"), "vm", "start", "--all", "--yes", "--parallel", "2");
      await gate.until(2);
      p.child.kill("SIGINT");
      await p.stderrMatches(/goes on on the server; follow it with 'ciphervisor operation watch op_/);
      const r = await p.done;
      assert.equal(r.code, 130, r.err);
      const id = /operation watch (op_[0-9a-z]{26})/.exec(r.err)?.[1];
      assert.ok(id, r.err);
      assert.equal((await s.vms()).size, 10);
      assert.ok(
        [...(await s.vms()).values()].some((v) => v.powerState !== "running"),
        "the interrupt came before the operation could finish",
      );
      gate.open();
      // Reattach: the operation ran on without the client.
      const watch = await run(s.env("viewer"), "operation", "watch", id);
      assert.equal(watch.code, 0, watch.err);
      const vms = [...(await s.vms()).values()];
      assert.equal(vms.filter((v) => v.powerState === "running").length, 10);
      const host = JSON.parse((await run(s.env("viewer"), "host", "get", "rome-1", "--json")).out);
      assert.equal(host.pools.sevEs.used, 10, "a key slot leaked or was not taken");
    });
  });

  it("killed during vm set --restart, the operation still restarts every VM, changed", async () => {
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
      p.child.kill("SIGKILL");
      const r = await p.done;
      assert.equal(r.signal, "SIGKILL");
      gate.open();
      const op = (await s.inventory.operations.list({ kind: "vm.bulk-update" }, { limit: 10 })).items[0];
      assert.ok(op);
      const done = await s.cp.engine.waitFor(op.id, 60_000);
      assert.equal(done.status, "succeeded", JSON.stringify(done));
      const vms = [...(await s.vms()).values()];
      assert.deepEqual(
        vms.map((v) => [v.powerState, v.securityMode]),
        vms.map(() => ["running", "sev-es"]),
        "every VM restarted, changed",
      );
    });
  });

  it("an operation that fails on the server ends the CLI with exit 1 and its error, never a success", async () => {
    await withCliServer(
      async (s) => {
        for (let i = 1; i <= 6; i++) await s.vm(`f-${i}`);
        // The inventory fails after the first batch, as a full disk would.
        const inventory = s.inventory as { transaction: typeof s.inventory.transaction };
        const transaction = inventory.transaction.bind(s.inventory);
        let calls = 0;
        inventory.transaction = (fn) => {
          calls++;
          // The first transaction queues the operation, the second is its first batch of two VMs.
          if (calls > 2) return Promise.reject(new Error("database or disk is full"));
          return transaction(fn);
        };
        const r = await run(s.env("ops"), "vm", "set", "--all", "--sev-es", "on", "--yes", "--json");
        inventory.transaction = transaction;
        assert.equal(r.code, 1, r.err);
        assert.ok(oneLineError(r.err, "INTERNAL"), r.err);
        assert.match(r.err, /operation op_[0-9a-z]{26} failed: internal error: database or disk is full/);
        const doc = JSON.parse(r.out) as { status: string; error: { code: string } };
        assert.deepEqual([doc.status, doc.error.code], ["failed", "INTERNAL"]);
      },
      { batchSize: 2 },
    );
  });
});
