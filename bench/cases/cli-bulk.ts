/**
 * The bulk case of issue 7: `ciphervisor vm set --all --sev-es on --yes` over 10,000 powered-off VMs, end to end —
 * a CLI child process → the REST API of a `serve` child process → the operation, its batched transactions over
 * SQLite and the hash-chained audit records — next to two floors measured in the same run, from copies of the same
 * fleet's database: the project's floor (the same 10,000 VM row changes and 10,000 audit records chained by the
 * project's own `chainAuditEntries`, written straight to SQLite with prepared statements in ONE transaction), and
 * issue 12's lean floor (the same rows, each audit record hashed as SHA-256 over the previous hash and its
 * `JSON.stringify`, as a plain script would; WAL, synchronous=NORMAL like the server).
 *
 * Before the measured run the server runs the same command's `--what-if` (the same runner in a rolled-back
 * transaction, changing nothing), then the change itself (timed too, reported as `first-run`) and its undoing
 * (`--sev-es off`), so the measured run meets a server that has made this change before, as one that has been up
 * for a while has; every bulk run must report 10,000 VMs changed. Memory: the peak
 * RSS of the CLI process (GNU time) and of the server (VmHWM) are reported; both stay bounded because neither
 * side keeps a promise per VM (the server writes in batches of 1,000; the CLI reads results in pages). Also
 * reported: what any CLI command costs here (`host list`: node starting, the CLI loading, one small request).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chainAuditEntries } from "../../src/control/audit/record.ts";
import { createControlPlane } from "../../src/control/control-plane.ts";
import { buildFleet } from "../../src/control/demo.ts";
import { DriverRegistry } from "../../src/control/drivers/driver.ts";
import { emulatedDriver } from "../../src/control/drivers/emulated-hosts.ts";
import { openSqliteDatabase } from "../../src/control/inventory/kysely/sqlite-dialect.ts";
import { openInventory } from "../../src/control/inventory/open.ts";
import type { BenchCase, BenchResult, BenchRunOptions } from "../types.ts";

const VMS = 10_000;
const HOSTS = 20;
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = join(root, "bin", "ciphervisor.js");

interface Run {
  readonly ms: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly maxRssKiB: number;
}

/** Runs the CLI in a child process under GNU time (peak RSS), timing spawn to exit. */
function cli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-f", "maxrss=%M", process.execPath, bin, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = performance.now() - t0;
      const m = /maxrss=(\d+)/.exec(stderr);
      resolve({
        ms,
        code,
        stdout,
        stderr: stderr.replace(/maxrss=\d+\n?/, ""),
        maxRssKiB: m ? Number(m[1]) : 0,
      });
    });
  });
}

/** Starts `serve` with a benchmark fleet on a free port; resolves with its URL once it listens. */
function serve(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        bin,
        "serve",
        "--data-dir",
        dataDir,
        "--port",
        "0",
        "--demo-hosts",
        String(HOSTS),
        "--demo-vms",
        String(VMS),
        "--log-level",
        "warn",
      ],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) resolve({ child, url: m[1] });
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("exit", (code) => reject(new Error(`serve exited (${code}): ${err.split("\n")[0]}`)));
  });
}

function peakRssKiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * A token with the security-admin role (to turn SEV-ES on) and the security-officer role (to turn it off again
 * between the runs), issued through the API with the admin token `serve` wrote.
 */
async function securityToken(url: string, dataDir: string): Promise<string> {
  const admin = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  const res = await fetch(`${url}/v1/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "bench", roles: ["security-admin", "security-officer"] }),
  });
  if (res.status !== 201) throw new Error(`token create: HTTP ${res.status}`);
  return ((await res.json()) as { secret: string }).secret;
}

/** Both floors, each on its own copy of one freshly built fleet database. */
async function floors(dir: string): Promise<{ project: number; lean: number }> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "floor.db");
  const inventory = await openInventory(path);
  const cp = createControlPlane({ inventory, drivers: new DriverRegistry([emulatedDriver()]) });
  await buildFleet(cp, HOSTS, VMS);
  await cp.stop(0);
  await inventory.close();
  const leanPath = join(dir, "lean.db");
  copyFileSync(path, leanPath);
  return { project: floor(path, projectChain), lean: floor(leanPath, leanChain) };
}

interface ChainedRow {
  readonly seq: number;
  readonly time: string;
  readonly target: string;
  readonly details: string;
  readonly prevHash: string;
  readonly hash: string;
}

const ACTOR = { id: "tok_bench", name: "bench" };
const DETAILS = {
  operationId: "op_floor",
  before: { securityMode: "none", policy: 0 },
  after: { securityMode: "sev-es", policy: 0x7 },
};

/** The project's chaining (canonical encoding, the audit module's hash). */
function projectChain(
  head: { seq: number; hash: string },
  ids: readonly string[],
  now: string,
): ChainedRow[] {
  const chained = chainAuditEntries(
    head,
    ids.map((id) => ({
      actor: ACTOR,
      action: "vm.security.enable",
      target: id,
      outcome: "ok" as const,
      details: DETAILS,
    })),
    now,
  );
  return chained.map(({ record: r, detailsJson }) => ({
    ...r,
    target: r.target ?? "",
    details: detailsJson,
  }));
}

/** What a plain script does: SHA-256 over the previous hash and the record's JSON.stringify. */
function leanChain(head: { seq: number; hash: string }, ids: readonly string[], now: string): ChainedRow[] {
  let { seq, hash } = head;
  const details = JSON.stringify(DETAILS);
  return ids.map((target) => {
    seq += 1;
    const prevHash = hash;
    const body = JSON.stringify({
      seq,
      time: now,
      actor: ACTOR,
      action: "vm.security.enable",
      target,
      outcome: "ok",
      details,
    });
    hash = createHash("sha256").update(prevHash).update(body).digest("hex");
    return { seq, time: now, target, details, prevHash, hash };
  });
}

/**
 * One floor over the database at `path`: in one transaction every VM row changed (mode, policy, version, time) and
 * one chained audit record per VM computed by `chain` and inserted, with the head advanced. Returns its ms.
 */
function floor(
  path: string,
  chain: (head: { seq: number; hash: string }, ids: readonly string[], now: string) => ChainedRow[],
): number {
  const db = openSqliteDatabase(path);
  try {
    const ids = (db.prepare("select id from vms order by id").all() as { id: string }[]).map((r) => r.id);
    const t0 = performance.now();
    const update = db.prepare(
      "update vms set security_mode = ?, policy = ?, updated_at = ?, version = version + 1 where id = ?",
    );
    const insert = db.prepare(
      "insert into audit (seq, time, actor_id, actor_name, action, target, outcome, details, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    db.transaction(() => {
      const now = new Date().toISOString();
      const head = db.prepare("select seq, hash from audit_head where id = 1").get() as {
        seq: number;
        hash: string;
      };
      for (const id of ids) update.run("sev-es", 0x7, now, id);
      const rows = chain({ seq: Number(head.seq), hash: head.hash }, ids, now);
      for (const r of rows) {
        insert.run(
          r.seq,
          r.time,
          ACTOR.id,
          ACTOR.name,
          "vm.security.enable",
          r.target,
          "ok",
          r.details,
          r.prevHash,
          r.hash,
        );
      }
      const last = rows[rows.length - 1];
      if (last) db.prepare("update audit_head set seq = ?, hash = ? where id = 1").run(last.seq, last.hash);
    })();
    return performance.now() - t0;
  } finally {
    db.close();
  }
}

const ROUNDS = 3;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

interface Round {
  readonly endToEnd: number;
  /** The same command as the first change this server made (its code paths still compiling). */
  readonly firstEndToEnd: number;
  /** The operation on the server, from its creation to its end (its own timestamps). */
  readonly serverOp: number;
  readonly cliRssKiB: number;
  readonly serverRssKiB: number;
  /** A CLI process that makes one small authenticated request (`host list`): what any command costs. */
  readonly cliFloor: number;
}

/** Waits past the server's idle checkpoint (200 ms after its last write), with room for a loaded machine. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 500));
}

/** Runs `vm set --all --sev-es <on|off> --yes --json`; throws unless it changed every VM. */
async function bulk(env: NodeJS.ProcessEnv, to: "on" | "off"): Promise<Run & { operation: string }> {
  const run = await cli(["vm", "set", "--all", "--sev-es", to, "--yes", "--json"], env);
  const doc = JSON.parse(run.stdout || "{}") as { changed?: number; failed?: unknown[]; operation?: string };
  if (run.code !== 0 || doc.changed !== VMS || doc.failed?.length !== 0 || !doc.operation) {
    throw new Error(
      `the bulk run (--sev-es ${to}) did not change ${VMS} VMs (exit ${run.code}): ${run.stderr.split("\n")[0]}`,
    );
  }
  return { ...run, operation: doc.operation };
}

/**
 * One measured run on a fresh server and fleet. The timed command meets a server that has already made this
 * change once and undone it, as a server that has been up a while has: the first run after a start also pays for
 * V8 compiling the write paths (reported beside it as `first-run`). Every timed command starts on an idle server:
 * it checkpoints its log once idle 200 ms after a write (sqlite-checkpoint.ts), and a command started inside that
 * window would time the checkpoint (~50 ms after a 10,000-VM run), not the command.
 */
async function round(dir: string): Promise<Round> {
  const dataDir = join(dir, "serve");
  const server = await serve(dataDir);
  try {
    const env = {
      CIPHERVISOR_SERVER: server.url,
      CIPHERVISOR_TOKEN: await securityToken(server.url, dataDir),
    };
    const warm = await cli(["vm", "set", "--all", "--sev-es", "on", "--what-if", "--json"], env);
    if (warm.code !== 0) throw new Error(`--what-if warm-up failed: ${warm.stderr.split("\n")[0]}`);
    await settle();
    const first = await bulk(env, "on");
    await settle();
    await bulk(env, "off");
    await settle();
    // Untimed: the route's first answer on a fresh server includes compiling its response serializer.
    await cli(["host", "list", "--json"], env);
    await settle();
    const small = await cli(["host", "list", "--json"], env);
    if (small.code !== 0) throw new Error(`host list failed: ${small.stderr.split("\n")[0]}`);
    await settle();
    const real = await bulk(env, "on");
    const op = (await (
      await fetch(`${server.url}/v1/operations/${real.operation}`, {
        headers: { authorization: `Bearer ${env.CIPHERVISOR_TOKEN}` },
      })
    ).json()) as { createdAt: string; finishedAt: string };
    return {
      endToEnd: real.ms,
      firstEndToEnd: first.ms,
      serverOp: Date.parse(op.finishedAt) - Date.parse(op.createdAt),
      cliRssKiB: real.maxRssKiB,
      cliFloor: small.ms,
      serverRssKiB: peakRssKiB(server.child.pid),
    };
  } finally {
    server.child.kill("SIGTERM");
    await new Promise((r) => server.child.once("exit", r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function run(options: BenchRunOptions): Promise<BenchResult> {
  const rounds = options.quick ? 1 : ROUNDS;
  const dir = mkdtempSync(join(tmpdir(), "ciphervisor-bench-cli-"));
  try {
    const done: Round[] = [];
    const projectFloors: number[] = [];
    const leanFloors: number[] = [];
    for (let i = 0; i < rounds; i++) {
      done.push(await round(dir));
      const f = await floors(join(dir, `floor-${i}`));
      projectFloors.push(f.project);
      leanFloors.push(f.lean);
    }
    const e2e = median(done.map((r) => r.endToEnd));
    const floorMs = median(projectFloors);
    const leanMs = median(leanFloors);
    const serverOp = median(done.map((r) => r.serverOp));
    return {
      metrics: [
        { name: "end-to-end", value: e2e, unit: "ms", baseline: leanMs, baselineName: "lean SQLite floor" },
        { name: "lean-floor", value: leanMs, unit: "ms" },
        {
          name: "first-run (the server's first change after its start)",
          value: median(done.map((r) => r.firstEndToEnd)),
          unit: "ms",
        },
        { name: "ratio to the lean floor", value: e2e / leanMs, unit: "x" },
        { name: "sqlite-floor (project's audit chaining)", value: floorMs, unit: "ms" },
        { name: "ratio to the project's floor", value: e2e / floorMs, unit: "x" },
        { name: "server-operation", value: serverOp, unit: "ms" },
        { name: "cli-and-http", value: e2e - serverOp, unit: "ms" },
        {
          name: "cli-floor (a CLI process, one small GET)",
          value: median(done.map((r) => r.cliFloor)),
          unit: "ms",
        },
        { name: "vms-per-second", value: (VMS / e2e) * 1000, unit: "VM/s" },
        { name: "cli-peak-rss", value: Math.max(...done.map((r) => r.cliRssKiB)) / 1024, unit: "MiB" },
        {
          name: "server-peak-rss",
          value: Math.max(...done.map((r) => r.serverRssKiB)) / 1024,
          unit: "MiB",
        },
      ],
      targets: [
        {
          metric: "end-to-end",
          max: 500,
          source: "issue 12: bulk SEV-ES 10,000 VMs, CLI end to end ≤ 0.5 s",
        },
        { metric: "ratio to the lean floor", max: 4, source: "issue 12: ≤ 4× the lean floor" },
      ],
      notes: `${VMS} powered-off VMs on ${HOSTS} emulated hosts; medians of ${rounds} rounds, each on a fresh serve (a --what-if, the change and its undoing before the timed run) and fresh floor databases; server-operation = the operation's own created→finished time`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const cases: BenchCase[] = [
  {
    name: "cli-bulk-sev-es-10k",
    description:
      "vm set --all --sev-es on --yes over 10,000 VMs, CLI process → API → store → audit, vs the SQLite floor",
    run,
  },
];
