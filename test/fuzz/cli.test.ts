/**
 * Fuzzing the command line (src/cli): `main()` itself, in-process with a recording io (`memoryIo`), on arbitrary
 * argv arrays — the CLI's command words mixed with its own flags (taken from the command tree, as `completion`
 * does), `--flag=value` forms, `--`, empty strings, control characters, lone surrogates and very long values.
 *
 * What runs: commander's parsing and, for the commands that only read local files and talk to the API (vm, host,
 * image, operation, audit, token list/revoke, config, completion, sev status), their whole flag validation — with the
 * network cut (node:http and node:https refuse every request at once, counted) and the environment, HOME and config
 * file in a temp directory. The other commands (serve, demo, owner, firmware, sev export, token create) write
 * files, listen or compute for long: their actions are replaced by a recorder, so their flags are parsed by
 * commander but nothing they would do happens.
 *
 * Properties: `main` resolves (never throws) with a documented exit code; every failure is one line
 * `ciphervisor: <message> [CODE]` with a stable code (ERROR_CODES, or the client's UNREACHABLE/TIMEOUT) and the exit
 * code its class gives (a usage mistake: exit 2), or commander's help for an incomplete command line (exit 2); no
 * untyped exception (INTERNAL) escapes; no line of stdout or stderr carries a raw control character (issue 13:
 * escape on output); the token never appears. Budget and seed: test/fuzz/support.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Command } from "commander";
import fc from "fast-check";
import { commandTree } from "../../src/cli/commands/completion.ts";
import { ExitCode, exitCodeFor } from "../../src/cli/exit-codes.ts";
import { memoryIo } from "../../src/cli/io.ts";
import { buildProgram, main } from "../../src/cli/main.ts";
import { ERROR_CODES, type ErrorCode, isErrorCode } from "../../src/errors.ts";
import { params } from "./support.ts";

// ---- the sandbox -------------------------------------------------------------------------------------------------

/** Requests the CLI tried to send: the network is cut, every one fails as a refused connection. */
let attempts = 0;
function refuse(): never {
  attempts++;
  throw Object.assign(new Error("fuzz: the network is cut"), { code: "ECONNREFUSED" });
}
http.request = refuse as typeof http.request;
http.get = refuse as typeof http.get;
https.request = refuse as typeof https.request;
https.get = refuse as typeof https.get;
// ESM importers (`import { request } from "node:http"`) see the stubs too.
syncBuiltinESMExports();

/**
 * Commands whose real action runs: they validate their flags, read local files, and send requests (refused). Every
 * other action is replaced by a recorder: a command not listed here never does anything, so a new command that
 * writes files is safe by default.
 */
const LIVE = [/^vm /, /^host /, /^image /, /^operation /, /^audit /, /^config /, /^completion$/];
const LIVE_EXACT = new Set(["token list", "token revoke", "sev status"]);

function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** The command line's outcome as the recorder saw it: the command path that ran (or was recorded). */
let ran: { path: string; live: boolean } | undefined;
type Handler = (...args: unknown[]) => void | Promise<void>;
const realAction = Command.prototype.action;
/**
 * Every command's action, as the command files register it, goes through this wrapper: it records which command
 * commander chose and runs the real action only for LIVE commands.
 */
Command.prototype.action = function action(this: Command, fn: Handler) {
  return realAction.call(this, (...args: unknown[]) => {
    const path = pathOf(this);
    const live = LIVE.some((re) => re.test(path)) || LIVE_EXACT.has(path);
    ran = { path, live };
    return live ? fn(...args) : undefined;
  });
};

const home = mkdtempSync(join(tmpdir(), "cv-fuzz-cli-"));
after(() => rmSync(home, { recursive: true, force: true }));

const TOKEN = `cvt_${"Fz".repeat(21)}q`;
const ENV = {
  HOME: home,
  XDG_CONFIG_HOME: join(home, "config"),
  CIPHERVISOR_CONFIG: join(home, "config.json"),
  CIPHERVISOR_DATA_DIR: join(home, "data"),
  CIPHERVISOR_TOKEN: TOKEN,
};

// ---- the vocabulary: the CLI's own command tree ----------------------------------------------------------------

const program = await buildProgram(memoryIo());
const tree = commandTree(program);
const PATHS = tree.map((n) => n.path).filter((p) => p !== "");
const FLAGS = [...new Set(tree.flatMap((n) => n.options))];
const WORDS = [...new Set(PATHS.flatMap((p) => p.split(" ")))];

/** A command that runs (no subcommands): its words, flags, required flags and required arguments. */
interface Leaf {
  readonly path: string[];
  readonly flags: string[];
  readonly mandatory: string[];
  readonly args: number;
}

function leaves(cmd: Command, path: string[] = []): Leaf[] {
  const subs = cmd.commands.filter((c) => c.name() !== "help");
  if (subs.length > 0) return subs.flatMap((c) => leaves(c, [...path, c.name()]));
  return [
    {
      path,
      flags: cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => x !== undefined)),
      mandatory: cmd.options.filter((o) => o.mandatory && o.long !== undefined).map((o) => o.long as string),
      args: cmd.registeredArguments.filter((a) => a.required).length,
    },
  ];
}
const LEAVES = leaves(program);

/** Values: the ones flags expect, and the ones they must refuse. */
const VALUE = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      "",
      " ",
      "-",
      "--",
      "on",
      "off",
      "0",
      "1",
      "-1",
      "0x5",
      "0x",
      "1e3",
      "NaN",
      "99999999999999999999",
      "30s",
      "0ms",
      "json",
      "wide",
      "name",
      "table",
      "rome",
      "milan",
      "sev-es",
      "linux-5.19",
      "NODBG,ES",
      "a=b",
      "=b",
      "label.x=y,mode=sev",
      "host=none",
      "vm-1",
      "*",
      "http://example.invalid:1",
      "ftp://x",
      "http://u:p@h",
      "\x1b[2J\x07",
      "a\nb",
      "\u009b31m",
      "\ud800",
      "\udfff",
      join(home, "nothing-here"),
    ),
  },
  { weight: 3, arbitrary: fc.string({ unit: "binary-ascii", maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 100_000 }).map((n) => "v".repeat(n)) },
);

/** Junk tokens: other commands' words and flags, unknown flags, separators, help and version. */
const JUNK: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...FLAGS),
  fc.constantFrom(...WORDS),
  fc.constantFrom("--", "-", "help", "--help", "-h", "--version", "-V", "-qo", "-o=json", "--no-json"),
  fc.string({ unit: "binary-ascii", maxLength: 12 }).map((s) => `--${s}`),
  VALUE,
);

/** Tokens for one command: its own flags, with and without values and in `=` form, and positional values. */
function tokensFor(options: readonly string[]): fc.Arbitrary<string[]> {
  // `--help` ends every command line it is in: it stays in the junk, rarer.
  const own = options.filter((o) => o !== "--help");
  if (own.length === 0) return fc.array(VALUE, { maxLength: 3 });
  const flag = fc.constantFrom(...own);
  return fc
    .array(
      fc.oneof(
        { weight: 3, arbitrary: flag.map((f) => [f]) },
        { weight: 4, arbitrary: fc.tuple(flag, VALUE).map(([f, v]) => [f, v]) },
        { weight: 2, arbitrary: fc.tuple(flag, VALUE).map(([f, v]) => [`${f}=${v}`]) },
        { weight: 3, arbitrary: VALUE.map((v) => [v]) },
      ),
      { maxLength: 6 },
    )
    .map((ts) => ts.flat());
}

/**
 * An argv: mostly a command that runs, with its required arguments and flags (so parsing gets through to the
 * command's own validation), then its other flags, and one junk token now and then; sometimes junk alone.
 */
const ARGV: fc.Arbitrary<string[]> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc
      .constantFrom(...LEAVES)
      .chain((leaf) =>
        fc.tuple(
          fc.constant(leaf.path),
          fc.array(VALUE, { minLength: leaf.args, maxLength: leaf.args }),
          fc.tuple(...leaf.mandatory.map((f) => VALUE.map((v) => [f, v]))).map((fs) => fs.flat()),
          tokensFor(leaf.flags),
          fc.option(fc.tuple(JUNK, fc.nat()), { freq: 4 }),
        ),
      )
      .map(([path, args, mandatory, rest, junk]) => {
        const out = [...path, ...args, ...mandatory, ...rest];
        if (junk !== null) out.splice(junk[1] % (out.length + 1), 0, junk[0]);
        return out;
      }),
  },
  { weight: 1, arbitrary: fc.array(JUNK, { maxLength: 6 }) },
);

// ---- the properties ----------------------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
const ERROR_LINE = /^ciphervisor: .* \[([A-Z][A-Z0-9_]*)\]$/;
/** Codes the client shows that are not project codes: no answer came. Their exit code is IO's. */
const NO_ANSWER: Readonly<Record<string, ErrorCode>> = { UNREACHABLE: "IO", TIMEOUT: "IO" };

interface Outcome {
  readonly code: number;
  readonly out: string;
  readonly err: string;
  readonly ran: typeof ran;
}

async function run(argv: string[]): Promise<Outcome> {
  const io = memoryIo({ env: ENV, stdin: "vm-1\nvm-2\n" });
  ran = undefined;
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr, ran };
}

function checkOutcome(argv: string[], o: Outcome): void {
  const what = `argv ${JSON.stringify(argv).slice(0, 400)} → exit ${o.code}, stderr ${JSON.stringify(o.err.slice(0, 300))}`;
  assert.ok(Object.values(ExitCode).includes(o.code as never), `undocumented exit code: ${what}`);
  for (const [name, text] of [
    ["stdout", o.out],
    ["stderr", o.err],
  ] as const) {
    assert.ok(!RAW_CONTROL.test(text), `raw control character on ${name}: ${what}`);
    assert.ok(!text.includes(TOKEN), `the token on ${name}: ${what}`);
  }
  if (o.code === ExitCode.OK) return;
  const lines = o.err.trimEnd().split("\n");
  const last = lines[lines.length - 1] ?? "";
  const m = ERROR_LINE.exec(last);
  if (m === null) {
    // An incomplete command line (`ciphervisor vm`): commander's help, with the usage exit code.
    assert.equal(o.code, ExitCode.USAGE, `no error line: ${what}`);
    assert.match(o.err, /^Usage: /, `neither an error line nor help: ${what}`);
    return;
  }
  assert.equal(lines.length, 1, `more than one line on stderr: ${what}`);
  const shown = m[1] as string;
  assert.notEqual(shown, "INTERNAL", `an untyped exception escaped: ${what}`);
  const base = isErrorCode(shown) ? shown : NO_ANSWER[shown];
  assert.ok(base !== undefined, `unstable code ${shown}: ${what}`);
  assert.equal(o.code, exitCodeFor(base), `exit code for ${shown}: ${what}`);
  if (o.ran === undefined)
    assert.equal(shown, "USAGE", `commander refused it, so it is a usage error: ${what}`);
}

describe("fuzz: the command line (cli/main.ts, commander and every command's flags)", () => {
  it("knows the command tree it fuzzes", () => {
    assert.ok(PATHS.length >= 40 && FLAGS.length >= 40, `${PATHS.length} commands, ${FLAGS.length} flags`);
    assert.ok(Object.hasOwn(ERROR_CODES, "USAGE"));
  });

  it("arbitrary argv: a parsed command or one typed error line with its exit code, nothing raw on screen", async () => {
    const seen = { usage: 0, help: 0, parsed: 0, live: 0 };
    const sentBefore = attempts;
    await fc.assert(
      fc.asyncProperty(ARGV, async (argv) => {
        const o = await run(argv);
        checkOutcome(argv, o);
        if (o.ran === undefined) seen[o.code === ExitCode.OK ? "help" : "usage"]++;
        else if (o.ran.live) seen.live++;
        else seen.parsed++;
      }),
      params(500),
    );
    // Not vacuous: commander refused some, recorded some, and live commands validated (and some reached the wire).
    assert.ok(seen.usage > 20 && seen.parsed > 5 && seen.live > 20, JSON.stringify(seen));
    assert.ok(attempts > sentBefore, "no live command got as far as sending a request");
  });

  it("a flag's value made of control characters is quoted escaped in the error line", async () => {
    const o = await run(["vm", "create", "x", "--guest-os", "linux-5.19", "--vcpus", "\x1b[2J\x07"]);
    checkOutcome([], o);
    assert.equal(o.code, ExitCode.USAGE);
    assert.ok(o.err.includes("\\u001b[2J\\u0007"), o.err);
  });
});
