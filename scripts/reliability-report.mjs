#!/usr/bin/env node
// Assembles docs/reliability.md's results table from what the reliability suites recorded in
// test-output/reliability/*.json (test/suites/reliability-record.ts). `npm run test:long` runs it after the tests.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";

const dir = "test-output/reliability";
const doc = "docs/reliability.md";
const START = "<!-- reliability:results -->";
const END = "<!-- /reliability:results -->";

const records = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => JSON.parse(readFileSync(`${dir}/${f}`, "utf8")))
  : [];
if (records.length === 0) {
  console.error("reliability-report: no suite records in test-output/reliability/ (run the tests first)");
  process.exit(1);
}
const ran = (r) =>
  Object.entries(r.ran)
    .map(([k, v]) => `${typeof v === "number" ? v.toLocaleString("en-US") : v} ${k}`)
    .join(", ");
const lines = [
  START,
  `Last run: ${records
    .map((r) => r.date)
    .sort()
    .at(-1)
    ?.slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim() ?? "CPU"}, ` +
    `${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}.`,
  "",
  "| suite | size | ran | what held |",
  "|---|---|---|---|",
  ...records.map((r) => `| ${r.suite} | ${r.size} | ${ran(r)} | ${r.held.join("; ")} |`),
  END,
];
const text = readFileSync(doc, "utf8");
const a = text.indexOf(START);
const b = text.indexOf(END);
if (a < 0 || b < a) {
  console.error(`reliability-report: ${doc} has no ${START} … ${END} block`);
  process.exit(1);
}
writeFileSync(doc, `${text.slice(0, a)}${lines.join("\n")}${text.slice(b + END.length)}`);
console.log(`reliability-report: ${records.length} suites written to ${doc}`);
