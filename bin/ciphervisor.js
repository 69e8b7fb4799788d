#!/usr/bin/env node
// The `ciphervisor` command. It runs the compiled package in dist/ (scripts/build.mjs) and nothing else: no
// TypeScript loader, no look at src/. In a checkout `npm ci` builds dist/ (`prepare`) and `npm test` rebuilds it
// before the tests; after editing sources run `npm run build` to see the change here.
let main;
try {
  ({ main } = await import("../dist/cli/main.js"));
} catch (e) {
  if (e?.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes("dist/cli/main.js")) {
    process.stderr.write(
      "ciphervisor: dist/ is missing from this checkout; run 'npm run build' [INTERNAL]\n",
    );
    process.exit(1);
  }
  throw e;
}
process.exitCode = await main(process.argv.slice(2));
