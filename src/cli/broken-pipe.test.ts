/**
 * `ciphervisor vm list | head -1` (issue 13): when the reader of stdout goes away the CLI stops at once, silently,
 * with exit 0 (`BROKEN_PIPE_EXIT`, README "Exit codes") — no EPIPE stack trace. The process runs the built
 * bin/ciphervisor.js (dist/) against a server in this process; the listing is made larger than a pipe's buffer
 * so that the write provably meets the closed pipe.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { NewVm } from "../control/inventory/types.ts";
import { BROKEN_PIPE_EXIT, type Env } from "./io.ts";
import { withCliServer } from "./testing/cli-server.ts";

const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "ciphervisor.js");

/** Runs the bin, reads stdout up to its first line, then closes the pipe; resolves with how the process ended. */
function firstLineThenClose(env: Env, ...argv: string[]) {
  const child = spawn(process.execPath, [bin, ...argv], {
    env: { PATH: process.env.PATH, ...env } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let first = "";
  let err = "";
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  child.stdout.on("data", (c: Buffer) => {
    if (first.includes("\n")) return;
    first += c.toString();
    if (first.includes("\n")) child.stdout.destroy();
  });
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; first: string; err: string }>(
    (resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal, first: first.split("\n")[0] ?? "", err })),
  );
}

describe("the ciphervisor process and a closed stdout", () => {
  it("stops quietly with exit 0 when the reader goes away (vm list | head -1)", async () => {
    await withCliServer(async (s) => {
      const host = await s.host("rome-1", "rome");
      // ~400 bytes a row in -o wide, ~800 in --json: several times the 64 KiB a pipe holds.
      const label = "l".repeat(250);
      const vms: NewVm[] = [];
      for (let i = 0; i < 400; i++) {
        vms.push({
          name: `p-${String(i).padStart(4, "0")}`,
          hostId: host,
          spec: { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 },
          securityMode: "none",
          policy: 0,
          labels: { note: label },
        });
      }
      await s.inventory.vms.createMany(vms);
      for (const argv of [
        ["vm", "list", "-o", "wide"],
        ["vm", "list", "--json"],
      ]) {
        const r = await firstLineThenClose(s.env("viewer"), ...argv);
        assert.equal(r.err, "", `${argv.join(" ")}: stderr`);
        assert.equal(r.signal, null);
        assert.equal(r.code, BROKEN_PIPE_EXIT, `${argv.join(" ")}: exit code`);
        assert.ok(r.first.startsWith(argv[2] === "--json" ? "[" : "ID"), r.first.slice(0, 80));
      }
    });
  });
});
