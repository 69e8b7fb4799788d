#!/usr/bin/env node
// The `ciphervisor` command. The sources are TypeScript run through tsx's loader, so a checkout works right after
// `npm ci` with no build step. The fleet commands (REST clients, started often and in pipelines) use the bundle in
// dist/cli/ (scripts/build-cli.mjs, run by `npm ci` and `npm test`) when it is newer than every source file.
import { readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const BUNDLED_NOUNS = new Set(["vm", "host", "operation", "audit", "token", "config"]);
const root = fileURLToPath(new URL("..", import.meta.url));

function bundleIsFresh() {
  try {
    const built = statSync(`${root}dist/cli/main.js`).mtimeMs;
    for (const f of readdirSync(`${root}src`, { recursive: true })) {
      if (statSync(`${root}src/${f}`).mtimeMs > built) return false;
    }
    return true;
  } catch {
    return false;
  }
}

let main;
if (BUNDLED_NOUNS.has(process.argv[2] ?? "") && bundleIsFresh()) {
  ({ main } = await import("../dist/cli/main.js"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../src/cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
