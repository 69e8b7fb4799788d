/**
 * The package as a user gets it: `npm pack` of the built dist/ (the test runner builds first; this test builds only
 * when dist/ is missing, never over it, since other tests run the bin at the same time), installed from the
 * tarball into a fresh project, then the installed `ciphervisor` bin, a library import and a TypeScript consumer
 * of the shipped declarations — all from the temporary project, so nothing can come from this checkout's src/.
 *
 * The install skips install scripts (better-sqlite3 would compile for a minute; nothing run here loads it) and
 * prefers npm's cache. When the registry cannot be reached it skips, except under CI=true, where it fails.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string };

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** This process's environment without what an enclosing `npm test` adds, so the inner npm is not steered by it. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== "INIT_CWD") env[k] = v;
  }
  return { ...env, ...extra };
}

function run(
  cmd: string,
  args: readonly string[],
  cwd: string,
  env = cleanEnv(),
  timeout = 120_000,
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr: error && code === 1 && !stderr ? String(error) : stderr });
    });
  });
}

const NETWORK =
  /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT)\b/;

interface Packed {
  readonly filename: string;
  readonly unpackedSize: number;
  readonly entryCount: number;
  readonly files: { path: string }[];
}

describe("the packed package, installed from its tarball", () => {
  let tmp = "";
  let app = "";
  let packed: Packed | undefined;
  let unreachable: string | undefined;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "cv-pack-"));
    if (
      !existsSync(join(root, "dist", "cli", "main.js")) ||
      !existsSync(join(root, "dist", "types", "index.d.ts"))
    ) {
      const b = await run(process.execPath, ["scripts/build.mjs"], root);
      assert.equal(b.code, 0, `npm run build failed:\n${b.stderr}`);
    }
    // --ignore-scripts: `prepare` would rebuild dist/ under the feet of the tests running the bin right now.
    const p = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], root);
    assert.equal(p.code, 0, `npm pack failed:\n${p.stderr}`);
    packed = (JSON.parse(p.stdout) as Packed[])[0];
    assert.ok(packed, `npm pack printed no package: ${p.stdout}`);

    app = join(tmp, "app");
    mkdirSync(app);
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: "consumer", private: true, type: "module" }),
    );
    const tarball = join(tmp, packed.filename);
    const i = await run(
      "npm",
      [
        "install",
        tarball,
        "--ignore-scripts",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
      ],
      app,
    );
    if (i.code !== 0) {
      const output = `${i.stdout}${i.stderr}`;
      if (NETWORK.test(output) && process.env.CI !== "true") {
        unreachable = `the npm registry is unreachable (${NETWORK.exec(output)?.[1]}); CI=true fails here instead`;
        return;
      }
      assert.fail(`npm install of the tarball failed (exit ${i.code}):\n${output}`);
    }
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("ships the built package only: dist/ with declarations, the bin, docs — no sources or tests", () => {
    assert.ok(packed);
    const files = packed.files.map((f) => f.path);
    for (const f of [
      "package.json",
      "README.md",
      "bin/ciphervisor.js",
      "dist/index.js",
      "dist/cli/main.js",
    ]) {
      assert.ok(files.includes(f), `${f} is not in the tarball`);
    }
    assert.ok(files.includes("dist/types/index.d.ts"), "the library's declarations are not in the tarball");
    // Read at run time next to the chunk holding src/certs/roots.ts.
    assert.ok(
      files.some((f) => /^dist\/(.+\/)?builtin\/amd\/rome\/ark\.cert$/.test(f)),
      "the built-in roots of trust are not in the tarball",
    );
    assert.ok(
      files.some((f) => /^dist\/chunks\/serve-[\w-]+\.js$/.test(f)),
      "serve is not a chunk of its own (per-noun lazy loading)",
    );
    const stray = files.filter(
      (f) => !/^(bin|dist|docs)\//.test(f) && !["package.json", "README.md"].includes(f),
    );
    assert.deepEqual(stray, [], "files outside bin/, dist/, docs/");
    assert.deepEqual(
      files.filter((f) => /\.test\.|\/testing\/|\.ts$/.test(f) && !f.endsWith(".d.ts")),
      [],
      "tests, test helpers or TypeScript sources in the tarball",
    );
    assert.ok(packed.unpackedSize < 4 * 1024 * 1024, `the package unpacks to ${packed.unpackedSize} bytes`);
  });

  it("installs without the build tools and runs the installed bin", async (t) => {
    if (unreachable) return t.skip(unreachable);
    for (const dev of ["tsx", "esbuild", "typescript"]) {
      assert.ok(!existsSync(join(app, "node_modules", dev)), `${dev} was installed as a run-time dependency`);
    }
    const bin = join(app, "node_modules", ".bin", "ciphervisor");
    const version = await run(bin, ["--version"], app);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), pkg.version);
    assert.equal(version.stderr, "");

    // A noun chunk loaded on demand, reading the packaged roots of trust.
    const chain = await run(
      bin,
      ["owner", "verify-chain", "--dir", join(root, "test", "fixtures", "certs", "rome")],
      app,
    );
    assert.equal(chain.code, 0, chain.stderr);
    assert.equal(chain.stdout.trim(), "chain ok");

    // A fleet noun, with an empty home: no contexts yet.
    const home = join(tmp, "home");
    mkdirSync(home);
    const contexts = await run(
      bin,
      ["config", "get-contexts", "--json"],
      app,
      cleanEnv({ HOME: home, XDG_CONFIG_HOME: join(home, ".config") }),
    );
    assert.equal(contexts.code, 0, contexts.stderr);
    assert.deepEqual((JSON.parse(contexts.stdout) as { contexts: unknown[] }).contexts, []);
  });

  it("imports the library from the installed package and runs it", async (t) => {
    if (unreachable) return t.skip(unreachable);
    const script = `
      import { certs, createEmulatedPlatform, exportFullChain } from "ciphervisor";
      const { client } = createEmulatedPlatform({ generation: "milan", seed: 7 });
      const chain = certs.parseSevChain(exportFullChain(client));
      const report = certs.verifySevChain(chain, { roots: certs.loadBuiltinRoots("emulated") });
      console.log(JSON.stringify({
        from: import.meta.resolve("ciphervisor"),
        links: report.links.map((l) => l.link + " " + l.ok),
        root: report.root?.description.split(" (")[0],
        amd: certs.describeRoot(certs.loadBuiltinRoot("amd", "rome")),
      }));`;
    const r = await run(process.execPath, ["--input-type=module", "-e", script], app);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const out = JSON.parse(r.stdout) as { from: string; links: string[]; root: string; amd: string };
    assert.equal(out.from, pathToFileURL(join(app, "node_modules", "ciphervisor", "dist", "index.js")).href);
    assert.deepEqual(out.links, [
      "ARK true",
      "ARK → ASK true",
      "ASK → CEK true",
      "OCA true",
      "CEK → PEK true",
      "OCA → PEK true",
      "PEK → PDH true",
    ]);
    assert.equal(out.root, "emulated milan root");
    assert.equal(out.amd, "AMD rome root (ARK e6002122…)");
  });

  it("type-checks a TypeScript consumer against the shipped declarations", async (t) => {
    if (unreachable) return t.skip(unreachable);
    // Each @ts-expect-error must meet an error: declarations that resolved to `any`, or an `exports` map that let
    // any path through, would fail the compile as surely as a missing declaration.
    writeFileSync(
      join(app, "consumer.ts"),
      `// @ts-expect-error the package exports its entry point only
import type {} from "ciphervisor/dist/index.js";
import { type CiphervisorError, certs, createEmulatedPlatform, exportFullChain, type Generation } from "ciphervisor";

const generation: Generation = "milan";
const { client } = createEmulatedPlatform({ generation, seed: 7 });
const report: certs.SevChainReport = certs.verifySevChain(certs.parseSevChain(exportFullChain(client)), {
  roots: certs.loadBuiltinRoots("emulated"),
});
// @ts-expect-error not a CPU generation
const wrong: Generation = "sapphire";
// @ts-expect-error links carry a boolean verdict
const verdict: string = report.links[0]?.ok;
export const result: [boolean, Generation, string, CiphervisorError | undefined] = [
  report.links.every((l) => l.ok),
  wrong,
  verdict,
  undefined,
];
`,
    );
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    const args = ["--noEmit", "--strict", "--target", "es2022", "--lib", "es2022", "--module", "nodenext"];
    args.push(
      "--moduleResolution",
      "nodenext",
      "--types",
      "node",
      "--typeRoots",
      join(root, "node_modules", "@types"),
    );
    const r = await run(process.execPath, [tsc, ...args, "consumer.ts"], app);
    assert.equal(r.code, 0, `tsc:\n${r.stdout}${r.stderr}`);
  });
});
