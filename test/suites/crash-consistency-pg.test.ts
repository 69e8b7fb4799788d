/**
 * Crash consistency on PostgreSQL (issue 13, "Suites"): the SQLite suite's crash checks (crash-consistency.test.ts)
 * with the inventory on the test server, and PostgreSQL going away under a running operation. Each test runs a child
 * `serve` (the built CLI through bin/, port 0) on a private schema of CIPHERVISOR_TEST_PG (`--db …?schema=NAME`),
 * dropped afterwards, so runs share the server in parallel; the server itself is never stopped.
 *
 * 1. `vms:bulk-update` turning SEV-ES on for VMS VMs (1,000-VM transactions) is SIGKILLed at KILLS seeded points
 *    spread over the operation (crash-points.ts: its first batches, sorted progress thresholds up to the last
 *    batch, and a fifth while a restarted node starts), restarted each time with a 1 s `--operation-lease`, and
 *    finally left to finish. Right after each kill the schema is read directly (pg, nothing repaired): every VM
 *    wholly old or new, a change audited exactly when made, no result without its change, nothing stored earlier
 *    lost or rewritten, one claim per node that claimed. At the end: claimed once more by the last node, final with
 *    one result per VM and none twice, no result stored before a kill rewritten, one audit record per changed VM,
 *    and the chain verifies (GET /v1/audit/verify). Bounded: 10,000 VMs and 50 points, as on SQLite (a cycle costs
 *    about what it costs there, a median of 1.2–1.6 s: the node's start, not the lease, bounds it);
 *    `CIPHERVISOR_LONG=1`: 10,000 VMs and 200 points.
 * 2. "PostgreSQL stopped" without touching the shared server: `serve` reaches it through a TCP proxy
 *    (crash-support.ts) that, once the operation's first transaction is visible, destroys every connection and
 *    resets new ones for OUTAGE_MS, then forwards again. During the outage every API call (reads, writes, /readyz)
 *    answers 503 `application/problem+json` with STORE_UNREACHABLE within CALL_BOUND_MS — never a 500 or a hang —
 *    /healthz still answers and the process stays up; the schema, read directly, is consistent. Afterwards the
 *    operation is resumed by a new claim and succeeds, every VM changed exactly once, one audit record each.
 * 3. PostgreSQL ends the run's session mid-transaction (`pg_terminate_backend`, as an administrator or a failover
 *    does) and answers everything else: only this node's sessions in a query or a transaction (found by the proxy's
 *    ports) are ended, until the run is broken. The run fails with STORE_UNREACHABLE while the store answers the
 *    next write — where the engine used to mark the operation failed (it now hands it back,
 *    operations/outage.ts): it must be resumed by a new claim and succeed, every VM changed exactly once.
 *
 * An unreachable server fails the suite under CI=true and is skipped loudly otherwise. `CIPHERVISOR_CRASH_SEED`
 * replays the kill points.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import type { ServeChild } from "../../src/cli/testing/serve-child.ts";
import {
  postgresUnreachable,
  unreachableReason,
} from "../../src/control/inventory/testing/postgres-server.ts";
import { PG_URL } from "../../src/control/testing/control-fixture.ts";
import {
  checkKill,
  describePoint,
  killAtPoint,
  killSchedule,
  median,
  NOTHING_YET,
  type OpRow,
  type Stored,
} from "./crash-points.ts";
import {
  type AuditRow,
  allPages,
  type CutProxy,
  call,
  checkStoredState,
  ES_POLICY,
  FINAL,
  type Item,
  kill,
  killAll,
  type Op,
  ROLES,
  rng,
  type StoredVm,
  sleep,
  spawnNode,
  startCutProxy,
  startNode,
  type VmRow,
  waitOp,
  workerOf,
} from "./crash-support.ts";
import { recordSuite } from "./reliability-record.ts";

const LONG = process.env.CIPHERVISOR_LONG === "1";
const HOSTS = 4;
const VMS = 10_000;
const KILLS = LONG ? 200 : 50;
/** A bulk update's transaction (serve's default batch): the progress a kill can roll back. */
const BATCH = 1000;
const LEASE_S = 1;
const SEED = Number(process.env.CIPHERVISOR_CRASH_SEED ?? 0x5e5e5) >>> 0;
const WAIT_MS = LONG ? 300_000 : 30_000;
/** Kill points while a node starts: this share, up to this long after the spawn; every jitter below JITTER_MS. */
const STARTUP_SHARE = 0.2;
const STARTUP_MS = 1500;
const JITTER_MS = 40;
/** How often, and how many times at most, the suite looks for the run's session to end. */
const TRY_EVERY_MS = 20;
const MAX_TRIES = 1000;
/** How long the proxy keeps PostgreSQL away, and the longest an API call may take to answer meanwhile. */
const OUTAGE_MS = 3_000;
const CALL_BOUND_MS = 2_000;
const CHANGE = "vm.security.enable";

const admin = new pg.Pool({ connectionString: PG_URL, max: 2, connectionTimeoutMillis: 5000 });
admin.on("error", () => {});

const dirs: string[] = [];
const schemas: string[] = [];
const proxies: CutProxy[] = [];
after(async () => {
  await killAll();
  for (const p of proxies) await p.close();
  for (const s of schemas) await admin.query(`drop schema if exists "${s}" cascade`).catch(() => undefined);
  await admin.end();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A private schema (dropped after the file) and a data directory for one test's nodes. */
function privateStore(): { schema: string; dir: string } {
  const schema = `cv_crash_${process.pid}_${randomBytes(5).toString("hex")}`;
  schemas.push(schema);
  const root = mkdtempSync(join(tmpdir(), "cv-crash-pg-"));
  dirs.push(root);
  return { schema, dir: join(root, "data") };
}

/** `--db` for `schema`, optionally through a proxy on `port` instead of the server's own address. */
function dbUrl(schema: string, port?: number): string {
  const u = new URL(PG_URL);
  if (port !== undefined) {
    u.hostname = "127.0.0.1";
    u.port = String(port);
  }
  u.searchParams.set("schema", schema);
  return u.toString();
}

function serve(dir: string, db: string, ...extra: string[]): Promise<ServeChild> {
  return startNode(serveArgs(dir, db, ...extra));
}

function serveArgs(dir: string, db: string, ...extra: string[]): string[] {
  return [
    "--data-dir",
    dir,
    "--db",
    db,
    "--port",
    "0",
    "--log-level",
    "warn",
    "--operation-lease",
    String(LEASE_S),
    ...extra,
  ];
}

/** What the schema held when it was read behind the node's back. */
type Snapshot = Stored;

/** The operation's row, read over a connection of the suite's own (past any proxy) while the node runs. */
async function storeProbe(
  schema: string,
  opId: string,
): Promise<{ read: () => Promise<OpRow>; close: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await c.connect();
  return {
    read: async () => {
      const r = await c.query<OpRow>(
        `select status, attempts, done, total, claimed_by as "claimedBy" from operations where id = $1`,
        [opId],
      );
      const row = r.rows[0];
      assert.ok(row, `operation ${opId} in the schema`);
      return row;
    },
    close: () => c.end(),
  };
}

/** Reads the schema directly (its own connection, not through serve or the proxy) and checks what it holds. */
async function readStore(schema: string, opId: string, where: string): Promise<Snapshot> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await c.connect();
  try {
    // One snapshot of everything: the checks compare rows that must have been committed together.
    await c.query("begin isolation level repeatable read read only");
    const ops = await c.query<OpRow>(
      `select status, attempts, done, total, claimed_by as "claimedBy" from operations where id = $1`,
      [opId],
    );
    const op = ops.rows[0];
    assert.ok(op, `operation ${opId} in the schema ${where}`);
    const rows = await c.query<{ target: string; outcome: string; recorded_at: string }>(
      "select target, outcome, recorded_at from operation_items where operation_id = $1",
      [opId],
    );
    const items = new Map(
      rows.rows.map((r) => [r.target, { outcome: r.outcome, recordedAt: r.recorded_at }]),
    );
    const audit = await c.query<{ target: string }>(
      "select target from audit where action = $1 and (details::jsonb ->> 'operationId') = $2",
      [CHANGE, opId],
    );
    const vms = await c.query<StoredVm>(
      "select id, name, power_state, security_mode, policy::int as policy from vms",
    );
    await c.query("commit");
    assert.equal(vms.rows.length, VMS, `VMs in the schema ${where}`);
    checkStoredState(
      CHANGE,
      op.done,
      vms.rows,
      items,
      audit.rows.map((a) => a.target),
      where,
    );
    return { ...op, items };
  } finally {
    await c.end();
  }
}

/** A node on a fresh fleet of VMS powered-off VMs, and a token with every role the suite needs. */
async function fleet(dir: string, db: string): Promise<{ node: ServeChild; token: string }> {
  const node = await serve(dir, db, "--demo-hosts", String(HOSTS), "--demo-vms", String(VMS));
  const adminToken = readFileSync(join(dir, "admin.token"), "utf8").trim();
  const { secret } = await call<{ secret: string }>(node, adminToken, "POST", "/v1/tokens", {
    name: "crash-suite",
    roles: ROLES,
  });
  return { node, token: secret };
}

async function submit(node: ServeChild, token: string): Promise<string> {
  const { operation } = await call<{ operation: Op }>(
    node,
    token,
    "POST",
    "/v1/vms:bulk-update",
    { selector: { all: true }, set: { securityMode: "sev-es" } },
    { prefer: "respond-async" },
  );
  return operation.id;
}

/**
 * The final checks through the API: final with one result per VM and none twice, every VM wholly old or new and
 * matching its result, exactly one change record per changed VM, and the audit chain verifies.
 */
async function checkFinal(node: ServeChild, token: string, op: Op, where: () => string): Promise<number> {
  assert.ok(["succeeded", "partially-failed"].includes(op.status), `final ${op.status} ${where()}`);
  assert.equal(op.progress.total, VMS, `total ${JSON.stringify(op.progress)} ${where()}`);
  assert.equal(op.progress.done, VMS, `progress ${JSON.stringify(op.progress)} ${where()}`);
  const vms = await allPages<VmRow>(node, token, "/v1/vms");
  const items = await allPages<Item>(node, token, `/v1/operations/${op.id}/items`);
  const audit = await allPages<AuditRow>(node, token, "/v1/audit");
  const verify = await call<{ ok: boolean }>(node, token, "GET", "/v1/audit/verify");
  assert.equal(verify.ok, true, `audit chain: ${JSON.stringify(verify)} ${where()}`);
  const itemOf = new Map<string, Item>();
  for (const i of items) {
    assert.ok(!itemOf.has(i.target), `result of ${i.target} listed twice ${where()}`);
    itemOf.set(i.target, i);
  }
  assert.equal(items.length, VMS, `one result per VM ${where()}`);
  const records = new Map<string, number>();
  for (const a of audit) {
    if (a.action === CHANGE && a.details?.operationId === op.id)
      records.set(a.target, (records.get(a.target) ?? 0) + 1);
  }
  let changed = 0;
  for (const vm of vms) {
    const item = itemOf.get(vm.id);
    const n = records.get(vm.id) ?? 0;
    const at = `VM ${vm.name} (${vm.securityMode} 0x${vm.policy.toString(16)}; ${n} ${CHANGE} records; result ${JSON.stringify(item)}) ${where()}`;
    const isOld = vm.securityMode === "none" && vm.policy === 0;
    const isNew = vm.securityMode === "sev-es" && vm.policy === ES_POLICY;
    assert.ok(isOld || isNew, `half-changed: ${at}`);
    assert.ok(item, `no result: ${at}`);
    assert.equal(n, isNew ? 1 : 0, `audit records not matching the VM: ${at}`);
    assert.equal(item.outcome, isNew ? "ok" : "failed", `result not matching the VM: ${at}`);
    if (isNew) changed++;
  }
  assert.equal(vms.length, VMS, `VMs lost ${where()}`);
  assert.ok(changed > 0, `something changed ${where()}`);
  assert.equal(records.size, changed, `change records for VMs not changed ${where()}`);
  return changed;
}

/** Every result `earlier` held is in the schema now, as it was (no VM redone by the resumed run). */
async function keptSince(
  schema: string,
  opId: string,
  earlier: Snapshot,
  where: () => string,
): Promise<void> {
  const now = await readStore(schema, opId, where());
  for (const [target, was] of earlier.items) {
    const item = now.items.get(target);
    if (item?.outcome !== was.outcome || item.recordedAt !== was.recordedAt)
      assert.fail(`result of ${target} ${JSON.stringify(was)} is now ${JSON.stringify(item)} ${where()}`);
  }
}

/** One call during the outage: its status, content type, code and how long it took. */
async function probe(
  node: ServeChild,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ what: string; status: number; type: string; code: string | undefined; ms: number }> {
  const t0 = Date.now();
  let r: Response;
  try {
    r = await fetch(`${node.url}${path}`, {
      method,
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(CALL_BOUND_MS * 5),
    });
  } catch (e) {
    // No answer at all (the process died, or the bound ran out): status 0, with why.
    const why = e instanceof Error ? String((e.cause as Error | undefined)?.message ?? e.message) : String(e);
    return { what: `${method} ${path}`, status: 0, type: "", code: why, ms: Date.now() - t0 };
  }
  const text = await r.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    code = undefined;
  }
  return {
    what: `${method} ${path}`,
    status: r.status,
    type: r.headers.get("content-type") ?? "",
    code,
    ms: Date.now() - t0,
  };
}

const ran: Record<string, number | string> = { seed: SEED, VMs: VMS };
const done: string[] = [];

const unreachable = await unreachableReason(admin);
if (unreachable === undefined) {
  describe(`crash consistency on PostgreSQL (seed ${SEED})`, { timeout: LONG ? 1_800_000 : 300_000 }, () => {
    it(`bulk-update SEV-ES over ${VMS} VMs, killed at ${KILLS} points: every VM wholly old or new, one audit record per change, no result twice`, async () => {
      const random = rng(SEED);
      const { schema, dir } = privateStore();
      const db = dbUrl(schema);
      const log: string[] = [];
      const where = () => `[PostgreSQL bulk-update: seed ${SEED}; ${log.slice(-3).join("; ")}]`;
      const first = await fleet(dir, db);
      const points = killSchedule(random, {
        count: KILLS,
        total: VMS,
        step: BATCH,
        startupShare: STARTUP_SHARE,
        startupMs: STARTUP_MS,
        jitterMs: JITTER_MS,
      });
      console.log(
        `# PostgreSQL bulk-update: seed ${SEED}; kill points ${points.map(describePoint).join(", ")}`,
      );
      const opId = await submit(first.node, first.token);
      const submittedAt = Date.now();
      const probe = await storeProbe(schema, opId);
      const cycles: number[] = [];
      let last: Snapshot = NOTHING_YET;
      let midOperation = 0;
      try {
        for (const [k, point] of points.entries()) {
          const t0 = Date.now();
          const spawned = k === 0 ? undefined : spawnNode(serveArgs(dir, db));
          const node = spawned ?? {
            child: first.node.child,
            worker: workerOf(first.node.child),
            stderr: first.node.stderr,
          };
          const at = `kill ${k + 1} (${describePoint(point)})`;
          const out = await killAtPoint(
            point,
            node,
            spawned?.spawnedAt ?? submittedAt,
            probe.read,
            WAIT_MS,
            () => `${at} ${where()}`,
          );
          const crash = await readStore(schema, opId, `${at} ${where()}`);
          checkKill(last, crash, node.worker, out.seen, VMS, BATCH, `${at} ${where()}`);
          const claimed = out.claimMs === undefined ? "not claimed" : `claimed at +${out.claimMs} ms`;
          log.push(
            `${at}: ${claimed}, killed at +${out.killMs} ms: ${crash.status}, ${crash.done}/${crash.total}`,
          );
          last = crash;
          if (k > 0) cycles.push(Date.now() - t0);
          if (FINAL.includes(crash.status)) {
            log.push(`finished before kill ${k + 2}: ${points.length - k - 1} points unspent`);
            break;
          }
          midOperation++;
        }
      } catch (e) {
        console.log(`# PostgreSQL bulk-update: seed ${SEED}; ${log.join("; ")}`);
        throw e;
      } finally {
        await probe.close();
      }
      const node = await serve(dir, db);
      const op = await waitOp(node, first.token, opId, `the end ${where()}`, () => false, WAIT_MS);
      console.log(
        `# PostgreSQL bulk-update: seed ${SEED}; ${midOperation} kills mid-operation, median cycle ${median(cycles)} ms; final ${op.status} after ${op.attempts} claims`,
      );
      console.log(`# PostgreSQL bulk-update: ${log.join("; ")}`);
      assert.equal(op.attempts, last.attempts + (FINAL.includes(last.status) ? 0 : 1), `claims ${where()}`);
      await checkFinal(node, first.token, op, where);
      // No VM redone: a result stored before the last kill (each kept the ones before it) is the one at the end.
      const final = await readStore(schema, opId, where());
      for (const [target, was] of last.items) {
        const now = final.items.get(target);
        if (now?.outcome !== was.outcome || now.recordedAt !== was.recordedAt)
          assert.fail(`result of ${target} stored before the last kill: ${JSON.stringify(now)} ${where()}`);
      }
      await kill(node);
      ran["kill points"] = KILLS;
      ran["kills mid-operation"] = midOperation;
      ran["ms median cycle"] = median(cycles);
      done.push("crash");
    });

    it(`PostgreSQL away for ${OUTAGE_MS / 1000} s mid-operation: 503 STORE_UNREACHABLE within ${CALL_BOUND_MS} ms, not ready, no crash; then resumed and finished, nothing half-written`, async () => {
      const { schema, dir } = privateStore();
      const target = new URL(PG_URL);
      const proxy = await startCutProxy(target.hostname, Number(target.port || 5432));
      proxies.push(proxy);
      const log: string[] = [];
      const where = () => `[PostgreSQL outage; ${log.join("; ")}]`;
      const { node, token } = await fleet(dir, dbUrl(schema, proxy.port));
      const opId = await submit(node, token);
      // Cut once the first transaction is visible, so the outage lands between or inside the later ones.
      const seen = await waitOp(
        node,
        token,
        opId,
        `first batch ${where()}`,
        (op) => op.progress.done > 0,
        WAIT_MS,
      );
      proxy.cut();
      const cutAt = Date.now();
      log.push(`cut at ${seen.progress.done}/${seen.progress.total} done`);
      assert.ok(!FINAL.includes(seen.status), `the operation ended before the cut ${where()}`);

      const answers: Awaited<ReturnType<typeof probe>>[] = [];
      let health = 0;
      while (Date.now() - cutAt < OUTAGE_MS - 500) {
        answers.push(
          ...(await Promise.all([
            probe(node, token, "GET", "/v1/vms?limit=10"),
            probe(node, token, "GET", `/v1/operations/${opId}`),
            probe(node, token, "POST", "/v1/tokens", { name: "during-outage", roles: ["auditor"] }),
            probe(node, undefined, "GET", "/readyz"),
          ])),
        );
        const h = await probe(node, undefined, "GET", "/healthz");
        assert.equal(
          h.status,
          200,
          `/healthz during the outage ${JSON.stringify(h)} ${where()}; answers ${JSON.stringify(answers.slice(-4))}; serve exit ${node.child.exitCode}, stderr: ${node.stderr().slice(-3000)}`,
        );
        health++;
        await sleep(100);
      }
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - cutAt)));
      // The schema as the outage left it, read past the proxy: nothing half-written.
      const during = await readStore(schema, opId, where());
      log.push(`schema during the outage: ${during.status}, ${during.done}/${during.total} done`);
      assert.equal(node.child.exitCode, null, `serve exited during the outage: ${node.stderr()} ${where()}`);
      proxy.restore();
      log.push(`restored after ${Date.now() - cutAt} ms; ${proxy.refused()} connections refused`);

      assert.ok(answers.length >= 8, `calls answered during the outage: ${answers.length} ${where()}`);
      for (const a of answers) {
        const at = `${JSON.stringify(a)} ${where()}`;
        assert.equal(
          a.status,
          503,
          `not a 503 during the outage: ${at}; serve exit ${node.child.exitCode} ${node.child.signalCode}, stderr: ${node.stderr().slice(-2000)}`,
        );
        assert.match(a.type, /^application\/problem\+json/, at);
        assert.equal(a.code, "STORE_UNREACHABLE", at);
        assert.ok(a.ms <= CALL_BOUND_MS, `answered after ${a.ms} ms: ${at}`);
      }
      assert.ok(proxy.refused() > 0, `serve tried to reconnect during the outage ${where()}`);

      const op = await waitOp(node, token, opId, `the end after the outage ${where()}`, () => false, WAIT_MS);
      console.log(`# PostgreSQL outage: ${log.join("; ")}; final ${op.status} after ${op.attempts} claims`);
      assert.equal(node.child.exitCode, null, `serve exited: ${node.stderr()} ${where()}`);
      // The run the outage broke was handed back, not finished as failed: claimed again, then done.
      assert.ok(op.attempts >= 2, `resumed by a new claim: ${JSON.stringify(op)} ${where()}`);
      assert.equal(op.status, "succeeded", `resumed to success: ${JSON.stringify(op)} ${where()}`);
      const ready = await probe(node, undefined, "GET", "/readyz");
      assert.equal(ready.status, 200, `/readyz after the outage ${JSON.stringify(ready)} ${where()}`);
      assert.equal(await checkFinal(node, token, op, where), VMS, `every VM changed exactly once ${where()}`);
      await keptSince(schema, opId, during, where);
      await kill(node);
      ran["outage calls answered 503"] = answers.length;
      ran["outage ms"] = OUTAGE_MS;
      ran["/healthz during outage"] = health;
      done.push("outage");
    });

    it(`PostgreSQL ends the run's session mid-transaction, and answers the next write: the run resumed, not failed; every VM changed once`, async () => {
      const { schema, dir } = privateStore();
      const target = new URL(PG_URL);
      // The proxy only names this node's connections (its ports), so only they are ended on the shared server.
      const proxy = await startCutProxy(target.hostname, Number(target.port || 5432));
      proxies.push(proxy);
      const log: string[] = [];
      const where = () => `[PostgreSQL session ended; ${log.join("; ")}]`;
      const { node, token } = await fleet(dir, dbUrl(schema, proxy.port));
      const opId = await submit(node, token);
      const store = await storeProbe(schema, opId);
      let row: OpRow;
      let ended = 0;
      let before: Snapshot | undefined;
      try {
        // End the sessions in a transaction or a query (the run's batch) until one broke the run: the operation
        // claimed again — or, as before the fix, finished failed by the "mark failed" write on an idle session.
        for (let tries = 0; ; tries++) {
          row = await store.read();
          if (row.attempts >= 2 || FINAL.includes(row.status)) break;
          assert.ok(
            tries < MAX_TRIES,
            `no session ended in ${tries} tries ${JSON.stringify(row)} ${where()}`,
          );
          if (row.status === "running" && row.done > 0) {
            before ??= await readStore(schema, opId, where());
            const r = await admin.query<{ ended: boolean }>(
              `select pg_terminate_backend(pid) as ended from pg_stat_activity
                where client_port = any($1::int[]) and state in ('active', 'idle in transaction')
                  and pid <> pg_backend_pid()`,
              [proxy.upstreamPorts()],
            );
            ended += r.rows.filter((x) => x.ended).length;
          }
          await sleep(TRY_EVERY_MS);
        }
      } finally {
        await store.close();
      }
      log.push(`${ended} sessions ended; then ${JSON.stringify(row)}`);
      const op = await waitOp(
        node,
        token,
        opId,
        `the end after the sessions ended ${where()}`,
        () => false,
        WAIT_MS,
      );
      console.log(
        `# PostgreSQL session ended: ${log.join("; ")}; final ${op.status} after ${op.attempts} claims`,
      );
      assert.equal(node.child.exitCode, null, `serve exited: ${node.stderr()} ${where()}`);
      assert.equal(
        op.status,
        "succeeded",
        `resumed to success, not failed: ${JSON.stringify(op)} ${where()}`,
      );
      assert.ok(op.attempts >= 2, `resumed by a new claim: ${JSON.stringify(op)} ${where()}`);
      assert.equal(await checkFinal(node, token, op, where), VMS, `every VM changed exactly once ${where()}`);
      if (before) await keptSince(schema, opId, before, where);
      await kill(node);
      ran["sessions ended under the run"] = ended;
      done.push("session");
    });

    after(() => {
      if (done.length < 3) return;
      recordSuite("crash-consistency-pg", {
        suite: "Crash consistency (PostgreSQL)",
        ran,
        held: [
          "every kill found the schema already consistent, nothing stored earlier lost or rewritten, one claim per node",
          "finished only when a kill came in the last step",
          "taken over to the end",
          "every VM wholly old or new, its result matching it",
          "one audit record per applied change, chain verifies",
          "no result recorded twice or redone",
          "PostgreSQL away: every call 503 STORE_UNREACHABLE in bound, /readyz not ready, no crash",
          "after the outage: resumed by a new claim and succeeded, every VM changed exactly once, nothing half-written",
          "the run's session ended mid-transaction: resumed, not failed, every VM changed exactly once",
        ],
      });
    });
  });
} else {
  postgresUnreachable("PostgreSQL crash-consistency suite", PG_URL, unreachable);
}
