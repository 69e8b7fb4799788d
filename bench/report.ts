/**
 * The bench's outputs from the cases' results: one JSON document (`--json`), the table, and the results table
 * of docs/performance.md (`--doc`). A result is one metric of one case, beside its baseline and its target.
 */
import { cpus, loadavg, totalmem } from "node:os";
import type { BenchResult, BenchTarget } from "./types.ts";

export interface ReportResult {
  /** `case: metric`. */
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline: number | null;
  readonly baselineName: string | null;
  /** value ÷ baseline. */
  readonly ratio: number | null;
  /** The bound as text (`≥ 1000`, `≤ 5000`, `≥ 1000 ≤ 2000`), null without a target. */
  readonly target: string | null;
  /** Whether the target is met; null without a target. */
  readonly met: boolean | null;
}

export interface Machine {
  readonly node: string;
  readonly platform: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  /** 1-minute load average when the bench started: how busy the machine was. */
  readonly load: number;
  readonly date: string;
  readonly quick: boolean;
}

export interface BenchDocument {
  readonly machine: Machine;
  readonly results: ReportResult[];
}

export function machine(quick: boolean): Machine {
  const c = cpus();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: c[0]?.model.trim() ?? "unknown",
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    load: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    date: new Date().toISOString(),
    quick,
  };
}

function bound(t: BenchTarget): string {
  return [t.min === undefined ? "" : `≥ ${t.min}`, t.max === undefined ? "" : `≤ ${t.max}`]
    .filter((x) => x !== "")
    .join(" ");
}

function meets(t: BenchTarget, value: number): boolean {
  return (t.min === undefined || value >= t.min) && (t.max === undefined || value <= t.max);
}

/** One case's metrics as report results. */
export function resultsOf(caseName: string, r: BenchResult): ReportResult[] {
  return r.metrics.map((m) => {
    const t = r.targets?.find((x) => x.metric === m.name);
    const baseline = m.baseline ?? null;
    return {
      name: `${caseName}: ${m.name}`,
      value: m.value,
      unit: m.unit,
      baseline,
      baselineName: m.baselineName ?? null,
      ratio: baseline === null || baseline === 0 ? null : m.value / baseline,
      target: t ? bound(t) : null,
      met: t ? meets(t, m.value) : null,
    };
  });
}

export function fmt(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return v === null ? "" : String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3);
}

function verdict(r: ReportResult): string {
  return r.met === null ? "" : r.met ? "met" : "MISSED";
}

/** The plain-text table (one row per result). */
export function table(results: readonly ReportResult[]): string {
  const rows = [
    ["result", "value", "unit", "baseline", "ratio", "target", ""],
    ...results.map((r) => [
      r.name,
      fmt(r.value),
      r.unit,
      r.baseline === null ? "" : `${fmt(r.baseline)} (${r.baselineName ?? ""})`,
      fmt(r.ratio),
      r.target ?? "",
      verdict(r),
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map(
      (r) =>
        `${r
          .map((x, i) => x.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd()}\n`,
    )
    .join("");
}

/** The results as a Markdown table with the machine above it (docs/performance.md). */
export function markdown(doc: BenchDocument): string {
  const m = doc.machine;
  const head =
    `Measured ${m.date.slice(0, 10)} on ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}` +
    ` (load ${m.load} at the start${m.quick ? "; --quick: sizes cut, figures meaningless" : ""}).\n\n`;
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  const rows = doc.results.map(
    (r) =>
      `| ${cell(r.name)} | ${fmt(r.value)} ${r.unit} | ${r.baseline === null ? "" : `${fmt(r.baseline)} (${cell(r.baselineName ?? "")})`} | ${fmt(r.ratio)} | ${r.target ?? ""} | ${verdict(r)} |`,
  );
  return `${head}| result | value | baseline | ratio | target | |\n|---|---|---|---|---|---|\n${rows.join("\n")}\n`;
}

export const DOC_BEGIN = "<!-- bench:results -->";
export const DOC_END = "<!-- /bench:results -->";

/** `text` with the part between the markers replaced by `table` (the markers appended when missing). */
export function spliceDoc(text: string, tableText: string): string {
  const block = `${DOC_BEGIN}\n${tableText}${DOC_END}`;
  const a = text.indexOf(DOC_BEGIN);
  const b = text.indexOf(DOC_END);
  if (a < 0 || b < a) return `${text.trimEnd()}\n\n${block}\n`;
  return `${text.slice(0, a)}${block}${text.slice(b + DOC_END.length)}`;
}
