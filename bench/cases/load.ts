/**
 * Mixed load (bench/lib/mixed-load.ts) against `serve --demo-hosts 1000 --demo-vms 100000`: requests per second,
 * p99 and the server's memory after warm-up and at the end, beside `/healthz` on the same server in the same run
 * (the server's own floor). The load suite (test/suites/load.test.ts) checks the same run's correctness.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { load } from "../lib/load.ts";
import { mixedLoad } from "../lib/mixed-load.ts";
import { startServe, stopServe } from "../lib/serve-process.ts";
import type { BenchCase, BenchResult, BenchRunOptions } from "../types.ts";

async function run(options: BenchRunOptions): Promise<BenchResult> {
  const [hosts, vms, seconds] = options.quick ? [10, 1_000, 2] : [1_000, 100_000, 60];
  const dir = mkdtempSync(join(tmpdir(), "cv-bench-load-"));
  const served = await startServe(join(dir, "data"), [
    "--demo-hosts",
    String(hosts),
    "--demo-vms",
    String(vms),
  ]);
  try {
    const admin = {
      authorization: `Bearer ${readFileSync(join(dir, "data", "admin.token"), "utf8").trim()}`,
    };
    const made = await fetch(`${served.url}/v1/tokens`, {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({ name: "bench-load", roles: ["operator"] }),
    });
    const operatorToken = ((await made.json()) as { secret: string }).secret;
    const page = (await (await fetch(`${served.url}/v1/vms?limit=1`, { headers: admin })).json()) as {
      items: { id: string }[];
    };
    const health = await load(`${served.url}/healthz`, { connections: 8, seconds: options.quick ? 1 : 5 });
    const r = await mixedLoad({
      url: served.url,
      pid: served.child.pid,
      operatorToken,
      someVmId: page.items[0]?.id ?? "",
      seconds,
      connections: 8,
    });
    const fivexx = Object.entries(r.statuses).reduce((n, [c, k]) => n + (c.startsWith("5") ? k : 0), 0);
    return {
      metrics: [
        {
          name: "mixed",
          value: r.rps,
          unit: "req/s",
          baseline: health.rps,
          baselineName: "/healthz, same server",
        },
        { name: "mixed-p99", value: r.p99Ms, unit: "ms" },
        { name: "5xx", value: fivexx, unit: "answers" },
        { name: "rss-after-warm-up", value: r.rssWarmMiB, unit: "MiB" },
        {
          name: "rss-at-end",
          value: r.rssEndMiB,
          unit: "MiB",
          baseline: r.rssWarmMiB,
          baselineName: "after warm-up",
        },
        { name: "vms-created", value: r.created, unit: "VMs" },
      ],
      targets: [{ metric: "5xx", max: 0, source: "issue 13: 60 s of mixed load, no 5xx" }],
      notes: `${seconds} s, 8 connections, ${vms} VMs; reads, filtered lists, a bulk dry run, creates and power-ons`,
    };
  } finally {
    await stopServe(served);
    rmSync(dir, { recursive: true, force: true });
  }
}

export const cases: BenchCase[] = [
  { name: "load-mixed", description: "mixed reads and writes under load", run },
];
