/**
 * `ciphervisor serve`: as a real process (first start creates the data directory, the database and a 0600 admin
 * token it never prints; `--demo` builds the small datacenter; SIGTERM drains and exits 0; a restart finds the
 * token and brings the emulated hosts back), in-process for the benchmark fleet, and its flag errors.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ROLES } from "../../control/rbac.ts";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";
import { parseServeFlags, runServe } from "./serve.ts";

const bin = fileURLToPath(new URL("../../../bin/ciphervisor.js", import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cv-serve-"));
  dirs.push(d);
  return join(d, "data");
}

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  stdout(): string;
  stderr(): string;
  exit(): Promise<number | null>;
}

async function start(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [bin, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += String(d);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += String(d);
      const m = /listening on (http:\/\/\S+)\n/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    exited.then((code) => reject(new Error(`serve exited ${code} before listening: ${out}${err}`)));
  });
  // Let the banner finish.
  await new Promise((r) => setTimeout(r, 50));
  return { child, url, stdout: () => out, stderr: () => err, exit: () => exited };
}

async function get(url: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe("ciphervisor serve", () => {
  it("first start: data dir, database, 0600 admin token never printed; --demo datacenter; SIGTERM exits 0", async () => {
    const dir = tempDir();
    const s = await start(["--data-dir", dir, "--port", "0", "--demo", "--log-level", "warn"]);
    try {
      const tokenFile = join(dir, "admin.token");
      const token = readFileSync(tokenFile, "utf8").trim();
      assert.match(token, /^cvt_[A-Za-z0-9_-]{43}$/);
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      assert.ok(statSync(join(dir, "inventory.db")).isFile());
      assert.ok(!s.stdout().includes(token) && !s.stderr().includes(token), "the token is never printed");
      assert.match(s.stdout(), /API: +http:\/\/127\.0\.0\.1:\d+\/v1/);
      assert.match(s.stdout(), /CIPHERVISOR_TOKEN_FILE=.*admin\.token/);
      const me = await get(`${s.url}/v1/me`, token);
      assert.deepEqual(me.body.roles, ["admin"]);
      const hosts = (await get(`${s.url}/v1/hosts`, token)).body.items as {
        name: string;
        cpuGeneration: string;
        pools: { sevEs: { size: number } };
      }[];
      assert.deepEqual(hosts.map((h) => h.name).sort(), ["milan-1", "naples-1", "rome-1", "rome-2"]);
      assert.equal(
        hosts.find((h) => h.name === "rome-2")?.pools.sevEs.size,
        4,
        "one Rome host has a small ES pool",
      );
      const viewer = readFileSync(join(dir, "demo-tokens", "viewer.token"), "utf8").trim();
      const vms = (await get(`${s.url}/v1/vms?limit=100`, viewer)).body.items as {
        securityMode: string;
        powerState: string;
        spec: { guestOs: string };
      }[];
      const runningModes = new Set(vms.filter((v) => v.powerState === "running").map((v) => v.securityMode));
      assert.ok(runningModes.has("sev-es") && runningModes.has("none"), "running SEV-ES and ordinary VMs");
      assert.ok(new Set(vms.map((v) => v.spec.guestOs)).size >= 3, "mixed guest OS");
      assert.ok(vms.some((v) => v.powerState === "off"));
      for (const f of readdirSync(join(dir, "demo-tokens"))) {
        assert.equal(statSync(join(dir, "demo-tokens", f)).mode & 0o777, 0o600);
      }
      s.child.kill("SIGTERM");
      assert.equal(await s.exit(), 0);
      assert.match(s.stdout(), /stopped\n$/);
    } finally {
      s.child.kill("SIGKILL");
    }

    // Second start on the same directory: the token stays, the emulated hosts come back, and VMs that the dead
    // process ran are recorded powered off (never silently).
    const again = await start(["--data-dir", dir, "--port", "0", "--log-level", "warn"]);
    try {
      assert.match(again.stdout(), /existing/);
      assert.match(again.stdout(), /now powered off/);
      const token = readFileSync(join(dir, "admin.token"), "utf8").trim();
      const hosts = (await get(`${again.url}/v1/hosts`, token)).body.items as unknown[];
      assert.equal(hosts.length, 4);
      again.child.kill("SIGINT");
      assert.equal(await again.exit(), 0);
    } finally {
      again.child.kill("SIGKILL");
    }
  });

  it("builds a benchmark fleet with --demo-hosts/--demo-vms (10,000 VMs)", async () => {
    const dir = tempDir();
    const io = memoryIo();
    const stop = new AbortController();
    let url = "";
    const done = runServe(
      {
        dataDir: dir,
        host: "127.0.0.1",
        port: 0,
        demo: false,
        fleet: { hosts: 4, vms: 10_000 },
        logLevel: "silent",
      },
      io,
      {
        signal: stop.signal,
        onListening: (u) => {
          url = u;
        },
      },
    );
    while (url === "") await new Promise((r) => setTimeout(r, 20));
    const token = readFileSync(join(dir, "admin.token"), "utf8").trim();
    console.log(`# ${/fleet: .*/.exec(io.stdout)?.[0] ?? "fleet"}`);
    const page = await get(`${url}/v1/vms?limit=5000&powerState=off`, token);
    assert.equal((page.body.items as unknown[]).length, 5000);
    assert.equal(typeof page.body.nextCursor, "string");
    const hosts = (await get(`${url}/v1/hosts`, token)).body.items as { cpuGeneration: string }[];
    assert.deepEqual(hosts.map((h) => h.cpuGeneration).sort(), ["milan", "milan", "rome", "rome"]);
    stop.abort();
    await done;
    assert.match(io.stdout, /fleet: +4 emulated hosts, 10000 new VMs/);
  });

  it("--demo writes a token for every role but admin; the README's attestation step 1 works with the reader's", async () => {
    const dir = tempDir();
    const stop = new AbortController();
    let url = "";
    const done = runServe(
      { dataDir: dir, host: "127.0.0.1", port: 0, demo: true, logLevel: "silent" },
      memoryIo(),
      {
        signal: stop.signal,
        onListening: (u) => {
          url = u;
        },
      },
    );
    try {
      while (url === "") await new Promise((r) => setTimeout(r, 20));
      const tokens = join(dir, "demo-tokens");
      assert.deepEqual(
        readdirSync(tokens).sort(),
        ROLES.filter((r) => r !== "admin")
          .map((r) => `${r}.token`)
          .sort(),
      );
      const env = {
        HOME: dir,
        CIPHERVISOR_SERVER: url,
        CIPHERVISOR_TOKEN_FILE: join(tokens, "attestation-reader.token"),
      };
      const certs = join(dir, "certs");
      const info = memoryIo({ env });
      assert.equal(await main(["host", "sev-info", "rome-1", "--out", certs], info), 0, info.stderr);
      const verify = memoryIo({ env });
      assert.equal(
        await main(["owner", "verify-chain", "--dir", certs, "--generation", "emulated"], verify),
        0,
      );
      assert.equal(verify.stdout, "chain ok\n", verify.stderr);
    } finally {
      stop.abort();
      await done;
    }
  });

  it("rejects contradictory or malformed flags with a usage error", async () => {
    for (const args of [
      ["serve", "--demo", "--demo-hosts", "2"],
      ["serve", "--demo-vms", "5"],
      ["serve", "--port", "70000"],
      ["serve", "--demo-hosts", "0"],
      ["serve", "--log-level", "loud"],
      ["serve", "--db", "mysql://x"],
    ]) {
      const io = memoryIo();
      assert.equal(await main(args, io), 2, args.join(" "));
      assert.match(io.stderr, /^ciphervisor: .* \[(USAGE|INVALID_INPUT)\]\n$/);
    }
    // The lease: whole seconds in 1..3600, named in the error (an unknown flag would be USAGE, not this).
    for (const bad of ["0", "3601", "2.5", "soon"]) {
      const io = memoryIo();
      assert.equal(await main(["serve", "--operation-lease", bad], io), 2, bad);
      assert.match(
        io.stderr,
        /^ciphervisor: --operation-lease must be an integer in 1\.\.3600, got .* \[INVALID_INPUT\]\n$/,
      );
    }
    const flags = { host: "127.0.0.1", port: "0", logLevel: "silent" };
    assert.equal(parseServeFlags({ ...flags, operationLease: "2" }).leaseMs, 2000);
    assert.equal(parseServeFlags(flags).leaseMs, 30_000, "30 s by default");
  });
});
