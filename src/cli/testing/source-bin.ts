/**
 * The `ciphervisor` command run from the sources (under tsx) instead of dist/: for process tests that must see the
 * sources being edited without a build. Spawn it with `sourceBinArgs(...)`.
 *
 * @example
 * ```ts
 * spawn(process.execPath, sourceBinArgs("serve", "--port", "0"));
 * ```
 */
import { fileURLToPath } from "node:url";
import { main } from "../main.ts";

/** node's argv for running the CLI from the sources with `args`. */
export function sourceBinArgs(...args: string[]): string[] {
  return ["--import", import.meta.resolve("tsx"), fileURLToPath(import.meta.url), ...args];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
