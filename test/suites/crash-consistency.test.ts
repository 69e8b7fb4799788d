/**
 * Crash consistency (issue 13, "Suites"): a child `serve` (the built CLI through bin/, its own data directory and
 * SQLite inventory, port 0) is SIGKILLed in the middle of a bulk operation and started again on the same data
 * directory with a 1 s `--operation-lease`, so the restarted node takes the operation over; it is killed again
 * after each takeover (up to `KILLS` kills), then left to finish. Three operations, each on a fresh fleet:
 *  - `vms:bulk-update` turning SEV-ES on for all 5,000 VMs (five 1,000-VM transactions), 100 of them running;
 *  - the same with `restart: true`: the running VMs are powered off, changed and powered on again;
 *  - `vms:bulk-power` powering on 200 of 2,000 VMs.
 * The first kill comes a seeded random delay after the 202. Right after each kill (the process gone, nothing
 * repaired yet) the inventory file is read directly (better-sqlite3, read-only): the kill must have found the
 * operation unfinished there — a first kill that came after the end starts the run again on a fresh fleet with
 * half the delay — and the crashed state must already be consistent (every VM wholly old or new, a change audited
 * exactly when made, no result without its change). Once final:
 *  - the operation was taken over once per kill that found it claimed, and reached succeeded or partially-failed
 *    with one result per selected VM, none recorded twice, and every result stored before a kill kept as it was
 *    (no VM redone by the takeover);
 *  - every VM is wholly old (ordinary, policy 0) or wholly new (SEV-ES with its default policy), its spec untouched,
 *    no power change left half-done (`stopping`/`starting`), and its result matches it: ok exactly when new;
 *  - the audit chain verifies (GET /v1/audit/verify), with exactly one change record of the operation per VM
 *    changed (one `vm.power-on` per VM powered on) and none for the others;
 *  - emulated hosts restart empty with their node, so a VM runs at the end only if the last node started it, and
 *    a VM powered on before a crash is off after it with the restart's `vm.power-off` record;
 *  - key slots agree per host and pool: the inventory (GET /v1/hosts), the emulated Secure Processor
 *    (GET /v1/hosts/{id}/sev-info) and the VMs in a slot-holding power state;
 *  - the SQLite file passes `PRAGMA integrity_check` after a clean stop.
 *
 * `CIPHERVISOR_CRASH_SEED` replays the kill delays (timing still varies); the seed and every kill (delay, what the
 * file held) are printed, and every failed check names them. `CIPHERVISOR_LONG=1` runs 20,000 VMs and 6 kills.
 * The PostgreSQL variant is crash-consistency-pg.test.ts; what both use is in crash-support.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import type { ServeChild } from "../../src/cli/testing/serve-child.ts";
import { SLOT_STATES } from "../../src/control/compat.ts";
import {
  type AuditRow,
  allPages,
  call,
  checkStoredState,
  ES_POLICY,
  FINAL,
  type Item,
  kill,
  killAll,
  type Op,
  type Pool,
  ROLES,
  rng,
  type StoredVm,
  sleep,
  startNode,
  untrack,
  type VmRow,
  waitOp as waitFor,
} from "./crash-support.ts";
import { recordSuite } from "./reliability-record.ts";

const LONG = process.env.CIPHERVISOR_LONG === "1";
const HOSTS = 4;
const UPDATE_VMS = LONG ? 20_000 : 5_000;
const POWER_VMS = LONG ? 5_000 : 2_000;
/** Kills per run: the first a random delay after the 202, each later one a random delay after a takeover. */
const KILLS = LONG ? 6 : 2;
const LEASE_S = 1;
/** Fresh fleets tried, halving the first kill's delay each time, before the suite gives up on landing mid-run. */
const TRIES = 5;
const SEED = Number(process.env.CIPHERVISOR_CRASH_SEED ?? 0x5e5e5) >>> 0;
/** How long one wait (for a takeover, for the end) may take before the suite fails with the node's log. */
const WAIT_MS = LONG ? 300_000 : 30_000;

const dirs: string[] = [];
after(async () => {
  await killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function serve(dir: string, ...extra: string[]): Promise<ServeChild> {
  return startNode([
    "--data-dir",
    dir,
    "--port",
    "0",
    "--log-level",
    "warn",
    "--operation-lease",
    String(LEASE_S),
    ...extra,
  ]);
}

/** Polls operation `id` until `done(op)` or it is final; fails after WAIT_MS with the node's log. */
function waitOp(node: ServeChild, token: string, id: string, what: string, done: (op: Op) => boolean) {
  return waitFor(node, token, id, what, done, WAIT_MS);
}

/** What the inventory file held right after a kill. */
interface Crash {
  readonly delayMs: number;
  readonly status: string;
  readonly attempts: number;
  readonly done: number;
  readonly total: number;
  /** Stored results: target → outcome and time. */
  readonly items: ReadonlyMap<string, { outcome: string; recordedAt: string }>;
}

/** The variant: which operation, on which fleet, checked how. */
interface Variant {
  readonly label: string;
  readonly vms: number;
  /** Powered on before the operation (bulk-power), or undefined. */
  readonly running?: Record<string, unknown>;
  readonly path: string;
  readonly body: Record<string, unknown>;
  /** The VMs the operation applies to (a filter over the fleet as it was before). */
  readonly selected: (vm: VmRow) => boolean;
  /** The audit action of one applied change. */
  readonly change: string;
  /** The first kill's delay after the 202 is drawn from [0, maxDelayMs); a later one's from [0, laterDelayMs). */
  readonly maxDelayMs: number;
  readonly laterDelayMs: number;
}

const RUNNING_SHARE = { namePrefix: "vm-000", labels: { shard: "3" } };

const VARIANTS: readonly Variant[] = [
  {
    label: "bulk-update SEV-ES",
    vms: UPDATE_VMS,
    running: RUNNING_SHARE,
    path: "/v1/vms:bulk-update",
    body: { selector: { all: true }, set: { securityMode: "sev-es" } },
    selected: () => true,
    change: "vm.security.enable",
    maxDelayMs: 500,
    laterDelayMs: 300,
  },
  {
    label: "bulk-update SEV-ES with restart",
    vms: UPDATE_VMS,
    running: RUNNING_SHARE,
    path: "/v1/vms:bulk-update",
    body: { selector: { all: true }, set: { securityMode: "sev-es" }, restart: true },
    selected: () => true,
    change: "vm.security.enable",
    maxDelayMs: 1500,
    laterDelayMs: 1000,
  },
  {
    label: "bulk-power power-on",
    vms: POWER_VMS,
    path: "/v1/vms:bulk-power",
    body: { selector: { labels: { shard: "3" } }, action: "power-on" },
    selected: (vm) => vm.labels.shard === "3",
    change: "vm.power-on",
    maxDelayMs: 1500,
    laterDelayMs: 1000,
  },
];

/** Reads the crashed node's file (read-only: nothing is recovered or repaired by reading) and checks it. */
function readCrash(dir: string, opId: string, v: Variant, delayMs: number, where: string): Crash {
  const db = new Database(join(dir, "inventory.db"), { readonly: true, fileMustExist: true });
  try {
    const op = db.prepare("select status, attempts, done, total from operations where id = ?").get(opId) as
      | { status: string; attempts: number; done: number; total: number }
      | undefined;
    assert.ok(op, `operation ${opId} in the file ${where}`);
    const rows = db
      .prepare("select target, outcome, details, recorded_at from operation_items where operation_id = ?")
      .all(opId) as { target: string; outcome: string; details: string | null; recorded_at: string }[];
    const items = new Map(rows.map((r) => [r.target, { outcome: r.outcome, recordedAt: r.recorded_at }]));
    const audit = db
      .prepare("select target from audit where action = ? and json_extract(details, '$.operationId') = ?")
      .pluck()
      .all(v.change, opId) as string[];
    const vms = db
      .prepare("select id, name, power_state, security_mode, policy from vms")
      .all() as StoredVm[];
    checkStoredState(v.change, op.done, vms, items, audit, where);
    return { delayMs, ...op, items };
  } finally {
    db.close();
  }
}

interface Run {
  readonly dir: string;
  node: ServeChild;
  readonly token: string;
  readonly before: ReadonlyMap<string, VmRow>;
  readonly opId: string;
  readonly crashes: Crash[];
  readonly log: string[];
  /** When the last node was started (results stored after it were made by it). */
  lastStart: number;
}

/** A fresh fleet, its running share powered on, the operation submitted; the node killed `delayMs` after the 202. */
async function firstKill(v: Variant, delayMs: number, log: string[]): Promise<Run> {
  const root = mkdtempSync(join(tmpdir(), "cv-crash-"));
  dirs.push(root);
  const dir = join(root, "data");
  const node = await serve(dir, "--demo-hosts", String(HOSTS), "--demo-vms", String(v.vms));
  const admin = readFileSync(join(dir, "admin.token"), "utf8").trim();
  // admin issues tokens but neither powers VMs nor changes their protection: one caller with the roles does it all.
  const { secret: token } = await call<{ secret: string }>(node, admin, "POST", "/v1/tokens", {
    name: "crash-suite",
    roles: ROLES,
  });
  if (v.running) {
    const { operation } = await call<{ operation: Op }>(node, token, "POST", "/v1/vms:bulk-power", {
      selector: v.running,
      action: "power-on",
    });
    const powered = await waitOp(node, token, operation.id, "the running share's power-on", () => false);
    assert.equal(powered.status, "succeeded", `power-on of the running share: ${JSON.stringify(powered)}`);
  }
  const before = new Map((await allPages<VmRow>(node, token, "/v1/vms")).map((vm) => [vm.id, vm] as const));
  assert.equal(before.size, v.vms);
  const submitted = await call<{ operation: Op }>(node, token, "POST", v.path, v.body, {
    prefer: "respond-async",
  });
  await sleep(delayMs);
  await kill(node);
  const opId = submitted.operation.id;
  const crash = readCrash(dir, opId, v, delayMs, `[${v.label}: seed ${SEED}; ${log.join("; ")}]`);
  log.push(`kill 1 at +${delayMs} ms: ${crash.status}, ${crash.done}/${crash.total} done`);
  return { dir, node, token, before, opId, crashes: [crash], log, lastStart: 0 };
}

/** Restarts, waits for each takeover and kills again, up to KILLS kills; returns with the last node running. */
async function killAfterTakeovers(v: Variant, run: Run, random: () => number): Promise<void> {
  const where = () => `[${v.label}: seed ${SEED}; ${run.log.join("; ")}]`;
  for (let k = 2; k <= KILLS; k++) {
    const last = run.crashes.at(-1) as Crash;
    if (FINAL.includes(last.status)) break;
    run.lastStart = Date.now();
    run.node = await serve(run.dir);
    const claimed = last.status === "running" ? last.attempts + 1 : 1;
    const seen = await waitOp(
      run.node,
      run.token,
      run.opId,
      `takeover before kill ${k} ${where()}`,
      (op) => op.status === "running" && op.attempts >= claimed,
    );
    if (FINAL.includes(seen.status)) {
      run.log.push(`takeover ${seen.attempts} finished before kill ${k}`);
      return;
    }
    const delayMs = Math.floor(random() * v.laterDelayMs);
    await sleep(delayMs);
    await kill(run.node);
    const crash = readCrash(run.dir, run.opId, v, delayMs, where());
    run.crashes.push(crash);
    run.log.push(
      `kill ${k} ${delayMs} ms after takeover ${seen.attempts} at ${seen.progress.done}: ${crash.status}, ${crash.done}/${crash.total} done`,
    );
  }
  run.lastStart = Date.now();
  run.node = await serve(run.dir);
}

/** Everything checked once the operation is final, through the last node's API. */
async function check(v: Variant, run: Run, op: Op, where: () => string): Promise<void> {
  const { node, token, before } = run;
  const vms = await allPages<VmRow>(node, token, "/v1/vms");
  const items = await allPages<Item>(node, token, `/v1/operations/${op.id}/items`);
  const audit = await allPages<AuditRow>(node, token, "/v1/audit");
  const verify = await call<{ ok: boolean; firstBad: unknown }>(node, token, "GET", "/v1/audit/verify");
  assert.equal(verify.ok, true, `audit chain: ${JSON.stringify(verify)} ${where()}`);

  // The operation: taken over once per kill that found it claimed, finished, every selected VM's result once.
  const takeovers = run.crashes.filter((c) => c.status === "running").length;
  assert.equal(op.attempts, takeovers + 1, `claims ${where()}`);
  assert.ok(["succeeded", "partially-failed"].includes(op.status), `final ${op.status} ${where()}`);
  const selected = [...before.values()].filter(v.selected);
  assert.equal(op.progress.total, selected.length, `total ${JSON.stringify(op.progress)} ${where()}`);
  assert.equal(op.progress.done, op.progress.total, `progress ${JSON.stringify(op.progress)} ${where()}`);
  const itemOf = new Map<string, Item>();
  for (const i of items) {
    assert.ok(!itemOf.has(i.target), `result of ${i.target} listed twice ${where()}`);
    itemOf.set(i.target, i);
  }
  assert.equal(items.length, selected.length, `one result per selected VM ${where()}`);
  assert.equal(items.filter((i) => i.outcome === "ok").length, op.progress.ok, `ok count ${where()}`);
  // No VM redone: a result stored before a kill is the one at the end, from the same moment.
  for (const [k, c] of run.crashes.entries()) {
    for (const [target, was] of c.items) {
      const now = itemOf.get(target);
      assert.ok(now, `result of ${target} stored before kill ${k + 1} lost ${where()}`);
      assert.deepEqual(
        { outcome: now.outcome, recordedAt: now.recordedAt },
        was,
        `result of ${target} stored before kill ${k + 1} rewritten ${where()}`,
      );
    }
  }

  // The operation's change records, and the restarts' power-off records, by VM.
  const changes = new Map<string, AuditRow[]>();
  const restoredOff = new Map<string, number>();
  for (const a of audit) {
    if (a.action === v.change && a.details?.operationId === op.id) {
      assert.equal(a.outcome, "ok", `audit #${a.seq} ${where()}`);
      changes.set(a.target, [...(changes.get(a.target) ?? []), a]);
    }
    if (
      a.action === "vm.power-off" &&
      a.actor.id === null &&
      /restarted with the control plane/.test(String(a.details?.reason))
    )
      restoredOff.set(a.target, a.seq);
  }

  let changed = 0;
  for (const vm of vms) {
    const old = before.get(vm.id);
    assert.ok(old, `VM ${vm.id} appeared ${where()}`);
    const records = changes.get(vm.id)?.length ?? 0;
    const item = itemOf.get(vm.id);
    const at = `VM ${vm.name} (${vm.securityMode} 0x${vm.policy.toString(16)}, ${vm.powerState}; was ${old.powerState}; ${records} ${v.change} records; result ${JSON.stringify(item)}) ${where()}`;
    assert.deepEqual(vm.spec, old.spec, `spec changed: ${at}`);
    assert.ok(!["stopping", "starting"].includes(vm.powerState), `left half-done: ${at}`);
    if (!v.selected(old)) {
      assert.equal(item, undefined, `result for an unselected VM: ${at}`);
      assert.equal(records, 0, at);
      assert.equal(vm.powerState, "off", at);
      continue;
    }
    assert.ok(item, `no result: ${at}`);
    assert.ok(records <= 1, `change applied ${records} times: ${at}`);
    if (v.change === "vm.security.enable") {
      const isOld = vm.securityMode === "none" && vm.policy === 0;
      const isNew = vm.securityMode === "sev-es" && vm.policy === ES_POLICY;
      assert.ok(isOld || isNew, `half-changed: ${at}`);
      assert.equal(records, isNew ? 1 : 0, `audit records not matching the VM: ${at}`);
      assert.equal(item.outcome, isNew ? "ok" : "failed", `result not matching the VM: ${at}`);
      if (isNew) changed++;
      // Every crash restarted the emulated hosts empty: a VM runs only if the last node restarted it.
      if (vm.powerState === "running") {
        assert.equal(item.details?.restarted, true, `running, not restarted by the operation: ${at}`);
        assert.ok(isNew, at);
      }
      if (old.powerState === "off") assert.equal(vm.powerState, "off", `powered on: ${at}`);
    } else {
      // Every VM was off: each one is powered on exactly once, and off again only by a crash after that.
      assert.equal(item.outcome, "ok", `power-on failed: ${at}`);
      assert.equal(records, 1, `power-on applied ${records} times: ${at}`);
      changed++;
      const onAt = changes.get(vm.id)?.[0]?.seq ?? 0;
      const offAt = restoredOff.get(vm.id) ?? 0;
      const stillOn = offAt < onAt;
      assert.equal(vm.powerState, stillOn ? "running" : "off", `power state not matching the records: ${at}`);
      assert.equal(
        stillOn,
        Date.parse(item.recordedAt) >= run.lastStart,
        `running but not by the last node: ${at}`,
      );
    }
  }
  assert.equal(vms.length, before.size, `VMs lost ${where()}`);
  assert.ok(changed > 0, `something changed ${where()}`);
  assert.equal(changes.size, changed, `change records for VMs not changed ${where()}`);

  // Key slots: the inventory's pools, the emulated firmware's, and the VMs holding a slot, per host and pool.
  const hosts = (
    await call<{ items: { id: string; name: string; pools: { sev: Pool; sevEs: Pool } }[] }>(
      node,
      token,
      "GET",
      "/v1/hosts",
    )
  ).items;
  assert.equal(hosts.length, HOSTS);
  for (const h of hosts) {
    const holding = (mode: string) =>
      vms.filter(
        (vm) =>
          vm.hostId === h.id && vm.securityMode === mode && SLOT_STATES.includes(vm.powerState as never),
      ).length;
    const fw = await call<{ pools: { sev: Pool; sevEs: Pool } }>(
      node,
      token,
      "GET",
      `/v1/hosts/${h.id}/sev-info`,
    );
    assert.equal(h.pools.sevEs.used, holding("sev-es"), `${h.name} ES pool (inventory) ${where()}`);
    assert.equal(h.pools.sev.used, holding("sev"), `${h.name} SEV pool (inventory) ${where()}`);
    assert.equal(fw.pools.sevEs.used, holding("sev-es"), `${h.name} ES pool (firmware) ${where()}`);
    assert.equal(fw.pools.sev.used, holding("sev"), `${h.name} SEV pool (firmware) ${where()}`);
  }
}

/** Stops the last node cleanly, then checks the SQLite file it leaves. */
async function stopAndCheckFile(run: Run, where: () => string): Promise<void> {
  untrack(run.node);
  run.node.child.kill("SIGTERM");
  assert.equal(await run.node.exit(), 0, `clean stop: ${run.node.stderr()} ${where()}`);
  const db = new Database(join(run.dir, "inventory.db"), { readonly: true, fileMustExist: true });
  try {
    assert.deepEqual(db.pragma("integrity_check"), [{ integrity_check: "ok" }], where());
  } finally {
    db.close();
  }
}

const ran: Record<string, number | string> = { seed: SEED, "kills per run": KILLS };
const done: string[] = [];

describe(`crash consistency: SIGKILL mid-operation, restart, takeover (seed ${SEED})`, {
  timeout: LONG ? 3_600_000 : 180_000,
}, () => {
  VARIANTS.forEach((v, index) => {
    it(`${v.label} over ${v.vms} VMs: taken over to the end, every VM wholly old or new, one audit record per change, no result twice`, async () => {
      const random = rng(SEED + index);
      let maxDelay = v.maxDelayMs;
      const log: string[] = [];
      let run: Run | undefined;
      for (let t = 1; t <= TRIES && run === undefined; t++) {
        const attempt = await firstKill(v, Math.floor(random() * maxDelay), log);
        if (FINAL.includes(attempt.crashes[0]?.status ?? "")) {
          // The kill came after the end: not a crash test. Again on a fresh fleet, sooner.
          log.push(`(fleet ${t}: too late, retrying sooner)`);
          maxDelay = Math.max(1, Math.floor(maxDelay / 2));
          rmSync(attempt.dir, { recursive: true, force: true });
        } else run = attempt;
      }
      assert.ok(run, `no first kill landed mid-operation in ${TRIES} fleets: ${log.join("; ")}`);
      await killAfterTakeovers(v, run, random);
      const where = () => `[${v.label}: seed ${SEED}; ${log.join("; ")}]`;
      const op = await waitOp(run.node, run.token, run.opId, `the end ${where()}`, () => false);
      console.log(
        `# ${v.label}: seed ${SEED}; ${log.join("; ")}; final ${op.status} after ${op.attempts} claims`,
      );
      await check(v, run, op, where);
      await stopAndCheckFile(run, where);
      ran[`${v.label}: VMs`] = v.vms;
      ran[`${v.label}: kills mid-operation`] = run.crashes.filter((c) => !FINAL.includes(c.status)).length;
      done.push(v.label);
    });
  });
  after(() => {
    if (done.length < VARIANTS.length) return;
    recordSuite("crash-consistency", {
      suite: "Crash consistency",
      ran,
      held: [
        "every kill found the operation unfinished in the file and the file already consistent",
        "taken over once per kill and finished",
        "every VM wholly old or new, its result matching it",
        "one audit record per applied change, chain verifies",
        "no result recorded twice or redone",
        "key slots agree",
        "integrity check ok",
      ],
    });
  });
});
