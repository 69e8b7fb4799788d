/**
 * `npm run bench` — runs every benchmark case in bench/cases/*.ts and prints a table of results, each beside the
 * baseline measured in the same run and its target.
 *
 *   npm run bench                        # all cases: the table, then the JSON document on its last line
 *   npm run bench -- --json              # one JSON document {"machine", "results"} on stdout, the table on stderr
 *   npm run bench -- --quick             # a small version of every case (CI: the code cannot rot)
 *   npm run bench -- fleet               # only cases whose name contains the word
 *   npm run bench -- --doc docs/performance.md   # rewrite the results table in that file
 *   npm run bench -- --strict            # exit 1 when a target is missed
 *
 * Cases are files that export `cases: BenchCase[]` (bench/types.ts). Add a file; nothing here changes.
 *
 * When more than one case runs, each runs in its own node process (this script again, `--only-case <name>`), one
 * after the other: a case then starts from a fresh heap and JIT, not from what the cases before it left (the
 * 200,000-VM fleet's garbage made the OVMF launch after it a third slower), and figures do not depend on which
 * other cases a run selected.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  type BenchDocument,
  machine,
  markdown,
  type ReportResult,
  resultsOf,
  spliceDoc,
  table,
} from "./report.ts";
import type { BenchCase } from "./types.ts";

const here = dirname(fileURLToPath(import.meta.url));

async function loadCases(): Promise<BenchCase[]> {
  const dir = join(here, "cases");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .sort();
  const all: BenchCase[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { cases?: BenchCase[] };
    if (!Array.isArray(mod.cases)) throw new Error(`bench/cases/${f} does not export 'cases'`);
    all.push(...mod.cases);
  }
  return all;
}

/** What a case's own process prints as its last stdout line (`--only-case`). */
interface CaseOutcome {
  readonly results: ReportResult[];
  readonly notes?: string;
}

/** Runs case `c` in this process. */
async function runHere(c: BenchCase, quick: boolean): Promise<CaseOutcome> {
  const r = await c.run({ quick });
  return { results: resultsOf(c.name, r), ...(r.notes ? { notes: r.notes } : {}) };
}

/** Runs one case in this process and prints its outcome as one JSON line. */
async function runOnly(name: string, quick: boolean): Promise<number> {
  const c = (await loadCases()).find((x) => x.name === name);
  if (!c) throw new Error(`no bench case named ${name}`);
  process.stdout.write(`${JSON.stringify(await runHere(c, quick))}\n`);
  return 0;
}

/** Runs one case in a child process (same node flags, so the TypeScript loader too); its stderr passes through. */
function runInChild(name: string, quick: boolean): Promise<CaseOutcome> {
  return new Promise((resolve, reject) => {
    const args = [...process.execArgv, fileURLToPath(import.meta.url), "--only-case", name];
    const child = spawn(process.execPath, quick ? [...args, "--quick"] : args, {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code !== 0 || !last.startsWith("{")) reject(new Error(`bench case ${name} failed (exit ${code})`));
      else resolve(JSON.parse(last) as CaseOutcome);
    });
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const flag = (name: string) => args.includes(name);
  const quick = flag("--quick");
  const onlyAt = args.indexOf("--only-case");
  if (onlyAt >= 0) return runOnly(args[onlyAt + 1] ?? "", quick);
  const docAt = args.indexOf("--doc");
  const docPath = docAt >= 0 ? args[docAt + 1] : undefined;
  const filters = args.filter((a, i) => !a.startsWith("--") && !(docAt >= 0 && i === docAt + 1));
  const json = flag("--json");
  const cases = (await loadCases()).filter(
    (c) => filters.length === 0 || filters.some((f) => c.name.includes(f)),
  );
  const doc: BenchDocument = { machine: machine(quick), results: [] };
  const results = doc.results as ReportResult[];
  for (const c of cases) {
    process.stderr.write(`running ${c.name}${quick ? " (quick)" : ""}…\n`);
    const r = cases.length === 1 ? await runHere(c, quick) : await runInChild(c.name, quick);
    results.push(...r.results);
    if (r.notes) process.stderr.write(`  ${c.name}: ${r.notes}\n`);
  }
  (json ? process.stderr : process.stdout).write(table(results));
  // Always both: the table for a person, the document for a machine (alone on stdout with --json).
  process.stdout.write(`${JSON.stringify(doc)}\n`);
  if (docPath !== undefined) writeFileSync(docPath, spliceDoc(readFileSync(docPath, "utf8"), markdown(doc)));
  return flag("--strict") && results.some((r) => r.met === false) ? 1 : 0;
}

process.exitCode = await main();
