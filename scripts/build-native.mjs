#!/usr/bin/env node
// Builds the memory cipher's AES-NI addon (native/xex: binding.gyp + xex.c) into native/xex/build/Release/xex.node,
// which src/crypto/xex-native.ts loads from the package root. Called by scripts/build.mjs (so by `npm ci` through
// `prepare`, by `npm test` and by `npm run bench`); runs alone as `node scripts/build-native.mjs [--force]`.
//
// - Skipped when xex.node is newer than its sources: the build runs often and node-gyp takes seconds. The addon is
//   Node-API, ABI-stable across Node versions, so a new node needs no rebuild.
// - node-gyp is npm's bundled copy (`npm_config_node_gyp`, which npm sets inside npm scripts, else the one beside the
//   npm on PATH or beside this node), run with this node, and with `--nodedir` = this node's prefix when it has the
//   headers, so it never downloads them (CI reaches the npm registry and Debian, nothing else).
// - Built in a temporary copy of native/xex, then renamed into place: a failed or concurrent build never leaves a
//   half-written xex.node for a running process to load.
// - x64 only (AES-NI). Elsewhere one line says so and the WebAssembly path is used. On x64 Linux, where the project
//   is tested and benchmarked, a failed build fails; on other x64 systems it warns and continues.
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "native", "xex");
const SOURCES = ["binding.gyp", "xex.c"];
/** Kept in step with XEX_ADDON_PATH in src/crypto/xex-native.ts. */
export const ADDON = join(dir, "build", "Release", "xex.node");

function say(line) {
  process.stderr.write(`build-native: ${line}\n`);
}

/** npm's bundled node-gyp.js, or undefined. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  // `npm` on PATH, through its symlink to …/npm/bin/npm-cli.js: node-gyp sits in …/npm/node_modules/.
  for (const p of (process.env.PATH ?? "").split(delimiter)) {
    if (!p) continue;
    const npm = join(p, process.platform === "win32" ? "npm.cmd" : "npm");
    if (!existsSync(npm)) continue;
    try {
      candidates.push(
        join(dirname(realpathSync(npm)), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"),
      );
    } catch {
      // A dangling link: try the next.
    }
  }
  if (process.env.npm_execpath)
    candidates.push(
      join(dirname(process.env.npm_execpath), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"),
    );
  // The usual layout of a node install: <prefix>/lib/node_modules/npm.
  const prefix = dirname(dirname(process.execPath));
  candidates.push(
    join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  );
  return candidates.find((c) => existsSync(c));
}

function upToDate() {
  if (!existsSync(ADDON)) return false;
  const built = statSync(ADDON).mtimeMs;
  return SOURCES.every((s) => statSync(join(dir, s)).mtimeMs < built);
}

/**
 * Builds the addon when needed. Returns true when it is built or up to date, or when none is expected (not x64);
 * false after printing why the build failed.
 */
export function buildNative({ force = false } = {}) {
  if (process.arch !== "x64") {
    say(`no AES-NI addon on ${process.arch} (x64 only): the memory cipher runs its WebAssembly path`);
    return true;
  }
  if (!force && upToDate()) return true;
  const strict = process.platform === "linux";
  const failed = (why) => {
    if (strict) {
      say(`*** native/xex (the memory cipher's AES-NI addon) did not build: ${why} ***`);
      return false;
    }
    say(
      `native/xex did not build on ${process.platform}-x64 (${why}): the memory cipher runs its WebAssembly path`,
    );
    return true;
  };
  const gyp = findNodeGyp();
  if (!gyp)
    return failed("npm's bundled node-gyp was not found (npm_config_node_gyp, npm on PATH, node's prefix)");
  const args = [gyp, "rebuild", "--release", "--loglevel=warn"];
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
  else say(`no headers under ${prefix}/include/node: node-gyp will fetch them`);

  const work = mkdtempSync(join(tmpdir(), "ciphervisor-xex-"));
  try {
    for (const s of SOURCES) copyFileSync(join(dir, s), join(work, s));
    // Quiet when it works (make's progress lines would repeat at every fresh build); its whole output when not,
    // and the compiler's warnings either way.
    const r = spawnSync(process.execPath, args, { cwd: work, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
    if (r.error) return failed(`node-gyp did not run (${r.error.message})`);
    if (r.status !== 0) {
      process.stderr.write(`${r.stdout}${r.stderr}`);
      return failed(`node-gyp exited ${r.status ?? r.signal} (its output is above)`);
    }
    if (/warning:/.test(r.stderr)) process.stderr.write(r.stderr);
    const out = join(work, "build", "Release", "xex.node");
    if (!existsSync(out)) return failed(`node-gyp succeeded but wrote no ${out}`);
    mkdirSync(dirname(ADDON), { recursive: true });
    const staged = `${ADDON}.${process.pid}`;
    copyFileSync(out, staged);
    renameSync(staged, ADDON);
    say(`built ${ADDON.slice(root.length + 1)}`);
    return true;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!buildNative({ force: process.argv.includes("--force") })) process.exit(1);
}
