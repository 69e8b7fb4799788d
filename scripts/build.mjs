#!/usr/bin/env node
// `npm run build` (also `prepare`, so `npm ci` in a checkout builds, and `npm test` before the tests): compiles the
// package that `npm pack` ships into dist/ — the only code the bin and `import … from "ciphervisor"` ever run.
//
//   dist/index.js        the library (src/index.ts)              ┐ one esbuild build with code splitting, so
//   dist/cli/main.js     the command line (src/cli/main.ts)      │ the two entries share one copy of every module
//   dist/chunks/*.js     shared code, and one chunk per CLI noun ┘ (same classes for both, no duplicate code)
//   dist/types/**.d.ts   declarations of the library (tsc, from src/index.ts's import graph only)
//   dist/web/            the dashboard (web/, Vite + Preact), served by `serve` at / (src/api/dashboard.ts)
//
// Why esbuild for the JavaScript: the CLI must start fast (≤ 0.15 s for `--version` and for a fleet command to reach
// its first HTTP request). With tsc's one-file-per-module output node's ESM loader resolves and loads every module
// on its own: 37 of ours for `vm list`, 170 for `serve` (the bundle: 18 and 19). Measured side by side here, the
// bundle starts 5–10% sooner for nouns (`vm list` first request 234 vs 250 ms, `owner verify-chain` 180 vs 198 ms,
// medians) and the same for `--version`; most of a fleet command's start is node, commander and node's fetch, not
// our modules. One CommonJS file without splitting measured no faster: it parses the whole CLI on every start.
// Per-noun lazy loading (src/cli/commands/index.ts) stays: every `import()` of a noun is its own chunk, so only
// `serve` loads fastify and the control plane. Dependencies stay external (installed beside the package), so
// native and data-reading packages (better-sqlite3, swagger-ui) work as usual. Why tsc for the declarations:
// esbuild emits none, and tsc checks the library's types as it goes (a type error fails the build).
//
// Files read at run time relative to a module (`new URL("./x", import.meta.url)`) must sit next to the chunk that
// module ends up in: ASSETS lists them, and the build fails on any bundled source that uses import.meta.url (or
// .dirname, .filename) without an entry, so a new one cannot ship broken. JSON imports are inlined by esbuild.
//
// Files found from the package root instead (the folder whose package.json is "ciphervisor", walking up from the
// module: the same folder from src/ and from any chunk) need no copy: PACKAGE_ROOT_FILES lists those sources and what
// they look for. The one today is the memory cipher's AES-NI addon, native/xex/build/Release/xex.node, built first
// by scripts/build-native.mjs; it is not part of dist/ (an installed package runs the WebAssembly path).
//
// The bin runs dist/ and never looks at src/: after editing sources, `npm run build` refreshes it (`npm test` builds
// first, so tests that spawn bin/ciphervisor.js run the current sources).
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { buildNative } from "./build-native.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

// Built into a fresh folder, then swapped in whole: chunk names carry content hashes, so old chunks do not pile up,
// and other processes running the bin meanwhile (parallel tests) see the old dist/ or the new one, never half of
// either. A failed build leaves the previous dist/ in place and exits non-zero.
const stage = `dist.new-${process.pid}`;
/** The dashboard's bundle (web/, Vite), built first and copied to dist/web/ through ASSETS. */
const webStage = `${stage}-web`;
rmSync(stage, { recursive: true, force: true });
rmSync(webStage, { recursive: true, force: true });

/** Sources that read files relative to themselves → the folder they read (copied beside their chunk). */
const ASSETS = {
  "src/certs/roots.ts": { from: "src/certs/builtin", to: "builtin" },
  // src/api/dashboard.ts serves ../web/ from its chunk (dist/chunks/ or dist/cli/): one copy at dist/web/.
  "src/api/dashboard.ts": { from: webStage, to: "../web" },
};

/** Sources that use import.meta.url only to find the package root → what they load from there (nothing copied). */
const PACKAGE_ROOT_FILES = {
  "src/crypto/xex-native.ts":
    "native/xex/build/Release/xex.node (optional: without it, the WebAssembly engine)",
};

function fail(message) {
  rmSync(stage, { recursive: true, force: true });
  rmSync(webStage, { recursive: true, force: true });
  process.stderr.write(`build: ${message}\n`);
  process.exit(1);
}

// The AES-NI addon (skipped when up to date; it prints why when it fails).
if (!buildNative()) fail("the memory cipher's native addon (native/xex) did not build (see above)");

// The dashboard: Preact through Vite (JSX by esbuild, no plugin), one hashed script and stylesheet under assets/.
try {
  const { build: viteBuild } = await import("vite");
  await viteBuild({
    configFile: "web/vite.config.ts",
    logLevel: "warn",
    build: { outDir: join(root, webStage), emptyOutDir: true },
  });
} catch (e) {
  fail(`the dashboard (web/) did not build: ${e instanceof Error ? e.message : e}`);
}

let result;
try {
  result = await build({
    entryPoints: { index: "src/index.ts", "cli/main": "src/cli/main.ts" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outdir: stage,
    chunkNames: "chunks/[name]-[hash]",
    packages: "external",
    metafile: true,
    logLevel: "warning",
  });
} catch {
  fail("esbuild failed (errors above)");
}

for (const input of Object.keys(result.metafile.inputs)) {
  if (!input.startsWith("src/") || ASSETS[input] || PACKAGE_ROOT_FILES[input]) continue;
  if (/\bimport\.meta\.(url|dirname|filename)\b/.test(readFileSync(input, "utf8"))) {
    fail(
      `${input} uses its own location (import.meta): list the files it reads in ASSETS (scripts/build.mjs)`,
    );
  }
}
for (const source of Object.keys(PACKAGE_ROOT_FILES)) {
  if (!result.metafile.inputs[source]) fail(`${source} (PACKAGE_ROOT_FILES) is not in the build any more`);
}
for (const [source, asset] of Object.entries(ASSETS)) {
  const outputs = Object.keys(result.metafile.outputs).filter(
    (f) => result.metafile.outputs[f].inputs[source],
  );
  if (outputs.length === 0) fail(`${source} (ASSETS) is not in the build any more`);
  for (const file of outputs) cpSync(asset.from, join(dirname(file), asset.to), { recursive: true });
}

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const types = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", `${stage}/types`], {
  stdio: "inherit",
});
if (types.status !== 0) fail("tsc failed to emit the declarations (errors above)");

// Two renames, so dist/ is missing only between them; the old tree is deleted after.
const old = `dist.old-${process.pid}`;
rmSync(old, { recursive: true, force: true });
if (existsSync("dist")) renameSync("dist", old);
renameSync(stage, "dist");
rmSync(old, { recursive: true, force: true });
rmSync(webStage, { recursive: true, force: true });
