/**
 * A node killed mid-operation (SIGKILL: no drain, no lease release) and started again on the same data directory:
 * the operation it held reads `resuming`, with the takeover time (its lease's expiry), in GET /v1/operations/{id},
 * in the event stream and in `operation get` — not a `running` that makes no progress. Until that time nothing runs
 * it; after it, the restarted node takes it over and finishes it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";
import { type ServeChild, startServeChild } from "../testing/serve-child.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Running = ServeChild;

/** Runs from the sources, so the test sees what is being edited (the bin runs dist/). */
const start = (dir: string, ...extra: string[]) =>
  startServeChild(["--data-dir", dir, "--port", "0", "--log-level", "warn", ...extra], { fromSources: true });

interface Op {
  id: string;
  status: string;
  takeoverAt?: string;
  resumeReason?: string;
  attempts: number;
  progress: { done: number; total: number };
}

async function api<T>(url: string, token: string, method = "GET", body?: unknown, headers = {}): Promise<T> {
  const r = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("serve killed mid-operation", () => {
  it("restarted, the operation reads resuming with its takeover time, then is taken over and finishes", async () => {
    const root = mkdtempSync(join(tmpdir(), "cv-crash-"));
    dirs.push(root);
    const dir = join(root, "data");
    const first = await start(dir, "--demo-hosts", "2", "--demo-vms", "1500");
    let second: Running | undefined;
    try {
      const admin = readFileSync(join(dir, "admin.token"), "utf8").trim();
      const { secret: operator } = await api<{ secret: string }>(`${first.url}/v1/tokens`, admin, "POST", {
        name: "operator",
        roles: ["operator"],
      });
      // One VM at a time: each power-on is a full emulated launch, so the operation runs for seconds.
      const { operation } = await api<{ operation: Op }>(
        `${first.url}/v1/vms:bulk-power`,
        operator,
        "POST",
        { selector: { all: true }, action: "power-on", parallel: 1 },
        { prefer: "respond-async" },
      );
      // A power-on keeps the event loop busy, so polls may wait for the run; a fixed delay lands mid-run instead.
      await sleep(1500);
      first.child.kill("SIGKILL");
      await first.exit();

      second = await start(dir);
      const url = `${second.url}/v1/operations/${operation.id}`;
      const after = await api<Op>(url, operator);
      assert.ok(
        after.progress.done > 0 && after.progress.done < after.progress.total,
        `killed mid-run: ${JSON.stringify(after.progress)}`,
      );
      assert.equal(after.status, "resuming", JSON.stringify(after));
      assert.equal(after.resumeReason, "holder-exited");
      const takeoverAt = Date.parse(after.takeoverAt ?? "");
      assert.ok(takeoverAt > Date.now(), "the takeover is still ahead (the dead node's lease)");
      assert.ok(takeoverAt <= Date.now() + 30_000, "at most one lease away");

      // The CLI says it too, with the time.
      const io = memoryIo({ env: { CIPHERVISOR_SERVER: second.url, CIPHERVISOR_TOKEN: operator } });
      assert.equal(await main(["operation", "get", operation.id], io), 0, io.stderr);
      assert.match(io.stdout, /status: +resuming \(its node is gone; taken over at \S+Z, in \d+ s\)/);
      const watchIo = memoryIo({ env: { CIPHERVISOR_SERVER: second.url, CIPHERVISOR_TOKEN: operator } });
      const watching = main(["operation", "watch", operation.id], watchIo);

      // Until the takeover nothing runs it; then the restarted node does, and finishes it.
      let final: Op = after;
      let sawRunningAgain = false;
      while (!["succeeded", "partially-failed", "failed"].includes(final.status)) {
        await sleep(250);
        const sampledAt = Date.now();
        final = await api<Op>(url, operator);
        if (sampledAt < takeoverAt - 500) {
          assert.equal(final.status, "resuming", "nobody runs it before the lease expires");
          assert.equal(final.progress.done, after.progress.done, "no progress before the takeover");
        }
        if (final.status === "running") {
          sawRunningAgain = true;
          assert.ok(Date.now() >= takeoverAt - 500, "taken over only when the lease expired");
        }
        assert.ok(
          Date.now() < takeoverAt + 60_000,
          `the operation finishes after the takeover: ${JSON.stringify(final)}`,
        );
      }
      assert.ok(sawRunningAgain || final.attempts === 2, JSON.stringify(final));
      assert.equal(final.attempts, 2, "claimed once more, by the restarted node");
      assert.equal(final.progress.done, final.progress.total);
      assert.equal(await watching, 0, watchIo.stderr);
      assert.match(
        watchIo.stderr,
        new RegExp(`operation ${operation.id} resuming \\(its node is gone; taken over at`),
      );
      second.child.kill("SIGTERM");
      assert.equal(await second.exit(), 0);
    } finally {
      first.child.kill("SIGKILL");
      second?.child.kill("SIGKILL");
    }
  });
});
