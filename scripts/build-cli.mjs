#!/usr/bin/env node
// Bundles the command line into dist/cli/ (one chunk per noun) so the fleet commands start in ~0.1 s instead of
// paying tsx's loader for every module. bin/ciphervisor.js uses the bundle only when it is newer than every
// source file; otherwise it runs the TypeScript sources through tsx, so an edited checkout never runs stale code.
import { rmSync } from "node:fs";
import { build } from "esbuild";

// Chunk names carry content hashes: start empty so old chunks do not pile up.
rmSync("dist/cli", { recursive: true, force: true });

await build({
  entryPoints: ["src/cli/main.ts"],
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outdir: "dist/cli",
  packages: "external",
  logLevel: "warning",
});
