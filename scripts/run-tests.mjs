#!/usr/bin/env node
// The project's one test command (`npm test`): type-check, lint, then every *.test.ts under src/ and test/ with
// node's test runner through tsx. Node 20 takes no globs, so the files are listed here.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) find(p, out);
    else if (p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith("--"));
const quick = args.includes("--quick");
const files = (only.length ? only : [...find("src"), ...find("test")]).sort();

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!quick) {
  run("npx", ["tsc", "--noEmit"]);
  run("npx", ["biome", "check", "."]);
}
// The CLI bundle the fleet commands start from (bin/ciphervisor.js falls back to the sources when it is stale).
run(process.execPath, ["scripts/build-cli.mjs"]);
run(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...files]);
