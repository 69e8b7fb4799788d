/**
 * The inventory contract suite: one set of tests that every Inventory backend must pass, run once per database
 * (`sqlite.test.ts`, `postgres.test.ts`). A backend supplies fresh databases plus a side door (raw SQL, a dump of
 * every stored value) so that tests can tamper with rows the way an attacker with database access would.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import { isCiphervisorError } from "../../errors.ts";
import { type AuditEntry, type AuditRecord, auditRecordHash } from "../audit/record.ts";
import { verifyAuditChain } from "../audit/verify.ts";
import { authenticateToken, hashToken, issueToken } from "../tokens.ts";
import type { Inventory, InventoryScope } from "./inventory.ts";
import {
  type Actor,
  type Page,
  VM_SORT_KEYS,
  type Vm,
  type VmOrder,
  type VmSortKey,
  type VmSpec,
} from "./types.ts";

/** One fresh, migrated database of a backend, with ways around the API. */
export interface ContractDatabase {
  readonly inventory: Inventory;
  /** Another inventory on the same database through its own connection or pool: a second control-plane node. */
  openPeer(options?: { readonly now?: () => Date }): Promise<Inventory>;
  /**
   * Runs SQL statements directly, outside the inventory. With `bypassTriggers` the audit table's append-only
   * triggers are dropped or disabled first, as an attacker with owner rights on the database could.
   */
  sql(statements: readonly string[], options?: { readonly bypassTriggers?: boolean }): Promise<void>;
  /** Every value stored in every table, as text (to prove a secret is never stored). */
  dumpText(): Promise<string>;
  /** Closes every connection and removes the database. */
  dispose(): Promise<void>;
}

export interface ContractBackend {
  /** A fresh, empty database (own file or schema), migrated. */
  create(options?: { readonly now?: () => Date }): Promise<ContractDatabase>;
}

const actor: Actor = { id: "tok_test", name: "contract-test" };
const spec: VmSpec = {
  vcpus: 2,
  memoryMiB: 2048,
  guestOs: "ubuntu-22.04",
  firmware: "efi",
  hardwareVersion: 19,
};

/** A clock tests can move. */
class TestClock {
  #t = Date.parse("2026-01-01T00:00:00.000Z");
  readonly now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    assert.ok(isCiphervisorError(e), `expected a CiphervisorError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

async function all<T>(list: (cursor: string | null) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await list(cursor);
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

async function auditAll(inv: Inventory): Promise<AuditRecord[]> {
  return all((cursor) => inv.audit.list({}, { limit: 5000, cursor }));
}

async function createVms(inv: InventoryScope, n: number, prefix = "vm", hostId: string | null = null) {
  return inv.vms.createMany(
    Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${String(i).padStart(5, "0")}`, spec, hostId })),
  );
}

/**
 * One batch of a bulk "turn SEV-ES on": lock, update, audit, all in one transaction. `failAfterUpdate` throws
 * between the VM writes and the audit append, as a crash or an audit-write failure would.
 */
async function enableEsBatch(
  inv: Inventory,
  ids: readonly string[],
  failAfterUpdate = false,
): Promise<string[]> {
  return inv.transaction(async (tx) => {
    const vms = await tx.vms.lockMany(ids);
    const changed = await tx.vms.updateMany(
      vms
        .filter((v) => v.securityMode !== "sev-es")
        .map((v) => ({ id: v.id, patch: { securityMode: "sev-es", policy: 0x5 } })),
    );
    if (failAfterUpdate) throw new Error("injected failure after the VM writes");
    await tx.audit.append(
      changed.map((id) => ({
        actor,
        action: "vm.security.enable",
        target: id,
        outcome: "ok" as const,
        details: { before: { securityMode: "none" }, after: { securityMode: "sev-es", policy: 5 } },
      })),
    );
    return changed;
  });
}

/** Registers the contract tests for `name`. Each test gets a fresh database from `backend` and disposes it. */
export function runInventoryContract(name: string, backend: ContractBackend): void {
  async function withDb<T>(
    fn: (db: ContractDatabase) => Promise<T>,
    options?: { now?: () => Date },
  ): Promise<T> {
    const db = await backend.create(options);
    try {
      return await fn(db);
    } finally {
      await db.dispose();
    }
  }

  describe(`inventory contract: ${name}`, () => {
    it("creates, reads, updates and deletes clusters, hosts and VMs", () =>
      withDb(async ({ inventory: inv }) => {
        const cl = await inv.clusters.create({ name: "prod", description: "production" });
        assert.equal((await inv.clusters.get(cl.id))?.name, "prod");
        await rejectsWith(inv.clusters.create({ name: "prod" }), "CONFLICT");
        const cl2 = await inv.clusters.update(cl.id, { description: "prod EPYC" }, 1);
        assert.equal(cl2.version, 2);
        await rejectsWith(inv.clusters.update(cl.id, { description: "stale" }, 1), "CONFLICT");
        await rejectsWith(inv.clusters.update("cl_missing", { description: "x" }), "NOT_FOUND");

        const host = await inv.hosts.create({
          name: "rome-1",
          clusterId: cl.id,
          cpuGeneration: "rome",
          sevAsids: 410,
          esAsids: 99,
        });
        assert.deepEqual(
          {
            driver: host.driver,
            sevState: host.sevState,
            esMode: host.esMode,
            maintenance: host.maintenance,
          },
          { driver: "emulated", sevState: "working", esMode: "sev-es", maintenance: "none" },
        );
        assert.equal((await inv.hosts.getByName("rome-1"))?.id, host.id);
        await rejectsWith(
          inv.hosts.create({ name: "x", cpuGeneration: "rome", sevAsids: -1, esAsids: 0 }),
          "INVALID_INPUT",
        );
        await rejectsWith(
          inv.hosts.create({
            name: "y",
            clusterId: "cl_nope",
            cpuGeneration: "milan",
            sevAsids: 1,
            esAsids: 1,
          }),
          "NOT_FOUND",
        );
        const inMaint = await inv.hosts.update(host.id, { maintenance: "in-maintenance" });
        assert.equal(inMaint.maintenance, "in-maintenance");
        assert.equal(inMaint.version, 2);

        const vm = await inv.vms.create({
          name: "db-1",
          clusterId: cl.id,
          hostId: host.id,
          spec,
          labels: { app: "db", tier: "gold" },
        });
        assert.deepEqual(
          [vm.powerState, vm.securityMode, vm.policy, vm.attestationState],
          ["off", "none", 0, "none"],
        );
        assert.deepEqual(vm.spec, spec);
        assert.deepEqual(vm.labels, { app: "db", tier: "gold" });
        await rejectsWith(inv.vms.create({ name: "db-1", spec }), "CONFLICT");
        await rejectsWith(inv.vms.create({ name: "db-2", spec, hostId: "host_nope" }), "NOT_FOUND");
        await rejectsWith(inv.vms.create({ name: "db-3", spec: { ...spec, vcpus: 0 } }), "INVALID_INPUT");
        await rejectsWith(inv.vms.update(vm.id, { policy: 2 ** 32 }), "INVALID_INPUT");

        const es = await inv.vms.update(
          vm.id,
          { securityMode: "sev-es", policy: 0xffffffff, powerState: "running", labels: { app: "db" } },
          vm.version,
        );
        assert.deepEqual(
          [es.securityMode, es.policy, es.powerState, es.version],
          ["sev-es", 0xffffffff, "running", 2],
        );
        assert.deepEqual(es.labels, { app: "db" });
        assert.equal((await inv.vms.list({ labels: { tier: "gold" } })).items.length, 0);
        await rejectsWith(inv.vms.update(vm.id, { powerState: "off" }, vm.version), "CONFLICT");

        await rejectsWith(inv.hosts.delete(host.id), "CONFLICT");
        await rejectsWith(inv.clusters.delete(cl.id), "CONFLICT");
        await inv.vms.delete(vm.id);
        assert.equal(await inv.vms.get(vm.id), undefined);
        await rejectsWith(inv.vms.delete(vm.id), "NOT_FOUND");
        await inv.hosts.delete(host.id);
        await inv.clusters.delete(cl.id);
        assert.equal((await inv.clusters.list()).items.length, 0);
      }));

    it("stores each host's VMM profile; a database from before that column opens with its hosts as qemu-legacy", () =>
      withDb(async (db) => {
        const inv = db.inventory;
        const init2 = await inv.hosts.create({
          name: "rome-init2",
          cpuGeneration: "rome",
          vmmProfile: "qemu",
          sevAsids: 410,
          esAsids: 99,
        });
        assert.equal(init2.vmmProfile, "qemu");
        assert.equal(
          (await inv.hosts.create({ name: "rome-d", cpuGeneration: "rome", sevAsids: 1, esAsids: 1 }))
            .vmmProfile,
          "qemu-legacy",
        );
        await rejectsWith(inv.hosts.update(init2.id, { vmmProfile: "ec2" as "qemu" }), "INVALID_INPUT");
        // Turn the database back into one made before migration 0002: no column, no record of it or of any later
        // migration (their tables gone too), and a host row written by that older release.
        await db.sql([
          "delete from hosts",
          // Undo 0005, then 0004 (its indexes before their columns: SQLite drops no indexed column), 0003 and 0002.
          "alter table hosts drop column snp_asids",
          ...["vms_host_id", "vms_power_state_id", "vms_guest_os_id", "vms_policy_id"].map(
            (i) => `drop index ${i}`,
          ),
          "create index vms_host on vms (host_id)",
          "alter table vms drop column guest_os",
          ...["fw_api_major", "fw_api_minor", "fw_build"].map((c) => `alter table hosts drop column ${c}`),
          "alter table hosts drop column vmm_profile",
          "drop table images",
          "delete from kysely_migration where name >= '0002_host_vmm_profile'",
          `insert into hosts (id, name, cluster_id, driver, address, cpu_generation, sev_state, es_mode, sev_asids,
             es_asids, maintenance, connection_state, created_at, updated_at, version)
           values ('host_old', 'rome-old', null, 'emulated', 'rome-old', 'rome', 'working', 'sev-es', 410, 99,
             'none', 'connected', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 1)`,
          ...["windows-server-2022", "debian-12"].map(
            (
              os,
              i,
            ) => `insert into vms (id, name, cluster_id, host_id, spec, power_state, security_mode, policy,
               attestation_state, labels, created_at, updated_at, version)
             values ('vm_old${i}', 'old-${i}', null, 'host_old', '${JSON.stringify({ ...spec, guestOs: os })}', 'off',
               'none', 0, 'none', '{}', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 1)`,
          ),
        ]);
        // A node of this release opens it: the pending migrations run, the old host reads as qemu-legacy with no
        // firmware version yet, and the old VMs' guest OS column is filled from their specs.
        const node = await db.openPeer();
        await node.migrate();
        const old = await node.hosts.get("host_old");
        assert.equal(old?.vmmProfile, "qemu-legacy");
        assert.equal(old?.name, "rome-old");
        assert.equal(old?.firmware, null);
        assert.equal(old?.snpAsids, 0, "a host from before 0005 has no SNP pool of its own");
        assert.deepEqual(
          (await node.vms.list({}, {}, "-guestOs")).items.map((v) => v.name),
          ["old-0", "old-1"],
        );
        const fw = await node.hosts.update("host_old", {
          firmware: { apiMajor: 0, apiMinor: 24, build: 15 },
        });
        assert.deepEqual(fw.firmware, { apiMajor: 0, apiMinor: 24, build: 15 });
        await rejectsWith(
          node.hosts.update("host_old", { firmware: { apiMajor: 256, apiMinor: 0, build: 0 } }),
          "INVALID_INPUT",
        );
        await node.hosts.update("host_old", { firmware: null });
        const changed = await node.hosts.update("host_old", { vmmProfile: "qemu" }, 3);
        assert.equal(changed.vmmProfile, "qemu");
        assert.equal((await inv.hosts.get("host_old"))?.vmmProfile, "qemu", "every node sees the column");
      }));

    it("filters VMs by host, mode, power state, name prefix and labels", () =>
      withDb(async ({ inventory: inv }) => {
        const h = await inv.hosts.create({
          name: "milan-1",
          cpuGeneration: "milan",
          sevAsids: 400,
          esAsids: 109,
        });
        await inv.vms.createMany([
          { name: "web-1", spec, hostId: h.id, labels: { app: "web" }, securityMode: "sev-es", policy: 5 },
          { name: "web-2", spec, hostId: h.id, labels: { app: "web", env: "prod" }, powerState: "running" },
          { name: "Web-3", spec, labels: { app: "web", env: "prod" } },
          { name: "db-1", spec, labels: { app: "db", env: "prod" }, securityMode: "sev", policy: 1 },
        ]);
        const names = async (f: Parameters<Inventory["vms"]["list"]>[0]) =>
          (await inv.vms.list(f)).items.map((v) => v.name).sort();
        assert.deepEqual(await names({ hostId: h.id }), ["web-1", "web-2"]);
        assert.deepEqual(await names({ hostId: null }), ["Web-3", "db-1"]);
        assert.deepEqual(await names({ securityMode: "sev-es" }), ["web-1"]);
        assert.deepEqual(await names({ powerState: "running" }), ["web-2"]);
        // Case-sensitive on both databases.
        assert.deepEqual(await names({ namePrefix: "web-" }), ["web-1", "web-2"]);
        assert.deepEqual(await names({ labels: { app: "web", env: "prod" } }), ["Web-3", "web-2"]);
        // lockPage reads what list reads: same filter, same VMs (its order is its own), in a transaction or not.
        const byId = (vms: readonly Vm[]) => [...vms].sort((x, y) => (x.id < y.id ? -1 : 1));
        for (const f of [{ hostId: h.id }, { namePrefix: "web-" }, { labels: { env: "prod" } }, {}]) {
          const listed = (await inv.vms.list(f)).items;
          assert.deepEqual(byId((await inv.vms.lockPage(f)).items), listed);
          assert.deepEqual(byId((await inv.transaction((tx) => tx.vms.lockPage(f))).items), listed);
        }
        assert.deepEqual(await names({ ids: [] }), []);
        assert.equal(await inv.vms.count({ labels: { env: "prod" } }), 3);
        assert.equal(await inv.vms.count(), 4);
      }));

    it("counts placed VMs per host, mode and power state, and locks hosts by id", () =>
      withDb(async ({ inventory: inv }) => {
        const a = await inv.hosts.create({
          name: "rome-a",
          cpuGeneration: "rome",
          sevAsids: 410,
          esAsids: 99,
        });
        const b = await inv.hosts.create({
          name: "rome-b",
          cpuGeneration: "rome",
          sevAsids: 410,
          esAsids: 4,
        });
        await inv.vms.createMany([
          { name: "u-1", spec },
          { name: "a-1", spec, hostId: a.id, securityMode: "sev-es", policy: 7, powerState: "running" },
          { name: "a-2", spec, hostId: a.id, securityMode: "sev-es", policy: 7, powerState: "running" },
          { name: "a-3", spec, hostId: a.id, securityMode: "sev-es", policy: 7 },
          { name: "b-1", spec, hostId: b.id, securityMode: "sev", policy: 3, powerState: "paused" },
          {
            name: "b-2",
            spec: { ...spec, devices: [{ kind: "virtio-net" }], attestation: false },
            hostId: b.id,
          },
        ]);
        const key = (u: { hostId: string; securityMode: string; powerState: string }) =>
          `${u.hostId === a.id ? "a" : "b"}/${u.securityMode}/${u.powerState}`;
        const usage = (await inv.vms.usage()).map((u) => `${key(u)}=${u.count}`).sort();
        assert.deepEqual(usage, ["a/sev-es/off=1", "a/sev-es/running=2", "b/none/off=1", "b/sev/paused=1"]);
        const onlyB = await inv.vms.usage({ hostIds: [b.id] });
        assert.equal(
          onlyB.reduce((n, u) => n + u.count, 0),
          2,
        );
        assert.deepEqual(await inv.vms.usage({ hostIds: [] }), []);
        const on = (await inv.vms.usage({ powerStates: ["running", "paused"] })).map(
          (u) => `${key(u)}=${u.count}`,
        );
        assert.deepEqual(on.sort(), ["a/sev-es/running=2", "b/sev/paused=1"]);
        assert.deepEqual(await inv.vms.usage({ hostIds: [b.id], powerStates: ["running"] }), []);
        assert.deepEqual(await inv.vms.usage({ powerStates: [] }), []);
        assert.deepEqual((await inv.vms.getByName("b-2"))?.spec.devices, [{ kind: "virtio-net" }]);
        await rejectsWith(
          inv.vms.create({
            name: "bad-dev",
            spec: { ...spec, devices: [{ kind: "floppy" as "virtio-net" }] },
          }),
          "INVALID_INPUT",
        );

        const locked = await inv.transaction((tx) => tx.hosts.lockMany([b.id, "host_missing", a.id]));
        assert.deepEqual(
          locked.map((h) => h.id),
          [a.id, b.id].sort(),
        );
        assert.deepEqual(await inv.hosts.lockMany([]), []);
      }));

    it("paginates by cursor in a stable order, unaffected by deletes behind the cursor", () =>
      withDb(async ({ inventory: inv }) => {
        const ids = await createVms(inv, 250);
        const sorted = [...ids].sort();
        const listed = await all((cursor) => inv.vms.list({}, { limit: 40, cursor }));
        assert.deepEqual(
          listed.map((v) => v.id),
          sorted,
        );

        const first = await inv.vms.list({}, { limit: 100 });
        assert.equal(first.items.length, 100);
        assert.ok(first.nextCursor);
        // Deleting rows already returned must not shift the next page (offset pagination would skip rows).
        for (const v of first.items.slice(0, 10)) await inv.vms.delete(v.id);
        const second = await inv.vms.list({}, { limit: 100, cursor: first.nextCursor });
        assert.deepEqual(
          second.items.map((v) => v.id),
          sorted.slice(100, 200),
        );
        // lockPage pages with the same cursors as list, also inside a transaction (PostgreSQL: ids, then FOR UPDATE).
        const locked = async (cursor: string | null) => {
          const p = await inv.transaction((tx) => tx.vms.lockPage({}, { limit: 40, cursor }));
          return { items: p.items.map((v) => v.id), nextCursor: p.nextCursor };
        };
        assert.deepEqual(await all(locked), sorted.slice(10));
        const firstLocked = await inv.vms.lockPage({}, { limit: 100 });
        assert.equal(firstLocked.nextCursor, (await inv.vms.list({}, { limit: 100 })).nextCursor);
        // With a name prefix too, the pages hold every matching VM once (SQLite pages those by name).
        const prefixed = async (cursor: string | null) => {
          const p = await inv.transaction((tx) =>
            tx.vms.lockPage({ namePrefix: "v" }, { limit: 30, cursor }),
          );
          return { items: p.items.map((v) => v.id), nextCursor: p.nextCursor };
        };
        const everyV = (
          await all((cursor) => inv.vms.list({ namePrefix: "v" }, { limit: 5000, cursor }))
        ).map((v) => v.id);
        assert.ok(everyV.length > 30);
        assert.deepEqual([...(await all(prefixed))].sort(), [...everyV].sort());
        await rejectsWith(inv.vms.list({}, { cursor: "not-a-cursor" }), "INVALID_INPUT");
        await rejectsWith(inv.vms.list({}, { limit: 0 }), "INVALID_INPUT");
        await rejectsWith(inv.vms.list({}, { limit: 5001 }), "INVALID_INPUT");
      }));

    it("pages by name, ascending and descending, with cursors that continue only their own order", () =>
      withDb(async ({ inventory: inv }) => {
        // Named against creation order, so name order is not id order.
        const names = Array.from({ length: 130 }, (_, i) => `n${String(129 - i).padStart(3, "0")}`);
        await inv.vms.createMany(names.map((name) => ({ name, spec, hostId: null })));
        await createVms(inv, 5, "other");
        const asc = [...names].sort();
        const byName = await all((cursor) =>
          inv.vms.list({ namePrefix: "n" }, { limit: 40, cursor }, "name"),
        );
        assert.deepEqual(
          byName.map((v) => v.name),
          asc,
        );
        const desc = await all((cursor) => inv.vms.list({ namePrefix: "n" }, { limit: 40, cursor }, "-name"));
        assert.deepEqual(
          desc.map((v) => v.name),
          [...asc].reverse(),
        );
        const stored = await inv.vms.listStored({}, { limit: 3 }, "-name");
        assert.deepEqual(
          stored.items.map((v) => v.name),
          ["other-00004", "other-00003", "other-00002"],
        );
        // A cursor from one order given to another is refused, not read as a key of the other order.
        const idPage = await inv.vms.list({}, { limit: 10 });
        await rejectsWith(
          inv.vms.list({}, { limit: 10, cursor: idPage.nextCursor }, "name"),
          "INVALID_INPUT",
        );
        const namePage = await inv.vms.list({}, { limit: 10 }, "name");
        await rejectsWith(inv.vms.list({}, { limit: 10, cursor: namePage.nextCursor }), "INVALID_INPUT");
      }));

    it("pages by every sort column both ways on (column, id): duplicates, unplaced VMs, filters, foreign cursors", () =>
      withDb(async ({ inventory: inv }) => {
        const a = await inv.hosts.create({
          name: "sort-a",
          cpuGeneration: "rome",
          sevAsids: 410,
          esAsids: 99,
        });
        const b = await inv.hosts.create({
          name: "sort-b",
          cpuGeneration: "rome",
          sevAsids: 410,
          esAsids: 99,
        });
        const powers = ["off", "running", "paused", "off"] as const;
        const modes = ["none", "sev", "sev-es"] as const;
        const policies = [0, 1, 3, 7, 0xffffffff];
        // Few distinct values per column, so every page boundary falls inside a run of equal values.
        await inv.vms.createMany(
          Array.from({ length: 150 }, (_, i) => ({
            name: `s${String(149 - i).padStart(3, "0")}`,
            spec: { ...spec, guestOs: i % 2 === 0 ? "ubuntu-22.04" : "linux-5.19" },
            hostId: [a.id, b.id, null][i % 3] ?? null,
            powerState: powers[i % 4],
            securityMode: modes[Math.floor(i / 7) % 3],
            policy: policies[i % 5],
          })),
        );
        const vms = await all((cursor) => inv.vms.list({}, { limit: 1000, cursor }));
        const sortValue: Record<VmSortKey, (v: Vm) => string | number | null> = {
          name: (v) => v.name,
          host: (v) => v.hostId,
          power: (v) => v.powerState,
          mode: (v) => v.securityMode,
          guestOs: (v) => v.spec.guestOs,
          policy: (v) => v.policy,
        };
        /** The order the API promises: by value (null after every value), then id; descending is its reverse. */
        const expected = (key: VmSortKey, desc: boolean, of: readonly Vm[] = vms) => {
          const rank = (v: Vm): [number, string | number, string] => {
            const x = sortValue[key](v);
            return x === null ? [1, "", v.id] : [0, x, v.id];
          };
          const asc = [...of].sort((p, q) => {
            const [x, y] = [rank(p), rank(q)];
            for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] ?? 0) < (y[i] ?? 0) ? -1 : 1;
            return 0;
          });
          return (desc ? asc.reverse() : asc).map((v) => v.id);
        };
        for (const key of VM_SORT_KEYS) {
          for (const desc of [false, true]) {
            const order: VmOrder = desc ? `-${key}` : key;
            const paged = await all((cursor) => inv.vms.list({}, { limit: 7, cursor }, order));
            assert.deepEqual(
              paged.map((v) => v.id),
              expected(key, desc),
              `order ${order}`,
            );
            const stored = await all((cursor) => inv.vms.listStored({}, { limit: 11, cursor }, order));
            assert.deepEqual(
              stored.map((v) => v.id),
              expected(key, desc),
              `listStored ${order}`,
            );
          }
        }
        // Unplaced VMs: last ascending, first descending, and a page that ends among them continues there.
        const byHost = await all((cursor) => inv.vms.list({}, { limit: 50, cursor }, "host"));
        assert.deepEqual(
          byHost.slice(100).map((v) => v.hostId),
          Array(50).fill(null),
        );
        const unplaced = await all((cursor) => inv.vms.list({ hostId: null }, { limit: 4, cursor }, "-host"));
        assert.deepEqual(
          unplaced.map((v) => v.id),
          expected(
            "host",
            true,
            vms.filter((v) => v.hostId === null),
          ),
        );
        // Filters narrow the sorted list; the order and the paging stay.
        const filters = [
          { hostId: a.id },
          { securityMode: "sev-es" as const },
          { powerState: "off" as const, namePrefix: "s1" },
        ];
        for (const f of filters) {
          const matching = (await all((cursor) => inv.vms.list(f, { limit: 1000, cursor }))).map((v) => v.id);
          const of = vms.filter((v) => matching.includes(v.id));
          for (const order of ["-policy", "host", "guestOs", "-power"] as const) {
            const key = (order.startsWith("-") ? order.slice(1) : order) as VmSortKey;
            const paged = await all((cursor) => inv.vms.list(f, { limit: 3, cursor }, order));
            assert.deepEqual(
              paged.map((v) => v.id),
              expected(key, order.startsWith("-"), of),
              `${JSON.stringify(f)} ${order}`,
            );
          }
        }
        // A cursor continues only its own order, direction included.
        const powerPage = await inv.vms.list({}, { limit: 5 }, "power");
        for (const other of ["-power", "mode", "id", "name"] as const) {
          const e = await rejectsWith(
            inv.vms.list({}, { limit: 5, cursor: powerPage.nextCursor }, other),
            "INVALID_INPUT",
          );
          assert.match(String((e as Error).message), /another sort order/);
        }
        const idPage = await inv.vms.list({}, { limit: 5 });
        await rejectsWith(inv.vms.list({}, { limit: 5, cursor: idPage.nextCursor }, "host"), "INVALID_INPUT");
        // A forged key of the wrong type for its column is no cursor at all.
        const forged = Buffer.from(JSON.stringify({ k: ["policy", "7", vms[0]?.id] })).toString("base64url");
        await rejectsWith(inv.vms.list({}, { cursor: forged }, "policy"), "INVALID_INPUT");
      }));

    it("bulk-updates 10,000 VMs with their audit records in batched transactions", () =>
      withDb(async ({ inventory: inv }) => {
        const ids = await createVms(inv, 10_000);
        const t0 = performance.now();
        for (let i = 0; i < ids.length; i += 1000) await enableEsBatch(inv, ids.slice(i, i + 1000));
        const ms = performance.now() - t0;
        console.log(`# ${name}: bulk update of 10,000 VMs + 10,000 audit records: ${ms.toFixed(0)} ms`);
        assert.equal(await inv.vms.count({ securityMode: "sev-es" }), 10_000);
        assert.equal((await inv.audit.head()).seq, 10_000);
        assert.ok((await verifyAuditChain(inv)).ok);
        // A loose ceiling for a shared CI machine; the printed figure is the measurement.
        assert.ok(ms < 10_000, `bulk update took ${ms} ms`);
      }));

    it("leaves nothing half-written when a batch fails mid-way", () =>
      withDb(async ({ inventory: inv }) => {
        const ids = await createVms(inv, 300);
        const batches = [ids.slice(0, 100), ids.slice(100, 200), ids.slice(200, 300)];
        await enableEsBatch(inv, batches[0] ?? []);
        await assert.rejects(enableEsBatch(inv, batches[1] ?? [], true), /injected failure/);
        // An audit record that cannot be written fails the change with it (fail closed).
        await rejectsWith(
          inv.transaction(async (tx) => {
            await tx.vms.updateMany(
              (batches[1] ?? []).map((id) => ({ id, patch: { securityMode: "sev-es" } })),
            );
            await tx.audit.append({ actor, action: "", target: "x", outcome: "ok" });
          }),
          "INVALID_INPUT",
        );
        // A database error in the middle of a multi-statement update rolls back the statements before it.
        await rejectsWith(
          inv.transaction(async (tx) => {
            await tx.vms.updateMany([
              ...(batches[1] ?? [])
                .slice(0, 50)
                .map((id) => ({ id, patch: { securityMode: "sev" as const } })),
              ...(batches[1] ?? []).slice(50).map((id) => ({ id, patch: { hostId: "host_missing" } })),
            ]);
          }),
          "NOT_FOUND",
        );
        await enableEsBatch(inv, batches[2] ?? []);

        const audited = new Set((await auditAll(inv)).map((r) => r.target));
        for (const [b, batch] of batches.entries()) {
          const vms = await inv.vms.lockMany(batch);
          for (const vm of vms) {
            const changed = vm.securityMode === "sev-es";
            // Each VM is either fully changed with exactly its audit record, or untouched without one.
            assert.equal(changed, b !== 1, `VM ${vm.name} in batch ${b}`);
            assert.equal(audited.has(vm.id), changed, `audit for ${vm.name}`);
            assert.equal(vm.version, changed ? 2 : 1);
            assert.equal(vm.hostId, null);
          }
        }
        assert.equal((await inv.audit.head()).seq, 200);
        assert.ok((await verifyAuditChain(inv)).ok);
      }));

    it("returns the same operation for the same idempotency key, and refuses a reused key", () =>
      withDb(async ({ inventory: inv, openPeer }) => {
        const req = {
          kind: "vm.bulk-update",
          actor,
          params: { selector: { app: "web" }, sevEs: true },
          total: 3,
        };
        const a = await inv.operations.create({ ...req, idempotencyKey: "key-1" });
        assert.equal(a.created, true);
        assert.equal(a.operation.status, "pending");
        const b = await inv.operations.create({ ...req, idempotencyKey: "key-1" });
        assert.equal(b.created, false);
        assert.equal(b.operation.id, a.operation.id);
        await rejectsWith(
          inv.operations.create({ ...req, params: { selector: { app: "db" } }, idempotencyKey: "key-1" }),
          "CONFLICT",
        );
        await rejectsWith(
          inv.operations.create({
            ...req,
            actor: { id: "tok_other", name: "other" },
            idempotencyKey: "key-1",
          }),
          "CONFLICT",
        );
        const c = await inv.operations.create(req);
        const d = await inv.operations.create(req);
        assert.notEqual(c.operation.id, d.operation.id, "no key, no deduplication");

        // Two nodes racing on one key end up with one operation.
        const peer = await openPeer();
        const raced = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? peer : inv).operations.create({ ...req, idempotencyKey: "key-race" }),
          ),
        );
        assert.equal(new Set(raced.map((r) => r.operation.id)).size, 1);
        assert.equal(raced.filter((r) => r.created).length, 1);
        assert.equal((await inv.operations.getByIdempotencyKey("key-race"))?.id, raced[0]?.operation.id);
      }));

    it("hands each operation to exactly one of two concurrent claimers", () =>
      withDb(async ({ inventory: inv, openPeer }) => {
        const peer = await openPeer();
        const created: string[] = [];
        for (let i = 0; i < 40; i++) {
          created.push(
            (await inv.operations.create({ kind: "vm.power-on", actor, params: { i } })).operation.id,
          );
        }
        const claimed: { id: string; worker: string }[] = [];
        const worker = async (store: Inventory, name: string) => {
          for (;;) {
            const op = await store.operations.claimNext({ worker: name, leaseMs: 60_000 });
            if (!op) return;
            assert.equal(op.status, "running");
            assert.equal(op.claimedBy, name);
            claimed.push({ id: op.id, worker: name });
            await new Promise((r) => setImmediate(r));
          }
        };
        await Promise.all([
          worker(inv, "node-a-1"),
          worker(inv, "node-a-2"),
          worker(peer, "node-b-1"),
          worker(peer, "node-b-2"),
        ]);
        assert.equal(claimed.length, 40, "every operation claimed once");
        assert.deepEqual([...new Set(claimed.map((c) => c.id))].sort(), [...created].sort());
        for (const c of claimed) {
          const op = await inv.operations.get(c.id);
          assert.equal(op?.claimedBy, c.worker);
          assert.equal(op?.attempts, 1);
        }
        assert.equal(await inv.operations.claimNext({ worker: "late", leaseMs: 1000 }), undefined);
      }));

    it("takes over an operation whose lease expired, and only the holder may finish it", () => {
      const clock = new TestClock();
      return withDb(
        async ({ inventory: inv, openPeer }) => {
          const peer = await openPeer({ now: clock.now });
          const { operation } = await inv.operations.create({
            kind: "host.enter-maintenance",
            actor,
            total: 2,
          });
          const first = await inv.operations.claimNext({ worker: "a", leaseMs: 30_000 });
          assert.equal(first?.id, operation.id);
          assert.equal(await peer.operations.claimNext({ worker: "b", leaseMs: 30_000 }), undefined);
          clock.advance(20_000);
          assert.equal(await inv.operations.renewLease(operation.id, "a", 30_000), true);
          clock.advance(20_000);
          assert.equal(await peer.operations.claimNext({ worker: "b", leaseMs: 30_000 }), undefined);
          clock.advance(11_000);
          const second = await peer.operations.claimNext({ worker: "b", leaseMs: 30_000 });
          assert.equal(second?.id, operation.id);
          assert.equal(second?.attempts, 2);
          assert.equal(second?.startedAt, first?.startedAt);
          assert.equal(await inv.operations.renewLease(operation.id, "a", 30_000), false);
          await rejectsWith(inv.operations.finish(operation.id, { worker: "a" }), "CONFLICT");
          const done = await peer.operations.finish(operation.id, { worker: "b", status: "succeeded" });
          assert.equal(done.status, "succeeded");
          assert.equal(done.leaseUntil, null);
        },
        { now: clock.now },
      );
    });

    it("records per-item results idempotently and derives the final status", () =>
      withDb(async ({ inventory: inv }) => {
        const { operation } = await inv.operations.create({ kind: "vm.bulk-update", actor, total: 3 });
        await inv.operations.claimNext({ worker: "w", leaseMs: 10_000 });
        let op = await inv.operations.recordItems(operation.id, [
          { target: "vm_a", outcome: "ok" },
          {
            target: "vm_b",
            outcome: "failed",
            code: "ASID_POOL_EXHAUSTED",
            reason: "no free SEV-ES ASID on rome-2",
          },
        ]);
        assert.deepEqual([op.done, op.okCount, op.failedCount], [2, 1, 1]);
        // A resumed job re-records vm_b: replaced, not counted twice.
        op = await inv.operations.recordItems(operation.id, [
          { target: "vm_b", outcome: "ok", details: { host: "milan-1" } },
          { target: "vm_c", outcome: "failed", code: "REQUIREMENT_FAILED", reason: "BIOS firmware" },
        ]);
        assert.deepEqual([op.done, op.okCount, op.failedCount], [3, 2, 1]);
        const items = await all((cursor) => inv.operations.items(operation.id, { limit: 2, cursor }));
        assert.deepEqual(
          items.map((i) => [i.target, i.outcome, i.code]),
          [
            ["vm_a", "ok", null],
            ["vm_b", "ok", null],
            ["vm_c", "failed", "REQUIREMENT_FAILED"],
          ],
        );
        assert.deepEqual(items[1]?.details, { host: "milan-1" });
        op = await inv.operations.recordItems(operation.id, [
          { target: "vm_e", outcome: "ok", details: { unchanged: "already sev-es" } },
          { target: "vm_f", outcome: "ok", details: { unchanged: false, before: { unchanged: true } } },
          { target: "vm_g", outcome: "ok", details: { unchanged: true } },
        ]);
        const summary = await inv.operations.itemSummary(operation.id);
        assert.deepEqual([summary.ok, summary.unchanged], [5, 2]);
        assert.deepEqual(
          summary.failures.map((i) => [i.target, i.code, i.reason]),
          [["vm_c", "REQUIREMENT_FAILED", "BIOS firmware"]],
        );
        assert.deepEqual(await inv.operations.itemSummary("op_missing"), {
          ok: 0,
          unchanged: 0,
          failures: [],
        });
        const done = await inv.operations.finish(operation.id, { worker: "w" });
        assert.equal(done.status, "partially-failed");
        assert.ok(done.finishedAt);
        await rejectsWith(inv.operations.finish(operation.id), "CONFLICT");
        await rejectsWith(
          inv.operations.recordItems(operation.id, [{ target: "vm_d", outcome: "ok" }]),
          "CONFLICT",
        );
        await rejectsWith(
          inv.operations.recordItems("op_missing", [{ target: "x", outcome: "ok" }]),
          "NOT_FOUND",
        );

        const pending = await inv.operations.create({ kind: "vm.power-off", actor });
        const cancelled = await inv.operations.cancel(pending.operation.id);
        assert.equal(cancelled.status, "cancelled");
        await rejectsWith(inv.operations.cancel(pending.operation.id), "CONFLICT");
        assert.equal(await inv.operations.claimNext({ worker: "w", leaseMs: 1000 }), undefined);
        const failed = await inv.operations.create({ kind: "vm.power-on", actor });
        await inv.operations.recordItems(failed.operation.id, [
          { target: "vm_x", outcome: "failed", code: "X" },
        ]);
        assert.equal((await inv.operations.finish(failed.operation.id)).status, "failed");
        assert.deepEqual(
          (await inv.operations.list({ status: "cancelled" })).items.map((o) => o.id),
          [pending.operation.id],
        );
      }));

    it("keeps one unforked audit chain under a mixed workload from two nodes", () =>
      withDb(async ({ inventory: inv, openPeer }) => {
        const peer = await openPeer();
        const host = await inv.hosts.create({
          name: "rome-1",
          cpuGeneration: "rome",
          sevAsids: 400,
          esAsids: 9,
        });
        const ids = await createVms(inv, 60, "vm", host.id);
        const appender = async (node: Inventory, label: string) => {
          for (let i = 0; i < 10; i++) {
            await node.transaction(async (tx) => {
              const id = ids[(i * 7 + label.length) % ids.length] ?? "";
              await tx.vms.update(id, { powerState: i % 2 ? "running" : "off" });
              await tx.audit.append([
                { actor, action: "vm.power", target: id, outcome: "ok", details: { node: label, i } },
                { actor, action: "vm.power", target: id, outcome: "ok", details: { step: "done" } },
              ]);
            });
            // A denied request is recorded on its own.
            await node.audit.append({ actor, action: "vm.security.enable", target: "*", outcome: "denied" });
          }
        };
        await Promise.all([
          appender(inv, "a"),
          appender(inv, "bb"),
          appender(peer, "ccc"),
          appender(peer, "dddd"),
        ]);
        await enableEsBatch(inv, ids.slice(0, 30));
        await peer.operations.create({ kind: "x", actor });
        const v = await verifyAuditChain(peer);
        assert.ok(v.ok, v.firstBad?.message);
        assert.equal(v.verified, 4 * 10 * 3 + 30);
        const records = await auditAll(inv);
        assert.deepEqual(
          records.map((r) => r.seq),
          records.map((_, i) => i + 1),
        );
        assert.equal(records.filter((r) => r.outcome === "denied").length, 40);
        assert.equal((await inv.audit.list({ outcome: "denied" }, { limit: 5000 })).items.length, 40);
        assert.equal((await inv.audit.head()).hash, records[records.length - 1]?.hash);
      }));

    it("rejects edits and deletes of audit records in the database itself", () =>
      withDb(async ({ inventory: inv, sql }) => {
        await inv.audit.append([
          { actor, action: "vm.create", target: "vm_1", outcome: "ok" },
          { actor, action: "vm.create", target: "vm_2", outcome: "ok" },
        ]);
        await assert.rejects(sql(["update audit set outcome = 'denied' where seq = 1"]), /append-only/);
        await assert.rejects(sql(["delete from audit where seq = 2"]), /append-only/);
        await assert.rejects(
          sql(["update audit_head set seq = 0, hash = 'x' where id = 1"]),
          /only moves forward/,
        );
        assert.ok((await verifyAuditChain(inv)).ok);
        assert.equal((await auditAll(inv)).length, 2);
      }));

    describe("detects tampering that bypasses the triggers", () => {
      async function tampered(
        statements: (records: AuditRecord[]) => string[],
      ): Promise<ReturnType<typeof verifyAuditChain>> {
        return withDb(async ({ inventory: inv, sql }) => {
          const entries: AuditEntry[] = Array.from({ length: 12 }, (_, i) => ({
            actor,
            action: i % 3 ? "vm.power" : "vm.security.enable",
            target: `vm_${i}`,
            outcome: "ok",
            details: { i },
          }));
          for (let i = 0; i < entries.length; i += 4) await inv.audit.append(entries.slice(i, i + 4));
          const records = await auditAll(inv);
          assert.ok((await verifyAuditChain(inv)).ok);
          await sql(statements(records), { bypassTriggers: true });
          return verifyAuditChain(inv, { pageSize: 5 });
        });
      }

      it("an edited record", async () => {
        const v = await tampered(() => [`update audit set outcome = 'denied' where seq = 5`]);
        assert.equal(v.ok, false);
        assert.deepEqual([v.firstBad?.seq, v.firstBad?.problem, v.verified], [5, "hash-mismatch", 4]);
      });

      it("an edited record whose hash was recomputed", async () => {
        const v = await tampered((records) => {
          const r = records[6];
          assert.ok(r);
          const forged = { ...r, details: { i: 999 } };
          return [
            `update audit set details = '{"i":999}', hash = '${auditRecordHash(forged)}' where seq = 7`,
          ];
        });
        assert.deepEqual([v.ok, v.firstBad?.seq, v.firstBad?.problem], [false, 8, "broken-link"]);
      });

      it("a deleted record", async () => {
        const v = await tampered(() => ["delete from audit where seq = 3"]);
        assert.deepEqual([v.ok, v.firstBad?.seq, v.firstBad?.problem], [false, 3, "missing"]);
      });

      it("reordered records", async () => {
        const v = await tampered(() => [
          "update audit set seq = -1 where seq = 9",
          "update audit set seq = 9 where seq = 10",
          "update audit set seq = 10 where seq = -1",
        ]);
        assert.deepEqual([v.ok, v.firstBad?.seq, v.firstBad?.problem], [false, 9, "hash-mismatch"]);
      });

      it("a truncated tail", async () => {
        const v = await tampered(() => ["delete from audit where seq > 10"]);
        assert.deepEqual(
          [v.ok, v.firstBad?.seq, v.firstBad?.problem, v.verified],
          [false, 11, "missing", 10],
        );
      });
    });

    it("stores tokens only as hashes and authenticates by hash", () =>
      withDb(async ({ inventory: inv, dumpText }) => {
        const issued = await inv.transaction(async (tx) => {
          const t = await issueToken(tx, { name: "ci", roles: ["operator", "viewer", "operator"] });
          await tx.audit.append({
            actor,
            action: "token.create",
            target: t.token.id,
            outcome: "ok",
            details: { name: "ci", roles: [...t.token.roles] },
          });
          return t;
        });
        const secret = issued.secret.reveal();
        assert.match(secret, /^cvt_[A-Za-z0-9_-]{43}$/);
        assert.deepEqual(issued.token.roles, ["operator", "viewer"]);
        assert.ok(!JSON.stringify(issued).includes(secret), "JSON of an issued token is redacted");
        assert.ok(!inspect(issued).includes(secret), "inspect of an issued token is redacted");
        assert.ok(!`${issued.secret}`.includes(secret));

        const dump = await dumpText();
        assert.ok(!dump.includes(secret), "the database never contains the token");
        assert.ok(!dump.includes(secret.slice(4)), "not even without its prefix");
        assert.ok(dump.includes(hashToken(secret)), "the dump does contain its hash");

        const found = await authenticateToken(inv, secret);
        assert.equal(found.id, issued.token.id);
        assert.ok(!JSON.stringify(found).includes(hashToken(secret)), "records do not carry the hash");
        const wrong = `cvt_${"A".repeat(43)}`;
        const err = await rejectsWith(authenticateToken(inv, wrong), "UNAUTHENTICATED");
        assert.ok(!String((err as Error).message).includes(wrong));
        await rejectsWith(authenticateToken(inv, "Bearer nonsense"), "UNAUTHENTICATED");
        await rejectsWith(issueToken(inv, { name: "x", roles: ["root"] }), "INVALID_INPUT");

        const revoked = await inv.tokens.revoke(issued.token.id);
        assert.ok(revoked.revokedAt);
        await rejectsWith(authenticateToken(inv, secret), "UNAUTHENTICATED");
        assert.equal((await inv.tokens.revoke(issued.token.id)).revokedAt, revoked.revokedAt);

        const shortLived = await issueToken(inv, {
          name: "temp",
          roles: ["viewer"],
          expiresAt: new Date(Date.now() - 1000).toISOString(),
        });
        await rejectsWith(authenticateToken(inv, shortLived.secret.reveal()), "UNAUTHENTICATED");
        assert.equal((await inv.tokens.list()).items.length, 2);
      }));

    it("keeps image records: unique names, shared blobs counted, the VMs that boot an image found, deletes", () =>
      withDb(async ({ inventory: inv }) => {
        const sha = "ab".repeat(32);
        const facts = { footer: true, sevEsResetEip: 0x80b004, secretArea: true, kernelHashesArea: false };
        const ovmf = await inv.images.create({
          name: "ovmf",
          kind: "firmware",
          sha256: sha,
          size: 1_966_080,
          firmware: facts,
          createdBy: actor.name,
        });
        assert.equal(ovmf.kind, "firmware");
        assert.deepEqual(ovmf.firmware, facts);
        assert.equal(ovmf.size, 1_966_080);
        assert.deepEqual(await inv.images.getByName("ovmf"), ovmf);
        assert.deepEqual(await inv.images.get(ovmf.id), ovmf);
        await rejectsWith(
          inv.images.create({ name: "ovmf", kind: "kernel", sha256: sha, size: 1 }),
          "CONFLICT",
        );
        await rejectsWith(
          inv.images.create({ name: "k", kind: "kernel", sha256: "AB", size: 1 }),
          "INVALID_INPUT",
        );
        await rejectsWith(
          inv.images.create({ name: "k", kind: "disk" as "kernel", sha256: sha, size: 1 }),
          "INVALID_INPUT",
        );
        await rejectsWith(
          inv.images.create({ name: "k", kind: "firmware", sha256: sha, size: 1 }),
          "INVALID_INPUT",
        );
        const copy = await inv.images.create({ name: "ovmf_copy", kind: "kernel", sha256: sha, size: 16 });
        assert.equal(copy.firmware, null);
        assert.equal(await inv.images.countBySha256(sha), 2);
        assert.equal(await inv.images.countBySha256("cd".repeat(32)), 0);
        const page = await inv.images.list({ limit: 1 });
        assert.deepEqual(
          page.items.map((i) => i.name),
          ["ovmf"],
        );
        const rest = await inv.images.list({ limit: 1, cursor: page.nextCursor });
        assert.deepEqual(
          rest.items.map((i) => i.name),
          ["ovmf_copy"],
        );
        assert.equal(rest.nextCursor, null);

        // 'ovmf' boots one VM; 'ovmf_copy' is the kernel of another; a name only inside a label is no use.
        const a = await inv.vms.create({ name: "a", spec: { ...spec, boot: { firmwareImage: "ovmf" } } });
        const b = await inv.vms.create({
          name: "b",
          spec: { ...spec, boot: { kernel: "ovmf_copy", cmdline: "console=ttyS0 ovmf" } },
        });
        await inv.vms.create({ name: "c", spec, labels: { image: "ovmf" } });
        assert.deepEqual(await inv.images.usedBy("ovmf"), [a.id]);
        assert.deepEqual(await inv.images.usedBy("ovmf_copy"), [b.id]);
        assert.deepEqual(await inv.images.usedBy("ovmfXcopy"), []);
        await inv.vms.delete(a.id);
        assert.deepEqual(await inv.images.usedBy("ovmf"), []);

        await inv.images.delete(ovmf.id);
        assert.equal(await inv.images.getByName("ovmf"), undefined);
        assert.equal(await inv.images.countBySha256(sha), 1);
        await rejectsWith(inv.images.delete(ovmf.id), "NOT_FOUND");
        // Inside a transaction that fails, nothing remains.
        await assert.rejects(
          inv.transaction(async (tx) => {
            await tx.images.create({ name: "gone", kind: "initrd", sha256: sha, size: 2 });
            throw new Error("injected");
          }),
        );
        assert.equal(await inv.images.getByName("gone"), undefined);
      }));

    it("refuses to use the inventory inside its own transaction instead of hanging", () =>
      withDb(async ({ inventory: inv }) => {
        await rejectsWith(
          inv.transaction(async () => {
            await inv.vms.count();
          }),
          "INTERNAL",
        );
        await rejectsWith(
          inv.transaction(() => inv.transaction(async () => 1)),
          "INTERNAL",
        );
        assert.equal(await inv.transaction(async (tx) => tx.vms.count()), 0);
      }));
  });
}
