#!/usr/bin/env node
// The project's one test command (`npm test`): type-check, lint, then every *.test.ts under src/, test/, web/ and bench/ with
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
const files = (
  only.length ? only : [...find("src"), ...find("test"), ...find("web"), ...find("bench")]
).sort();

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!quick) {
  run("npx", ["tsc", "--noEmit"]);
  // The dashboard has its own project (DOM types, Preact JSX): web/tsconfig.json.
  run("npx", ["tsc", "--noEmit", "-p", "web"]);
  run("npx", ["biome", "check", "."]);
}
// dist/, which bin/ciphervisor.js runs and the package test packs: rebuilt first, so the tests that spawn the bin
// (or install the packed package) exercise the current sources.
run(process.execPath, ["scripts/build.mjs"]);
run(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...files]);
