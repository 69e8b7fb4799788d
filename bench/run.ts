/**
 * `npm run bench` — runs every benchmark case in bench/cases/*.ts and prints a table, then one JSON document
 * (`{"cases":[{name, metrics, targets, passed}], "node", "platform"}`) on the last line.
 *
 *   npm run bench                      # all cases
 *   npm run bench -- memory-engine     # only cases whose name contains the word
 *   npm run bench -- --strict          # exit 1 when a target is missed
 *
 * Cases are files that export `cases: BenchCase[]` (bench/types.ts). Add a file; nothing here changes.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchCase, BenchResult, BenchTarget } from "./types.ts";

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

function meets(t: BenchTarget, r: BenchResult): boolean {
  const m = r.metrics.find((x) => x.name === t.metric);
  if (!m) return false;
  return (t.min === undefined || m.value >= t.min) && (t.max === undefined || m.value <= t.max);
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const strict = args.includes("--strict");
  const filters = args.filter((a) => !a.startsWith("--"));
  const cases = (await loadCases()).filter(
    (c) => filters.length === 0 || filters.some((f) => c.name.includes(f)),
  );
  const report: { name: string; description: string; result: BenchResult; passed: boolean }[] = [];
  const rows: string[][] = [["case", "metric", "value", "unit", "target"]];
  for (const c of cases) {
    process.stderr.write(`running ${c.name}…\n`);
    const result = await c.run();
    const targets = result.targets ?? [];
    const passed = targets.every((t) => meets(t, result));
    report.push({ name: c.name, description: c.description, result, passed });
    for (const m of result.metrics) {
      const t = targets.find((x) => x.metric === m.name);
      const bound = t
        ? `${t.min !== undefined ? `≥ ${t.min}` : ""}${t.max !== undefined ? ` ≤ ${t.max}` : ""}`
        : "";
      const verdict = t ? (meets(t, result) ? " ok" : " MISSED") : "";
      rows.push([c.name, m.name, fmt(m.value), m.unit, `${bound}${verdict}`]);
    }
    if (result.notes) rows.push([c.name, `(${result.notes})`, "", "", ""]);
  }
  const widths = rows[0]!.map((_, i) =>
    Math.max(...rows.filter((r) => r.length > 1 && !r[1]!.startsWith("(")).map((r) => r[i]!.length)),
  );
  for (const r of rows) {
    if (r[1]!.startsWith("(")) process.stdout.write(`  ${r[1]}\n`);
    else
      process.stdout.write(
        `${r
          .map((x, i) => x.padEnd(widths[i]!))
          .join("  ")
          .trimEnd()}\n`,
      );
  }
  const doc = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cases: report.map((r) => ({
      name: r.name,
      description: r.description,
      metrics: r.result.metrics,
      targets: r.result.targets ?? [],
      passed: r.passed,
    })),
  };
  process.stdout.write(`${JSON.stringify(doc)}\n`);
  return strict && report.some((r) => !r.passed) ? 1 : 0;
}

process.exitCode = await main();
