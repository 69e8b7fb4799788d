/**
 * Turning SEV-ES on for 10,000 powered-off VMs (docs/architecture.md §3.1, the first flow) through the whole stack — `POST
 * /v1/vms:bulk-update` → operation queue → per-VM checks → batched transactions of VM updates, per-item results
 * and hash-chained audit records — next to the raw-SQLite floor: the same 10,000 row updates and 10,000 chained
 * audit records written with hand-prepared better-sqlite3 statements in batches of 1,000, nothing else. Also the
 * bulk creation of the 10,000 VMs (`serve --demo-vms`). Medians of interleaved rounds, each on a fresh database.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { buildApi } from "../../src/api/app.ts";
import { chainAuditEntries } from "../../src/control/audit/record.ts";
import { verifyAuditChain } from "../../src/control/audit/verify.ts";
import { createControlPlane } from "../../src/control/control-plane.ts";
import { DriverRegistry } from "../../src/control/drivers/driver.ts";
import { emulatedDriver } from "../../src/control/drivers/emulated-hosts.ts";
import { openInventory } from "../../src/control/inventory/open.ts";
import type { NewVm } from "../../src/control/inventory/types.ts";
import { registerHost } from "../../src/control/services/hosts.ts";
import { createToken } from "../../src/control/services/tokens.ts";
import type { BenchCase, BenchResult, BenchRunOptions } from "../types.ts";

const VMS = 10_000;
const ROUNDS = 3;
const BATCH = 1000;
const spec = {
  vcpus: 2,
  memoryMiB: 64,
  guestOs: "linux-5.19",
  firmware: "efi" as const,
  hardwareVersion: 19,
};
const actor = { id: null, name: "bench" };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** A fresh data directory with 2 hosts and 10,000 powered-off VMs; returns the createMany time. */
async function fleet(dir: string): Promise<{ createMs: number }> {
  const inventory = await openInventory(join(dir, "inventory.db"));
  const cp = createControlPlane({
    inventory,
    drivers: new DriverRegistry([emulatedDriver()]),
    worker: "bench",
  });
  const hosts = [
    (await registerHost(cp.context, actor, { name: "rome-1", emulated: { generation: "rome" } })).id,
    (await registerHost(cp.context, actor, { name: "milan-1", emulated: { generation: "milan" } })).id,
  ];
  const rows: NewVm[] = Array.from({ length: VMS }, (_, i) => ({
    name: `vm-${String(i).padStart(5, "0")}`,
    spec,
    hostId: hosts[i % 2] ?? null,
  }));
  const t0 = performance.now();
  await inventory.vms.createMany(rows);
  const createMs = performance.now() - t0;
  await inventory.close();
  return { createMs };
}

/** Through the API: request → 202 → the engine runs the operation → final. */
async function viaApi(dir: string): Promise<number> {
  const inventory = await openInventory(join(dir, "inventory.db"));
  const cp = createControlPlane({
    inventory,
    drivers: new DriverRegistry([emulatedDriver()]),
    worker: "bench",
    pollMs: 20,
  });
  cp.start();
  const app = await buildApi({ cp });
  const token = (
    await createToken(inventory, actor, { name: "bench", roles: ["security-admin"] })
  ).secret.reveal();
  try {
    const t0 = performance.now();
    const res = await app.inject({
      method: "POST",
      url: "/v1/vms:bulk-update",
      headers: { authorization: `Bearer ${token}` },
      payload: { selector: { namePrefix: "vm-" }, set: { securityMode: "sev-es" } },
    });
    if (res.statusCode !== 202) throw new Error(`bulk-update answered ${res.statusCode}: ${res.body}`);
    const id = (JSON.parse(res.body) as { operation: { id: string } }).operation.id;
    const op = await cp.engine.waitFor(id, 600_000);
    const ms = performance.now() - t0;
    if (op.status !== "succeeded" || op.okCount !== VMS)
      throw new Error(`bulk-update ended ${op.status} (${op.okCount} ok)`);
    if (!(await verifyAuditChain(inventory)).ok) throw new Error("audit chain broken");
    return ms;
  } finally {
    await app.close();
    await cp.stop();
    await inventory.close();
  }
}

/** The floor: the same writes, hand-prepared statements, no API, no operation, no checks. */
function rawFloor(dir: string): number {
  const db = new Database(join(dir, "inventory.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  try {
    const ids = (db.prepare("select id from vms order by id").all() as { id: string }[]).map((r) => r.id);
    const marks = Array.from({ length: BATCH }, () => "?").join(",");
    const update = db.prepare(
      `update vms set security_mode = 'sev-es', policy = 7, updated_at = ?, version = version + 1 where id in (${marks})`,
    );
    const cols = "(seq, time, actor_id, actor_name, action, target, outcome, details, prev_hash, hash)";
    const rowMarks = Array.from({ length: BATCH }, () => "(?,?,?,?,?,?,?,?,?,?)").join(",");
    const insert = db.prepare(`insert into audit ${cols} values ${rowMarks}`);
    const headRead = db.prepare("select seq, hash from audit_head where id = 1");
    const headWrite = db.prepare("update audit_head set seq = ?, hash = ? where id = 1");
    const t0 = performance.now();
    for (let i = 0; i < ids.length; i += BATCH) {
      const part = ids.slice(i, i + BATCH);
      db.transaction(() => {
        const now = new Date().toISOString();
        update.run(now, ...part);
        const head = headRead.get() as { seq: number; hash: string };
        const chained = chainAuditEntries(
          head,
          part.map((target) => ({
            actor,
            action: "vm.security.enable",
            target,
            outcome: "ok" as const,
            details: {
              before: { securityMode: "none", policy: 0 },
              after: { securityMode: "sev-es", policy: 7 },
            },
          })),
          now,
        );
        const params: unknown[] = [];
        for (const { record: r, detailsJson } of chained) {
          params.push(
            r.seq,
            r.time,
            r.actor.id,
            r.actor.name,
            r.action,
            r.target,
            r.outcome,
            detailsJson,
            r.prevHash,
            r.hash,
          );
        }
        insert.run(...params);
        const last = chained.at(-1)?.record;
        if (last) headWrite.run(last.seq, last.hash);
      }).immediate();
    }
    return performance.now() - t0;
  } finally {
    db.close();
  }
}

async function measure(options: BenchRunOptions): Promise<BenchResult> {
  const rounds = options.quick ? 1 : ROUNDS;
  const api: number[] = [];
  const raw: number[] = [];
  const create: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const which of round % 2 === 0 ? ["api", "raw"] : ["raw", "api"]) {
      const dir = mkdtempSync(join(tmpdir(), "cv-bench-"));
      try {
        create.push((await fleet(dir)).createMs);
        if (which === "api") api.push(await viaApi(dir));
        else raw.push(rawFloor(dir));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const apiMs = median(api);
  const rawMs = median(raw);
  return {
    metrics: [
      {
        name: "API bulk-update, 10,000 VMs",
        value: apiMs,
        unit: "ms",
        baseline: rawMs,
        baselineName: "raw SQLite floor",
      },
      { name: "API throughput", value: VMS / (apiMs / 1000), unit: "VMs/s" },
      { name: "raw SQLite floor, 10,000 VMs", value: rawMs, unit: "ms" },
      { name: "API ÷ floor", value: apiMs / rawMs, unit: "×" },
      { name: "createMany, 10,000 VMs", value: median(create), unit: "ms" },
    ],
    targets: [
      {
        metric: "API throughput",
        min: 70,
        source: "docs/product-behaviour.md §11.2 (vCenter 6.5: > 60–70 ops/s)",
      },
      {
        metric: "createMany, 10,000 VMs",
        max: 3000,
        source: "issue 6 (serve --demo-vms: well under a few seconds)",
      },
    ],
    notes: `SQLite (WAL, synchronous=NORMAL), batches of ${BATCH}; API = request to final operation state, per-VM checks and per-item results included; medians of ${rounds} rounds, fresh database each`,
  };
}

export const cases: BenchCase[] = [
  {
    name: "api-bulk-update-10k",
    description:
      "vms:bulk-update (SEV-ES on) for 10,000 VMs through the API vs raw SQLite writes of the same rows and audit records",
    run: measure,
  },
];
