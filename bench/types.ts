/**
 * The benchmark case contract. A file under bench/cases/ exports `cases: BenchCase[]`; `npm run bench`
 * (bench/run.ts) runs every case and prints a table and one JSON document.
 */

export interface BenchMetric {
  name: string;
  value: number;
  unit: string;
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

export interface BenchCase {
  /** kebab-case, unique across files, e.g. "memory-engine-4k". */
  name: string;
  description: string;
  run(): BenchResult | Promise<BenchResult>;
}
