/**
 * What a reliability suite ran and what held, written as it finishes to test-output/reliability/<suite>.json;
 * `npm run test:long` then assembles docs/reliability.md from those files (scripts/reliability-report.mjs), so the
 * document always says what the last full-size run did, not what someone remembered.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface SuiteRecord {
  /** The suite's title, e.g. "Audit tamper". */
  readonly suite: string;
  /** `npm test`'s bounded size, or the long run's. */
  readonly size: "bounded" | "long";
  /** What it ran: e.g. { records: 100000, tamperings: 1000 }. */
  readonly ran: Readonly<Record<string, number | string>>;
  /** Each invariant that held, in words. */
  readonly held: readonly string[];
}

const dir = fileURLToPath(new URL("../../test-output/reliability/", import.meta.url));

/** Writes the suite's record (a file per suite; the last run of a suite wins). */
export function recordSuite(file: string, record: Omit<SuiteRecord, "size">): void {
  mkdirSync(dir, { recursive: true });
  const size = process.env.CIPHERVISOR_LONG === "1" ? "long" : "bounded";
  writeFileSync(
    join(dir, `${file}.json`),
    `${JSON.stringify({ ...record, size, date: new Date().toISOString() }, null, 2)}\n`,
  );
}
