/**
 * Runs `bench/run.ts --quick --json` (every case, sizes cut) so the benchmark code cannot rot: it asserts the
 * document's shape and that every case reported, nothing about speed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { DOC_BEGIN, DOC_END, markdown, spliceDoc } from "./report.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function runBench(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "bench", "run.ts"), ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += String(d);
    });
    child.stderr.on("data", (d) => {
      stderr += String(d);
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

describe("npm run bench -- --quick --json", () => {
  it("prints one document: the machine and a result per metric, each beside its baseline and target", async () => {
    const r = await runBench(["--quick", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1, "stdout is the document alone");
    const doc = JSON.parse(lines[0] ?? "") as {
      machine: Record<string, unknown>;
      results: Record<string, unknown>[];
    };
    assert.equal(typeof doc.machine.node, "string");
    assert.equal(typeof doc.machine.cores, "number");
    assert.equal(doc.machine.quick, true);
    assert.ok(doc.results.length > 0);
    for (const x of doc.results) {
      assert.deepEqual(Object.keys(x).sort(), [
        "baseline",
        "baselineName",
        "met",
        "name",
        "ratio",
        "target",
        "unit",
        "value",
      ]);
      assert.equal(typeof x.name, "string");
      assert.equal(typeof x.value, "number");
      assert.ok(x.baseline === null || typeof x.baseline === "number");
      assert.ok(x.met === null || typeof x.met === "boolean");
      assert.equal(x.target === null, x.met === null, `${String(x.name)}: a target comes with a verdict`);
    }
    const names = doc.results.map((x) => String(x.name));
    for (const c of ["fleet-10k-hosts-200k-vms", "memory-engine-4k", "cli-start", "api-bulk-update-10k"]) {
      assert.ok(
        names.some((n) => n.startsWith(`${c}: `)),
        `${c} reported`,
      );
    }
    assert.ok(names.includes("fleet-10k-hosts-200k-vms: restart to ready"));
    // The table goes to stderr beside the document.
    assert.match(r.stderr, /result\s+value\s+unit\s+baseline/);
  });

  it("rewrites only the marked results block of a document", () => {
    const doc = {
      machine: {
        node: "v20",
        platform: "linux-x64",
        cpu: "cpu",
        cores: 2,
        memoryGiB: 4,
        load: 1,
        date: "2026-01-01T00:00:00.000Z",
        quick: false,
      },
      results: [
        {
          name: "a: b",
          value: 2,
          unit: "ms",
          baseline: 1,
          baselineName: "floor",
          ratio: 2,
          target: "≤ 5",
          met: true,
        },
      ],
    };
    const text = `# perf\n\n${DOC_BEGIN}\nold\n${DOC_END}\n\nwhy\n`;
    const out = spliceDoc(text, markdown(doc));
    assert.match(out, /^# perf\n\n<!-- bench:results -->\nMeasured 2026-01-01 on 2 × cpu/);
    assert.match(out, /\| a: b \| 2\.000 ms \| 1\.000 \(floor\) \| 2\.000 \| ≤ 5 \| met \|/);
    assert.ok(out.endsWith(`${DOC_END}\n\nwhy\n`));
    assert.ok(!out.includes("old"));
  });
});
