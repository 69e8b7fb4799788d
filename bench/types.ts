/**
 * The benchmark case contract. A file under bench/cases/ exports `cases: BenchCase[]`; `npm run bench`
 * (bench/run.ts) runs every case and prints a table, or with `--json` one document (bench/report.ts).
 */

export interface BenchMetric {
  name: string;
  value: number;
  unit: string;
  /**
   * What the figure is judged against, measured in the same run and in the same unit (a floor such as a raw
   * SQLite read, or a reference such as `/healthz` on the same server). `ratio` in the report is value ÷ baseline.
   */
  baseline?: number;
  /** What the baseline is, e.g. "raw SQLite read + JSON.stringify of the same page". */
  baselineName?: string;
}

/** A pass/fail bound on one metric of the same case. */
export interface BenchTarget {
  metric: string;
  min?: number;
  max?: number;
  /** Where the target comes from (issue, doc section). */
  source: string;
}

export interface BenchResult {
  metrics: BenchMetric[];
  targets?: BenchTarget[];
  /** One line on what was measured and how. */
  notes?: string;
}

export interface BenchRunOptions {
  /**
   * A small version (`npm run bench -- --quick`): same code paths, sizes and durations cut so that the whole
   * bench runs in about a minute. CI runs it so the benchmark code cannot rot; its figures mean nothing.
   */
  readonly quick: boolean;
}

export interface BenchCase {
  /** kebab-case, unique across files, e.g. "memory-engine-4k". */
  name: string;
  description: string;
  /** A case that ignores `options` runs at full size under `--quick` too. */
  run(options: BenchRunOptions): BenchResult | Promise<BenchResult>;
}
