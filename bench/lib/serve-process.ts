/**
 * `ciphervisor serve` as a child process, the way a user runs it (bin/ciphervisor.js → dist/): spawned, timed to
 * the moment both `/healthz` and `/readyz` answer 200, its memory read from /proc, stopped with SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The command under test; CIPHERVISOR_BENCH_BIN points elsewhere (a bundle of a work tree whose dist/ is stale). */
const bin = process.env.CIPHERVISOR_BENCH_BIN ?? join(root, "bin", "ciphervisor.js");

export interface Served {
  readonly url: string;
  readonly child: ChildProcess;
  /** Spawn to both probes answering 200, ms. */
  readonly readyMs: number;
  /** What serve printed on stdout up to then. */
  readonly banner: string;
}

/** Resident and peak resident memory of a process, MiB (Linux /proc; NaN elsewhere). */
export function memoryOf(pid: number | undefined): { rssMiB: number; peakMiB: number } {
  try {
    const st = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (key: string) => Number(st.match(new RegExp(`${key}:\\s+(\\d+)`))?.[1] ?? Number.NaN);
    return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
  } catch {
    return { rssMiB: Number.NaN, peakMiB: Number.NaN };
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

/** Starts `serve --data-dir dir --port 0 …args` and waits until it is healthy and ready. */
export async function startServe(dir: string, args: readonly string[], timeoutMs = 600_000): Promise<Served> {
  const t0 = performance.now();
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(
    process.execPath,
    [bin, "serve", "--data-dir", dir, "--port", "0", "--log-level", "warn", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env },
  );
  let banner = "";
  let errors = "";
  child.stdout?.on("data", (d) => {
    banner += String(d);
  });
  child.stderr?.on("data", (d) => {
    errors = `${errors}${String(d)}`.slice(-4000);
  });
  let url: string | undefined;
  while (performance.now() - t0 < timeoutMs) {
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${errors}`);
    url ??= banner.match(/listening on (http:\/\/\S+)/)?.[1];
    if (url !== undefined && (await answers(`${url}/healthz`)) && (await answers(`${url}/readyz`))) {
      return { url, child, readyMs: performance.now() - t0, banner };
    }
    await new Promise((r) => setTimeout(r, url === undefined ? 20 : 10));
  }
  child.kill("SIGKILL");
  throw new Error(`serve was not ready within ${timeoutMs} ms: ${errors}`);
}

/** SIGTERM and wait for the exit. */
export async function stopServe(s: Served): Promise<void> {
  if (s.child.exitCode !== null) return;
  const exited = new Promise((r) => s.child.once("exit", r));
  s.child.kill("SIGTERM");
  await exited;
}
