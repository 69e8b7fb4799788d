/**
 * `ciphervisor serve` as a child process for process tests: spawned (from dist/ through bin/, or from the sources
 * with `fromSources`), resolved once its banner names the URL, with its output kept for assertions.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sourceBinArgs } from "./source-bin.ts";

const bin = fileURLToPath(new URL("../../../bin/ciphervisor.js", import.meta.url));

export interface ServeChild {
  readonly child: ChildProcess;
  readonly url: string;
  stdout(): string;
  stderr(): string;
  exit(): Promise<number | null>;
}

/**
 * Starts `serve …args`. `fromSources` runs the sources under tsx (a test that must see code being edited without
 * a build); `settleMs` waits that long after the URL appears, so the rest of the banner is in `stdout()`;
 * `onSpawn` gets the process at once, before it listens (a crash test that kills a node while it starts).
 */
export async function startServeChild(
  args: readonly string[],
  options: {
    readonly fromSources?: boolean;
    readonly settleMs?: number;
    readonly onSpawn?: (child: ChildProcess) => void;
  } = {},
): Promise<ServeChild> {
  const argv = options.fromSources ? sourceBinArgs("serve", ...args) : [bin, "serve", ...args];
  const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  options.onSpawn?.(child);
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
  if (options.settleMs) await new Promise((r) => setTimeout(r, options.settleMs));
  return { child, url, stdout: () => out, stderr: () => err, exit: () => exited };
}
