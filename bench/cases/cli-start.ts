/**
 * How fast the `ciphervisor` command starts from the built package (bin/ciphervisor.js → dist/, which
 * `npm run bench` builds first), next to the floor measured in the same run: `node -e 0`, a node process that
 * loads nothing.
 *
 * - `--version`: the CLI's entry and commander, no noun;
 * - `config get-contexts --json` (empty HOME): one fleet noun loaded on demand, no network;
 * - `vm list`: spawn to the first HTTP request reaching a stub API server in this process (127.0.0.1, an empty
 *   page per request), and spawn to exit. Its floor, measured alike: a node process whose only code is one
 *   node:http GET of the same URL (the CLI's transport, src/cli/client/transport.ts). The same GET by node's
 *   `fetch()` is shown too: loading undici costs ~0.1 s before its first request, the reason the CLI does not use it.
 *
 * Runs are interleaved (one of each per round) so a busy machine slows all of them alike; medians are reported.
 * NODE_EXTRA_CA_CERTS is removed from the children's environment: when set (as on this workplace's machines) node
 * parses that CA bundle at every start, ~90 ms before any code of ours runs, the baseline included.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchCase, BenchResult, BenchRunOptions } from "../types.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = join(root, "bin", "ciphervisor.js");
const ROUNDS = 15;
const WARMUP = 2;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

interface Timed {
  /** Spawn to exit, ms. */
  readonly exit: number;
  /** Spawn to the first request at the stub server, ms (vm list only). */
  readonly request?: number;
}

/** Runs `node ...args` to its end; fails on a non-zero exit. `firstRequest` resolves when the stub is called. */
function time(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  firstRequest?: Promise<number>,
): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let request: number | undefined;
    firstRequest?.then((t) => {
      request = t - t0;
    });
    const child = spawn(process.execPath, args, {
      cwd: root,
      env,
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 20_000,
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const exit = performance.now() - t0;
      if (code !== 0) reject(new Error(`node ${args.join(" ")} exited ${code}: ${err.split("\n")[0]}`));
      else if (firstRequest && request === undefined) reject(new Error(`${args.join(" ")} sent no request`));
      else resolve({ exit, ...(request === undefined ? {} : { request }) });
    });
  });
}

async function run(options: BenchRunOptions): Promise<BenchResult> {
  const rounds = options.quick ? 1 : ROUNDS;
  const warmup = options.quick ? 0 : WARMUP;
  if (!existsSync(join(root, "dist", "cli", "main.js"))) {
    throw new Error("dist/ is not built: run 'npm run build' first");
  }
  const home = mkdtempSync(join(tmpdir(), "ciphervisor-bench-start-"));
  let onRequest: ((t: number) => void) | undefined;
  const server = createServer((_req, res) => {
    onRequest?.(performance.now());
    onRequest = undefined;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ items: [], nextCursor: null }));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
  delete env.NODE_EXTRA_CA_CERTS;
  const samples = { node: [] as number[], version: [] as number[], config: [] as number[] };
  const vmRequest: number[] = [];
  const vmExit: number[] = [];
  const httpRequest: number[] = [];
  const httpExit: number[] = [];
  const fetchRequest: number[] = [];
  const stubbed = (args: readonly string[]) => {
    const requested = new Promise<number>((r) => {
      onRequest = r;
    });
    return time(args, env, requested);
  };
  try {
    for (let i = 0; i < warmup + rounds; i++) {
      const node = await time(["-e", "0"], env);
      const version = await time([bin, "--version"], env);
      const config = await time([bin, "config", "get-contexts", "--json"], env);
      const vm = await stubbed([bin, "vm", "list", "--server", url, "--token", "bench"]);
      const floor = await stubbed(["-e", `require("node:http").get("${url}/v1/vms", (r) => r.resume());`]);
      const viaFetch = await stubbed([
        "--input-type=module",
        "-e",
        `await (await fetch("${url}/v1/vms")).text();`,
      ]);
      if (i < warmup) continue;
      samples.node.push(node.exit);
      samples.version.push(version.exit);
      samples.config.push(config.exit);
      vmRequest.push(vm.request ?? Number.NaN);
      vmExit.push(vm.exit);
      httpRequest.push(floor.request ?? Number.NaN);
      httpExit.push(floor.exit);
      fetchRequest.push(viaFetch.request ?? Number.NaN);
    }
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(home, { recursive: true, force: true });
  }
  const floor = median(samples.node);
  const version = median(samples.version);
  const request = median(vmRequest);
  return {
    metrics: [
      { name: "node-baseline", value: floor, unit: "ms" },
      { name: "version", value: version, unit: "ms", baseline: floor, baselineName: "node -e 0" },
      { name: "version-over-baseline", value: version - floor, unit: "ms" },
      { name: "config-noun", value: median(samples.config), unit: "ms" },
      {
        name: "vm-list-first-request",
        value: request,
        unit: "ms",
        baseline: median(httpRequest),
        baselineName: "node:http GET floor",
      },
      { name: "vm-list-first-request-over-baseline", value: request - floor, unit: "ms" },
      { name: "vm-list-exit", value: median(vmExit), unit: "ms" },
      { name: "http-floor-first-request", value: median(httpRequest), unit: "ms" },
      { name: "vm-list-first-request-over-http-floor", value: request - median(httpRequest), unit: "ms" },
      { name: "http-floor-exit", value: median(httpExit), unit: "ms" },
      { name: "fetch-first-request", value: median(fetchRequest), unit: "ms" },
    ],
    targets: [
      { metric: "version", max: 150, source: "'A real package': ciphervisor --version ≤ 0.15 s" },
      {
        metric: "vm-list-first-request",
        max: 150,
        source: "'A real package': a fleet command reaches its first HTTP request ≤ 0.15 s",
      },
    ],
    notes: `medians of ${rounds} interleaved rounds after ${warmup} warm-up rounds; spawn to exit unless named; bin → dist/; NODE_EXTRA_CA_CERTS unset for all children`,
  };
}

export const cases: BenchCase[] = [
  {
    name: "cli-start",
    description:
      "ciphervisor start time from dist/: --version, one noun, vm list to its first request, vs node -e 0",
    run,
  },
];
