/**
 * I/O faults (issue 13, "Suites"): a store whose Nth write fails — N = 1, 2, … until a run in which no write is
 * left to fail — under a bulk SEV-ES enable of 100 VMs (500 with `CIPHERVISOR_LONG=1`) driven through the
 * control plane. The fault is injected at the database connection (`inventory/testing/faults.ts`): the driver's
 * own I/O error on one INSERT/UPDATE/DELETE, so the inventory's real transactions, rollbacks and error mapping
 * and the engine's real failure handling run. For every N this proves:
 *  - the submit is refused with a coded error, or the operation ends final (succeeded, partially-failed or
 *    failed with a stable error code), never stuck and never a raw exception;
 *  - every VM is wholly old (the row as it was) or wholly new (mode, policy and version moved together), and is
 *    new exactly when the operation recorded it as changed;
 *  - the audit chain verifies, with exactly one `vm.security.enable` record per changed VM and none for others;
 *  - no item is recorded twice;
 *  - with the fault gone, the same bulk request changes exactly the VMs left over; the others are `unchanged`
 *    and the refused ones are refused again.
 * The SQLite store always runs; PostgreSQL runs when the test server answers (every third N, every N in the
 * long run).
 */
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import { verifyAuditChain } from "../../src/control/audit/verify.ts";
import { emulatedDriver } from "../../src/control/drivers/emulated-hosts.ts";
import { newId } from "../../src/control/ids.ts";
import type { Inventory } from "../../src/control/inventory/inventory.ts";
import { openInventory } from "../../src/control/inventory/open.ts";
import { type FaultFlavour, WriteFaults } from "../../src/control/inventory/testing/faults.ts";
import type { NewVm, Operation, OperationItem, Vm } from "../../src/control/inventory/types.ts";
import { bulkParams } from "../../src/control/services/bulk-update.ts";
import {
  type Fixture,
  fixtureOn,
  linuxSpec,
  PG_URL,
  postgresDatabase,
  sqliteDatabase,
  TEST_ACTOR,
  type TestDatabase,
} from "../../src/control/testing/control-fixture.ts";
import { CiphervisorError, isErrorCode } from "../../src/errors.ts";
import { recordSuite } from "./reliability-record.ts";

const LONG = process.env.CIPHERVISOR_LONG === "1";
const VMS = LONG ? 500 : 100;
/** Ten transactions per run (more VMs each in the long run), so faults land before, between and inside them. */
const BATCH = LONG ? 50 : 10;
/** Of each N's VMs: this many too old for SEV-ES (refused every time), this many already SEV-ES (unchanged). */
const REFUSED = 5;
const ALREADY = 5;
/** A safety stop: far more writes than one run makes. */
const MAX_N = 2000;
const LEASE_MS = 2000;
/** Figures for docs/reliability.md. */
const ran: Record<string, number | string> = { VMs: VMS, "VMs per batch": BATCH };
const FINAL: readonly Operation["status"][] = ["succeeded", "partially-failed", "failed"];

interface Store {
  readonly flavour: FaultFlavour;
  readonly faults: WriteFaults;
  readonly inventory: Inventory;
  readonly f: Fixture;
  readonly host: string;
  close(): Promise<void>;
}

async function openStore(db: TestDatabase, flavour: FaultFlavour): Promise<Store> {
  const faults = new WriteFaults();
  const wrapDialect = (d: Parameters<WriteFaults["wrap"]>[0]) => faults.wrap(d, flavour);
  const inventory = await openInventory(
    db.url,
    db.schema === undefined ? { wrapDialect } : { schema: db.schema, poolSize: 4, wrapDialect },
  );
  // The idle engine claims only when kicked (each claim attempt is an UPDATE, so a timed poll would put writes
  // at random places in the count); `settle` kicks it as a timed poll would. A short lease: an operation whose
  // `finish` write failed is taken over soon after.
  const f = fixtureOn(inventory, emulatedDriver(), { batchSize: BATCH, leaseMs: LEASE_MS, pollMs: 600_000 });
  const host = await f.host("milan-1", "milan");
  return {
    flavour,
    faults,
    inventory,
    f,
    host,
    async close() {
      await f.cp.stop();
      await inventory.close();
      await db.dispose();
    },
  };
}

/** The operation once final, kicking the engine each lease period (what its timed poll does in `serve`). */
async function settle(f: Fixture, id: string): Promise<Operation> {
  let op = await f.cp.engine.waitFor(id, LEASE_MS);
  for (let i = 0; i < 10 && !FINAL.includes(op.status); i++) {
    f.cp.engine.kick();
    op = await f.cp.engine.waitFor(id, LEASE_MS);
  }
  return op;
}

async function allItems(inventory: Inventory, opId: string): Promise<OperationItem[]> {
  const out: OperationItem[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: OperationItem[]; nextCursor: string | null } = await inventory.operations.items(
      opId,
      { limit: 5000, cursor },
    );
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

const changed = (i: OperationItem) => i.outcome === "ok" && i.details?.unchanged !== true;

function assertNoDuplicates(items: readonly OperationItem[], what: string): void {
  const targets = items.map((i) => i.target);
  assert.equal(new Set(targets).size, targets.length, `${what}: an item is recorded twice`);
}

/** What one N did, for the diagnostics line. */
interface Outcome {
  readonly fired: string | undefined;
  readonly writes: number;
  readonly result: string;
  readonly changedFirst: number;
}

/** One N on fresh VMs (prefix `n<N>-`): fault run, checks, clean re-run, checks. `n` undefined: no fault. */
async function faultCase(s: Store, n: number | undefined): Promise<Outcome> {
  const { inventory, f, faults } = s;
  const prefix = `n${n ?? 0}-`;
  // Ids made here, in order, so the layout by id (the order the bulk pages in) is fixed: one refused or one
  // already-SEV-ES VM in each batch, the same writes in the same order in every case.
  const t = Date.now();
  const ids = Array.from({ length: VMS }, () => newId("vm", t)).sort();
  const rows = ids.map((id, i): NewVm => {
    const name = `${prefix}${String(i).padStart(4, "0")}`;
    const slot = i % (VMS / (REFUSED + ALREADY));
    if (slot === 3 && i % 20 < 10)
      return { id, name, spec: { ...linuxSpec, hardwareVersion: 14 }, hostId: s.host };
    if (slot === 3) return { id, name, spec: linuxSpec, hostId: s.host, securityMode: "sev-es", policy: 0x7 };
    return { id, name, spec: linuxSpec, hostId: s.host };
  });
  await inventory.vms.createMany(rows);
  const before = new Map(
    (await inventory.vms.list({ namePrefix: prefix }, { limit: 5000 })).items.map((v) => [v.id, v]),
  );
  assert.equal(before.size, VMS);
  const eligible = new Set(
    [...before.values()]
      .filter((v) => v.securityMode === "none" && v.spec.hardwareVersion !== 14)
      .map((v) => v.id),
  );
  const params = bulkParams({ namePrefix: prefix }, { securityMode: "sev-es" }, ["security-admin"]);
  const label = `${s.flavour} N=${n ?? "none"}`;

  if (n === undefined) faults.count();
  else faults.arm(n);
  let first: { op: Operation; items: OperationItem[] } | undefined;
  let result: string;
  try {
    const { operation } = await f.cp.submit({
      kind: "vm.bulk-update",
      actor: TEST_ACTOR,
      params,
      target: "*",
    });
    const op = await settle(f, operation.id);
    first = { op, items: await allItems(inventory, op.id) };
    result = `${op.error ? `${op.status} ${op.error.code}` : op.status}${op.attempts > 1 ? ` (attempt ${op.attempts})` : ""}`;
  } catch (e) {
    // Only the submit itself may refuse; it must say so with a code.
    assert.ok(e instanceof CiphervisorError, `${label}: submit threw a raw ${String(e)}`);
    // A failed disk write is the unavailable IO, never INTERNAL (kysely/errors.ts maps the drivers' codes).
    assert.equal(e.code, "IO", `${label}: ${e.code} ${e.message}`);
    result = `submit refused ${e.code}`;
  }
  const fired = faults.fired;
  const writes = faults.writes;
  faults.disarm();

  // Whatever the fault hit, the store now holds a consistent state.
  const changedFirst = new Set<string>();
  if (first) {
    const { op, items } = first;
    assert.ok(FINAL.includes(op.status), `${label}: operation left ${op.status}`);
    if (op.status === "failed") {
      assert.ok(op.error && isErrorCode(op.error.code), `${label}: failed without a stable code`);
      assert.equal(op.error.code, "IO", `${label}: a disk error is IO: ${op.error.message}`);
      assert.ok(
        !op.error.message.includes("SQLITE_") && !op.error.message.includes("58030"),
        op.error.message,
      );
    }
    assertNoDuplicates(items, label);
    for (const i of items) {
      assert.ok(before.has(i.target), `${label}: item for a VM outside the selector`);
      if (changed(i)) changedFirst.add(i.target);
    }
    if (op.status !== "failed") assert.equal(items.length, VMS, `${label}: a final run records every VM`);
  }
  for (const [id, was] of before) {
    const now = await inventory.vms.get(id);
    assert.ok(now, `${label}: VM ${was.name} vanished`);
    if (changedFirst.has(id)) {
      assert.deepEqual(
        now,
        { ...was, securityMode: "sev-es", policy: 0x7, version: was.version + 1, updatedAt: now.updatedAt },
        `${label}: VM ${was.name} recorded as changed is not wholly new`,
      );
    } else {
      assert.deepEqual(now, was, `${label}: VM ${was.name} not recorded as changed is not wholly old`);
    }
  }
  const chain = await verifyAuditChain(inventory);
  assert.ok(chain.ok, `${label}: audit chain broken: ${JSON.stringify(chain)}`);
  await assertAuditedOnce(inventory, before, changedFirst, label);

  // The same request again, with no fault: exactly the rest changes.
  faults.count();
  const { op, items } = await f.run("vm.bulk-update", params);
  assert.equal(faults.fired, undefined);
  assert.equal(op.status, "partially-failed", `${label}: re-run ${op.status} ${op.error?.code ?? ""}`);
  assert.equal(items.length, VMS);
  assertNoDuplicates(items, `${label} re-run`);
  for (const i of items) {
    const vm = before.get(i.target);
    assert.ok(vm, `${label}: re-run item for a VM outside the selector`);
    if (vm.spec.hardwareVersion === 14) assert.equal(i.code, "HARDWARE_VERSION");
    else if (eligible.has(i.target) && !changedFirst.has(i.target))
      assert.ok(changed(i), `${label}: VM ${vm.name} left over but not changed by the re-run`);
    else
      assert.deepEqual(
        [i.outcome, i.details],
        ["ok", { unchanged: true }],
        `${label}: ${vm.name} changed twice`,
      );
  }
  for (const id of eligible) {
    const vm = await inventory.vms.get(id);
    assert.deepEqual(
      [vm?.securityMode, vm?.policy, vm?.version],
      ["sev-es", 0x7, 2],
      `${label}: ${vm?.name}`,
    );
  }
  assert.ok((await verifyAuditChain(inventory)).ok, `${label}: audit chain broken after the re-run`);
  await assertAuditedOnce(inventory, before, eligible, `${label} re-run`);
  return { fired, writes, result, changedFirst: changedFirst.size };
}

/** Exactly one `vm.security.enable` record for each VM in `changed`, none for the other VMs of the case. */
async function assertAuditedOnce(
  inventory: Inventory,
  vms: ReadonlyMap<string, Vm>,
  changedIds: ReadonlySet<string>,
  label: string,
): Promise<void> {
  const perTarget = new Map<string, number>();
  let cursor: string | null = null;
  do {
    const page: Awaited<ReturnType<Inventory["audit"]["list"]>> = await inventory.audit.list(
      { action: "vm.security.enable" },
      { limit: 5000, cursor },
    );
    for (const r of page.items) {
      if (r.target !== null && vms.has(r.target)) perTarget.set(r.target, (perTarget.get(r.target) ?? 0) + 1);
    }
    cursor = page.nextCursor;
  } while (cursor !== null);
  for (const id of vms.keys()) {
    assert.equal(
      perTarget.get(id) ?? 0,
      changedIds.has(id) ? 1 : 0,
      `${label}: audit records for ${vms.get(id)?.name}`,
    );
  }
}

/** N = 1, 2, … (every `step`th) until a run in which the armed fault found no write left to fail. */
async function sweep(t: TestContext, s: Store, step: number): Promise<void> {
  const stats = { cases: 0, takenOver: 0 };
  const baseline = await faultCase(s, undefined);
  assert.equal(baseline.result, "partially-failed");
  const outcomes: string[] = [];
  let midRun = 0;
  let n = 1;
  // A coarse step still ends on the last write (the finish) and then past it.
  const next = (k: number) =>
    k < baseline.writes && k + step > baseline.writes ? baseline.writes : k + step;
  for (; n <= MAX_N; n = next(n)) {
    const o = await faultCase(s, n);
    stats.cases++;
    if (o.fired === undefined) {
      // Nothing left to fail: the operation must simply have worked.
      assert.equal(o.result, "partially-failed", `N=${n}: ${o.result}`);
      break;
    }
    if (o.changedFirst > 0 && o.changedFirst < VMS - REFUSED - ALREADY) midRun++;
    if (o.result.includes("(attempt")) stats.takenOver++;
    outcomes.push(
      `N=${n} ${o.fired.split(/\s+/).slice(0, 3).join(" ")} → ${o.result}, ${o.changedFirst} changed`,
    );
  }
  assert.ok(n <= MAX_N, "the sweep never reached a run without a fault");
  // The sweep ends only past the last write a clean run makes (the operation's `finish`).
  assert.ok(n > baseline.writes, `the sweep stopped at N=${n}, before write ${baseline.writes}`);
  // The sweep must have crossed the interesting region: faults that left an operation part-way.
  assert.ok(midRun > 0, "no fault landed between two committed batches");
  t.diagnostic(
    `${s.flavour}: ${VMS} VMs, a clean run makes ${baseline.writes} writes; faults at N=1, 1+${step}, … up to the last write; none left at N=${n}; ${midRun} left the first run part-way`,
  );
  for (const line of outcomes) t.diagnostic(line);
  ran[`${s.flavour} cases`] = stats.cases;
  ran[`${s.flavour} faults injected`] = outcomes.length;
  ran[`${s.flavour} left part-way`] = midRun;
  ran[`${s.flavour} finish lost, taken over`] = stats.takenOver;
  ran[`${s.flavour} writes per clean run`] = baseline.writes;
}

describe("I/O faults: the Nth write fails during a bulk SEV-ES enable", {
  timeout: LONG ? 600_000 : 60_000,
}, () => {
  it("SQLite: every N leaves whole VMs, one audit record per change, and a re-run finishes the rest", async (t) => {
    const s = await openStore(sqliteDatabase(), "sqlite");
    try {
      await sweep(t, s, 1);
    } finally {
      await s.close();
    }
  });

  let pg: TestDatabase | undefined;
  before(async () => {
    pg = await postgresDatabase();
  });
  after(async () => {
    await pg?.dispose();
    recordSuite("io-faults", {
      suite: "I/O faults",
      ran,
      held: [
        "a fault refuses the submit with a code or the operation ends final with a stable code",
        "every VM wholly old or new, new exactly when recorded as changed",
        "audit chain verifies with one record per changed VM",
        "no item recorded twice",
        "a re-run changes exactly the rest",
      ],
    });
  });
  it("PostgreSQL: the same", async (t) => {
    if (!pg) {
      t.skip(`no PostgreSQL at ${PG_URL.replace(/:[^:@/]*@/, ":***@")}`);
      return;
    }
    const s = await openStore(pg, "postgres");
    pg = undefined; // closed by the store
    try {
      await sweep(t, s, LONG ? 1 : 3);
    } finally {
      await s.close();
    }
  });
});
