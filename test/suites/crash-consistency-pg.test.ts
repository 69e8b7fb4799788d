/**
 * Crash consistency on PostgreSQL (issue 13, "Suites"): the SQLite suite's crash checks (crash-consistency.test.ts)
 * with the inventory on the test server, and PostgreSQL going away under a running operation. Each test runs a child
 * `serve` (the built CLI through bin/, port 0) on a private schema of CIPHERVISOR_TEST_PG (`--db …?schema=NAME`),
 * dropped afterwards, so runs share the server in parallel; the server itself is never stopped.
 *
 * 1. `vms:bulk-update` turning SEV-ES on for 3,000 VMs (1,000-VM transactions) is SIGKILLed a seeded random delay
 *    after the 202, restarted with a 1 s `--operation-lease`, killed again after the takeover, then left to finish.
 *    Right after each kill the schema is read directly (pg, nothing repaired): every VM wholly old or new, a change
 *    audited exactly when made, no result without its change. At the end: taken over once per kill, final with one
 *    result per VM and none twice, no result stored before a kill rewritten, one audit record per changed VM, and
 *    the chain verifies (GET /v1/audit/verify).
 * 2. "PostgreSQL stopped" without touching the shared server: `serve` reaches it through a TCP proxy
 *    (crash-support.ts) that, once the operation's first transaction is visible, destroys every connection and
 *    resets new ones for OUTAGE_MS, then forwards again. During the outage every API call (reads, writes, /readyz)
 *    answers 503 `application/problem+json` with STORE_UNREACHABLE within CALL_BOUND_MS — never a 500 or a hang —
 *    /healthz still answers and the process stays up; the schema, read directly, is consistent. Afterwards the
 *    operation resumes and finishes with every VM wholly old or new, one audit record per change, the chain intact.
 *
 * An unreachable server fails the suite under CI=true and is skipped loudly otherwise. `CIPHERVISOR_CRASH_SEED`
 * replays the kill delays; `CIPHERVISOR_LONG=1` runs 20,000 VMs and 6 kills.
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
  startCutProxy,
  startNode,
  type VmRow,
  waitOp,
} from "./crash-support.ts";
import { recordSuite } from "./reliability-record.ts";

const LONG = process.env.CIPHERVISOR_LONG === "1";
const HOSTS = 4;
const VMS = LONG ? 20_000 : 3_000;
const KILLS = LONG ? 6 : 2;
const LEASE_S = 1;
const SEED = Number(process.env.CIPHERVISOR_CRASH_SEED ?? 0x5e5e5) >>> 0;
const WAIT_MS = LONG ? 300_000 : 20_000;
/** The first kill's delay after the 202 is drawn from [0, FIRST_DELAY_MS), a later one's from [0, LATER_DELAY_MS). */
const FIRST_DELAY_MS = 400;
const LATER_DELAY_MS = 250;
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
  return startNode([
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
  ]);
}

/** What the schema held when it was read behind the node's back. */
interface Snapshot {
  readonly status: string;
  readonly attempts: number;
  readonly done: number;
  readonly total: number;
  readonly items: ReadonlyMap<string, { outcome: string; recordedAt: string }>;
}

/** Reads the schema directly (its own connection, not through serve or the proxy) and checks what it holds. */
async function readStore(schema: string, opId: string, where: string): Promise<Snapshot> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await c.connect();
  try {
    // One snapshot of everything: the checks compare rows that must have been committed together.
    await c.query("begin isolation level repeatable read read only");
    const ops = await c.query<{ status: string; attempts: number; done: number; total: number }>(
      "select status, attempts, done, total from operations where id = $1",
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

const ran: Record<string, number | string> = { seed: SEED, VMs: VMS, "kills per run": KILLS };
const done: string[] = [];

const unreachable = await unreachableReason(admin);
if (unreachable === undefined) {
  describe(`crash consistency on PostgreSQL (seed ${SEED})`, { timeout: LONG ? 1_800_000 : 120_000 }, () => {
    it(`bulk-update SEV-ES over ${VMS} VMs, SIGKILLed and taken over ${KILLS - 1} times: every VM wholly old or new, one audit record per change, no result twice`, async () => {
      const random = rng(SEED);
      const { schema, dir } = privateStore();
      const db = dbUrl(schema);
      const log: string[] = [];
      const where = () => `[PostgreSQL bulk-update: seed ${SEED}; ${log.join("; ")}]`;
      let { node, token } = await fleet(dir, db);
      const opId = await submit(node, token);
      const crashes: Snapshot[] = [];
      let delayMs = Math.floor(random() * FIRST_DELAY_MS);
      for (let k = 1; k <= KILLS; k++) {
        await sleep(delayMs);
        await kill(node);
        const crash = await readStore(schema, opId, where());
        crashes.push(crash);
        const when = k === 1 ? `at +${delayMs} ms` : `${delayMs} ms after takeover ${crash.attempts}`;
        log.push(`kill ${k} ${when}: ${crash.status}, ${crash.done}/${crash.total} done`);
        node = await serve(dir, db);
        if (FINAL.includes(crash.status) || k === KILLS) break;
        const claimed = crash.status === "running" ? crash.attempts + 1 : 1;
        const seen = await waitOp(
          node,
          token,
          opId,
          `takeover before kill ${k + 1} ${where()}`,
          (op) => op.status === "running" && op.attempts >= claimed,
          WAIT_MS,
        );
        if (FINAL.includes(seen.status)) {
          log.push(`takeover ${seen.attempts} finished before kill ${k + 1}`);
          break;
        }
        delayMs = Math.floor(random() * LATER_DELAY_MS);
      }
      // The first kill must have found work left, or this was no crash test (3,000 VMs take about a second).
      assert.ok(!FINAL.includes(crashes[0]?.status ?? ""), `the first kill came after the end ${where()}`);
      const op = await waitOp(node, token, opId, `the end ${where()}`, () => false, WAIT_MS);
      console.log(
        `# PostgreSQL bulk-update: seed ${SEED}; ${log.join("; ")}; final ${op.status} after ${op.attempts} claims`,
      );
      const takeovers = crashes.filter((c) => c.status === "running").length;
      assert.equal(op.attempts, takeovers + 1, `claims ${where()}`);
      await checkFinal(node, token, op, where);
      // No VM redone: a result stored before a kill is the one at the end, from the same moment.
      const final = await readStore(schema, opId, where());
      for (const [k, c] of crashes.entries()) {
        for (const [target, was] of c.items) {
          assert.deepEqual(
            final.items.get(target),
            was,
            `result of ${target} stored before kill ${k + 1} ${where()}`,
          );
        }
      }
      await kill(node);
      ran["kills mid-operation"] = crashes.filter((c) => !FINAL.includes(c.status)).length;
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
      // The run the outage broke was handed on by its lease, not finished as failed: claimed again, then done.
      assert.ok(op.attempts >= 2, `resumed by a new claim: ${JSON.stringify(op)} ${where()}`);
      const ready = await probe(node, undefined, "GET", "/readyz");
      assert.equal(ready.status, 200, `/readyz after the outage ${JSON.stringify(ready)} ${where()}`);
      await checkFinal(node, token, op, where);
      const final = await readStore(schema, opId, where());
      for (const [target, was] of during.items) {
        assert.deepEqual(
          final.items.get(target),
          was,
          `result of ${target} stored before the outage ${where()}`,
        );
      }
      await kill(node);
      ran["outage calls answered 503"] = answers.length;
      ran["outage ms"] = OUTAGE_MS;
      ran["/healthz during outage"] = health;
      done.push("outage");
    });

    after(() => {
      if (done.length < 2) return;
      recordSuite("crash-consistency-pg", {
        suite: "Crash consistency (PostgreSQL)",
        ran,
        held: [
          "every kill found the schema already consistent",
          "taken over once per kill and finished",
          "every VM wholly old or new, its result matching it",
          "one audit record per applied change, chain verifies",
          "no result recorded twice or redone",
          "PostgreSQL away: every call 503 STORE_UNREACHABLE in bound, /readyz not ready, no crash",
          "after the outage: resumed and finished, nothing half-written",
        ],
      });
    });
  });
} else {
  postgresUnreachable("PostgreSQL crash-consistency suite", PG_URL, unreachable);
}
