/**
 * Fleet scale (issue 12): `serve --demo-hosts 10000 --demo-vms 200000` as a user runs it — the first build of the
 * fleet, a restart on the same data directory (spawn to `/healthz` and `/readyz` both answering, and the RSS
 * then), and `GET /v1/vms` under load from autocannon (16 connections, loopback) on the restarted server.
 *
 * Baselines, measured in the same run: the build beside `vms.createMany` of the same VMs into a fresh inventory
 * in this process (the insert floor); the restart beside reading the database file (the physical floor); list
 * pages beside a raw better-sqlite3 read of the same page plus `JSON.stringify` (single-threaded pages/s) and
 * beside `/healthz` on the same server; the filtered list beside the same indexed query, raw.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openInventory } from "../../src/control/inventory/open.ts";
import type { NewVm } from "../../src/control/inventory/types.ts";
import { load } from "../lib/load.ts";
import { memoryOf, startServe, stopServe } from "../lib/serve-process.ts";
import type { BenchCase, BenchMetric, BenchResult, BenchRunOptions } from "../types.ts";

const SIZES = {
  full: { hosts: 10_000, vms: 200_000, seconds: 10, restarts: 3, floorRounds: 30, distinctPages: 200 },
  quick: { hosts: 20, vms: 1000, seconds: 1, restarts: 1, floorRounds: 3, distinctPages: 1 },
};
const CONNECTIONS = 16;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** The insert floor: the fleet's VMs (unplaced, same spec and labels) through `createMany` on a fresh file. */
async function createManyFloor(vms: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "cv-bench-floor-"));
  const inventory = await openInventory(join(dir, "inventory.db"));
  try {
    const width = Math.max(6, String(vms).length);
    const rows: NewVm[] = Array.from({ length: vms }, (_, i) => ({
      name: `vm-${String(i + 1).padStart(width, "0")}`,
      spec: { vcpus: 2, memoryMiB: 64, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 },
      hostId: null,
      labels: { fleet: "bench", shard: String(i % 10) },
    }));
    const t0 = performance.now();
    await inventory.transaction((tx) => tx.vms.createMany(rows));
    return performance.now() - t0;
  } finally {
    await inventory.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The physical floor of a restart: reading every file of the inventory once. */
/** The paths of the first `pages` pages of 1,000 VMs, found by following the cursors once. */
async function pageWalk(url: string, headers: Record<string, string>, pages: number): Promise<string[]> {
  const paths: string[] = [];
  let cursor: string | null = null;
  do {
    const path: string = `/v1/vms?limit=1000${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
    paths.push(path);
    const page = (await (await fetch(`${url}${path}`, { headers })).json()) as { nextCursor: string | null };
    cursor = page.nextCursor;
  } while (cursor !== null && paths.length < pages);
  return paths;
}

function readFloor(dir: string): number {
  const t0 = performance.now();
  for (const f of readdirSync(dir)) if (f.startsWith("inventory.db")) readFileSync(join(dir, f));
  return performance.now() - t0;
}

/** Raw reads of what the list routes return, on a read-only connection to the same file: ms per call. */
function rawFloors(dir: string, hostId: string, rounds: number) {
  const db = new Database(join(dir, "inventory.db"), { readonly: true });
  try {
    const page = (limit: number) => {
      const stmt = db.prepare("select * from vms order by id limit ?");
      const ms: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const t0 = performance.now();
        JSON.stringify(stmt.all(limit + 1).slice(0, limit));
        ms.push(performance.now() - t0);
      }
      return median(ms);
    };
    const filtered = db.prepare(
      "select * from vms where security_mode = 'sev-es' and host_id = ? order by id limit 101",
    );
    const f: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      JSON.stringify(filtered.all(hostId));
      f.push(performance.now() - t0);
    }
    return { page1000: page(1000), page100: page(100), filtered: median(f) };
  } finally {
    db.close();
  }
}

async function measure(options: BenchRunOptions): Promise<BenchResult> {
  const size = options.quick ? SIZES.quick : SIZES.full;
  const fleet = ["--demo-hosts", String(size.hosts), "--demo-vms", String(size.vms)];
  const dir = mkdtempSync(join(tmpdir(), "cv-bench-fleet-"));
  const metrics: BenchMetric[] = [];
  try {
    const first = await startServe(dir, fleet);
    const firstMem = memoryOf(first.child.pid);
    await stopServe(first);
    const floor = await createManyFloor(size.vms);
    metrics.push(
      {
        name: "first build to ready",
        value: first.readyMs,
        unit: "ms",
        baseline: floor,
        baselineName: "createMany floor",
      },
      { name: "first build peak RSS", value: firstMem.peakMiB, unit: "MiB" },
    );

    const restarts: { ms: number; rss: number; peak: number }[] = [];
    let served = await startServe(dir, fleet);
    for (let i = 0; ; i++) {
      const m = memoryOf(served.child.pid);
      restarts.push({ ms: served.readyMs, rss: m.rssMiB, peak: m.peakMiB });
      if (i + 1 >= size.restarts) break;
      await stopServe(served);
      served = await startServe(dir, fleet);
    }
    metrics.push(
      {
        name: "restart to ready",
        value: median(restarts.map((r) => r.ms)),
        unit: "ms",
        baseline: readFloor(dir),
        baselineName: "reading the database file",
      },
      { name: "restart RSS at ready", value: median(restarts.map((r) => r.rss)), unit: "MiB" },
      { name: "restart peak RSS", value: Math.max(...restarts.map((r) => r.peak)), unit: "MiB" },
    );

    try {
      const token = readFileSync(join(dir, "admin.token"), "utf8").trim();
      const headers = { authorization: `Bearer ${token}` };
      const hosts = (await (await fetch(`${served.url}/v1/hosts?limit=1`, { headers })).json()) as {
        items: { id: string }[];
      };
      const hostId = hosts.items[0]?.id ?? "none";
      const run = (path: string) =>
        load(`${served.url}${path}`, { connections: CONNECTIONS, seconds: size.seconds, headers });
      const health = await run("/healthz");
      const l1000 = await run("/v1/vms?limit=1000");
      const l100 = await run("/v1/vms?limit=100");
      // The same load over distinct pages, more than the page cache holds, visited in a cycle: every answer is a
      // fresh read and serialization (what a client paging the whole fleet gets).
      const walk = await pageWalk(served.url, headers, size.distinctPages);
      const l1000Fresh = await load(served.url, {
        connections: CONNECTIONS,
        seconds: size.seconds,
        headers,
        paths: walk,
      });
      const filtered = await run(`/v1/vms?securityMode=sev-es&hostId=${hostId}`);
      const raw = rawFloors(dir, hostId, size.floorRounds);
      const floor1000 = 1000 / raw.page1000;
      const floor100 = 1000 / raw.page100;
      metrics.push(
        { name: "/healthz", value: health.rps, unit: "req/s" },
        {
          name: "list limit=1000",
          value: l1000.rps,
          unit: "req/s",
          baseline: floor1000,
          baselineName: "raw SQLite read + JSON.stringify, pages/s, 1 thread",
        },
        {
          name: "list limit=1000 vs /healthz",
          value: l1000.rps,
          unit: "req/s",
          baseline: health.rps,
          baselineName: "/healthz",
        },
        {
          name: "list limit=1000 p99",
          value: l1000.p99Ms,
          unit: "ms",
          baseline: raw.page1000,
          baselineName: "raw read + stringify, ms",
        },
        {
          name: "list limit=1000, distinct pages (no cache hits)",
          value: l1000Fresh.rps,
          unit: "req/s",
          baseline: floor1000,
          baselineName: "raw SQLite read + JSON.stringify, pages/s, 1 thread",
        },
        {
          name: "list limit=1000, distinct pages p99",
          value: l1000Fresh.p99Ms,
          unit: "ms",
          baseline: raw.page1000,
          baselineName: "raw read + stringify, ms",
        },
        {
          name: "list limit=100",
          value: l100.rps,
          unit: "req/s",
          baseline: floor100,
          baselineName: "raw SQLite read + JSON.stringify, pages/s, 1 thread",
        },
        {
          name: "list limit=100 p99",
          value: l100.p99Ms,
          unit: "ms",
          baseline: raw.page100,
          baselineName: "raw read + stringify, ms",
        },
        {
          name: "filtered list p99",
          value: filtered.p99Ms,
          unit: "ms",
          baseline: raw.filtered,
          baselineName: "indexed raw query, ms",
        },
        { name: "filtered list", value: filtered.rps, unit: "req/s" },
      );
    } finally {
      await stopServe(served);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    metrics,
    targets: [
      { metric: "first build to ready", max: 30_000, source: "issue 12" },
      { metric: "restart to ready", max: 5000, source: "issue 12" },
      { metric: "restart peak RSS", max: 1024, source: "issue 12 (≤ 1 GiB)" },
      { metric: "list limit=1000", min: 1000, source: "issue 12" },
      { metric: "list limit=1000 p99", max: 50, source: "issue 12" },
      { metric: "list limit=100", min: 4000, source: "issue 12" },
      { metric: "filtered list p99", max: 20, source: "issue 12" },
    ],
    notes: `${size.hosts} hosts, ${size.vms} VMs; serve spawned from bin/ (dist/); restart = median of ${size.restarts}; autocannon ${CONNECTIONS} connections × ${size.seconds} s per route, on the same 2-core machine as the server`,
  };
}

export const cases: BenchCase[] = [
  {
    name: "fleet-10k-hosts-200k-vms",
    description:
      "serve --demo-hosts 10000 --demo-vms 200000: first build, restart, and GET /v1/vms under load",
    run: measure,
  },
];
