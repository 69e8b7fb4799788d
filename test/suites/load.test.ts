/**
 * Load suite: a real `serve` (the built CLI) over a fleet, then mixed reads and writes from autocannon on loopback
 * (bench/lib/mixed-load.ts: list pages, filtered lists, single VMs, hosts, a bulk dry run, VM creates and their
 * power-on operations). What must hold under load: no 5xx and no failed request, every answer a 2xx, the writes
 * really happened, memory flat after the warm-up, and afterwards the audit chain verifies and the node is ready.
 *
 * Bounded for `npm test` (5,000 VMs, 8 s); `CIPHERVISOR_LONG=1` runs the 100,000 VMs for 60 s. The
 * throughput figures are the bench's (`npm run bench -- load`), never asserted here.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { mixedLoad } from "../../bench/lib/mixed-load.ts";
import { memoryOf, type Served, startServe, stopServe } from "../../bench/lib/serve-process.ts";
import { recordSuite } from "./reliability-record.ts";

const LONG = process.env.CIPHERVISOR_LONG === "1";
const [HOSTS, VMS, SECONDS] = LONG ? [1_000, 100_000, 60] : [20, 5_000, 8];

describe(`load suite (${VMS} VMs, ${SECONDS} s of mixed load)`, () => {
  const dir = mkdtempSync(join(tmpdir(), "cv-load-"));
  let served: Served | undefined;
  after(async () => {
    if (served) await stopServe(served);
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers every mixed request with a 2xx, keeps memory flat, and stays consistent", async () => {
    const data = join(dir, "data");
    served = await startServe(data, ["--demo-hosts", String(HOSTS), "--demo-vms", String(VMS)]);
    const url = served.url;
    const admin = { authorization: `Bearer ${readFileSync(join(data, "admin.token"), "utf8").trim()}` };
    const made = await fetch(`${url}/v1/tokens`, {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({ name: "load", roles: ["operator", "auditor"] }),
    });
    assert.equal(made.status, 201, await made.clone().text());
    const operatorToken = ((await made.json()) as { secret: string }).secret;
    const first = (await (await fetch(`${url}/v1/vms?limit=1`, { headers: admin })).json()) as {
      items: { id: string }[];
    };
    const someVmId = first.items[0]?.id ?? "";
    assert.ok(someVmId);

    const r = await mixedLoad({
      url,
      pid: served.child.pid,
      operatorToken,
      someVmId,
      seconds: SECONDS,
      connections: 8,
    });
    assert.equal(r.errors, 0, "no request failed without an answer");
    const codes = Object.keys(r.statuses);
    assert.ok(
      codes.length > 0 && codes.every((c) => c.startsWith("2")),
      `statuses ${JSON.stringify(r.statuses)}`,
    );
    assert.ok(r.requests > 100, `only ${r.requests} requests`);
    assert.ok((r.statuses["201"] ?? 0) > 0, `VMs were created: ${JSON.stringify(r.statuses)}`);
    // Flat: the end within 1.5× (plus slack for caches and the growing queue of finished operations) of the warm RSS.
    assert.ok(Number.isFinite(r.rssWarmMiB), "memory was sampled");
    assert.ok(
      r.rssEndMiB <= r.rssWarmMiB * 1.5 + 64,
      `RSS grew from ${r.rssWarmMiB.toFixed(0)} to ${r.rssEndMiB.toFixed(0)} MiB`,
    );

    const auth = { authorization: `Bearer ${operatorToken}` };
    const created = (await (
      await fetch(`${url}/v1/vms?namePrefix=load-&limit=5000`, { headers: auth })
    ).json()) as {
      items: unknown[];
    };
    // Every 201 is a VM in the inventory; requests still in flight when the run stopped may have created more,
    // but never more than were sent.
    const answered = r.statuses["201"] ?? 0;
    assert.ok(
      created.items.length >= answered && created.items.length <= r.created,
      `${created.items.length} VMs for ${answered} answered and ${r.created} sent creates`,
    );
    // Power-on answers 200 when its operation finished within the API's short wait, 202 otherwise: count results.
    const running = (await (
      await fetch(`${url}/v1/vms?namePrefix=load-&powerState=running&limit=5000`, { headers: auth })
    ).json()) as { items: unknown[] };
    assert.ok(running.items.length > 0, "the power-on operations ran");
    const verify = (await (await fetch(`${url}/v1/audit/verify`, { headers: auth })).json()) as {
      ok: boolean;
    };
    assert.equal(verify.ok, true);
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    assert.ok(memoryOf(served.child.pid).rssMiB > 0);
    recordSuite("load", {
      suite: "Load",
      ran: {
        VMs: VMS,
        "s of mixed load": SECONDS,
        requests: r.requests,
        "VMs created": r.created,
        "MiB RSS after warm-up": Math.round(r.rssWarmMiB),
        "MiB at the end": Math.round(r.rssEndMiB),
      },
      held: [
        "no 5xx, every answer 2xx",
        "every create in the inventory",
        "memory flat",
        "audit chain verifies",
      ],
    });
  });
});
