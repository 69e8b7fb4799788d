/**
 * Test fixtures for the control plane: a fresh inventory (SQLite in a temp directory, or a fresh schema on the
 * test PostgreSQL), an emulated driver with hosts built on demand, and a started control-plane node. Everything
 * is removed afterwards, so test files run in parallel.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { Generation } from "../../machine/cpu-models.ts";
import {
  type ControlPlane,
  type ControlPlaneOptions,
  createControlPlane,
  type OperationKind,
} from "../control-plane.ts";
import { DriverRegistry } from "../drivers/driver.ts";
import type { EmulatedDriver } from "../drivers/emulated.ts";
import { emulatedDriver } from "../drivers/emulated-hosts.ts";
import type { Inventory } from "../inventory/inventory.ts";
import { openInventory } from "../inventory/open.ts";
import type { Actor, Operation, OperationItem, SecurityMode, Vm, VmSpec } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import { registerHost } from "../services/hosts.ts";

export const TEST_ACTOR: Actor = { id: null, name: "test" };

export const PG_URL =
  process.env.CIPHERVISOR_TEST_PG ?? "postgres://ciphervisor:ciphervisor@127.0.0.1:5432/ciphervisor_test";

export const linuxSpec: VmSpec = {
  vcpus: 1,
  memoryMiB: 32,
  guestOs: "linux-5.19",
  firmware: "efi",
  hardwareVersion: 19,
};

/** A database for one test: how to open (more) inventories on it, and how to remove it. */
export interface TestDatabase {
  readonly url: string;
  readonly schema?: string;
  open(options?: { migrate?: boolean }): Promise<Inventory>;
  dispose(): Promise<void>;
}

export function sqliteDatabase(): TestDatabase {
  const dir = mkdtempSync(join(tmpdir(), "cv-control-"));
  const url = join(dir, "inventory.db");
  return {
    url,
    open: (o) => openInventory(url, { migrate: o?.migrate ?? true }),
    async dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh schema on the test PostgreSQL, or undefined when the server is unreachable (callers skip or fail). */
export async function postgresDatabase(): Promise<TestDatabase | undefined> {
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
  } catch {
    return undefined;
  }
  const schema = `cv_ctl_${process.pid}_${randomBytes(5).toString("hex")}`;
  await admin.end();
  return {
    url: PG_URL,
    schema,
    open: (o) => openInventory(PG_URL, { schema, poolSize: 4, migrate: o?.migrate ?? true }),
    async dispose() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`drop schema if exists "${schema}" cascade`);
      await c.end();
    },
  };
}

export interface Fixture {
  readonly inventory: Inventory;
  /** The SQLite file of `withFixture`'s inventory (for tests that tamper with it directly). */
  readonly dbUrl?: string;
  readonly driver: EmulatedDriver;
  readonly cp: ControlPlane;
  /** Registers an emulated host (built on the fixture's driver). */
  host(name: string, generation: Generation, minSevAsid?: number): Promise<string>;
  /** Creates a VM directly in the inventory (powered off). */
  vm(name: string, mode?: SecurityMode, extra?: Partial<Omit<Vm, "id" | "name">>): Promise<Vm>;
  /** Submits an operation and waits for it to end. */
  run(
    kind: OperationKind,
    params: JsonObject,
    target?: string,
  ): Promise<{ op: Operation; items: OperationItem[] }>;
}

/** Builds a started node over `inventory` (and its own or a shared emulated driver). */
export function fixtureOn(
  inventory: Inventory,
  driver: EmulatedDriver = emulatedDriver(),
  options: Partial<ControlPlaneOptions> = {},
): Fixture {
  const cp = createControlPlane({
    inventory,
    drivers: new DriverRegistry([driver]),
    worker: `test-${randomBytes(3).toString("hex")}`,
    pollMs: 20,
    ...options,
  });
  cp.start();
  return {
    inventory,
    driver,
    cp,
    async host(name, generation, minSevAsid) {
      const h = await registerHost(cp.context, TEST_ACTOR, {
        name,
        emulated: { generation, ...(minSevAsid === undefined ? {} : { minSevAsid }) },
      });
      return h.id;
    },
    async vm(name, mode = "none", extra = {}) {
      return inventory.vms.create({
        name,
        spec: linuxSpec,
        securityMode: mode,
        policy: mode === "sev-snp" ? 0x30000 : mode === "sev-es" ? 0x7 : mode === "sev" ? 0x3 : 0,
        ...extra,
      });
    },
    async run(kind, params, target = "*") {
      const { operation } = await cp.submit({ kind, actor: TEST_ACTOR, params, target });
      const op = await cp.engine.waitFor(operation.id, 60_000);
      const items: OperationItem[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: OperationItem[]; nextCursor: string | null } = await inventory.operations.items(
          op.id,
          {
            limit: 5000,
            cursor,
          },
        );
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor !== null);
      return { op, items };
    },
  };
}

/** Runs `fn` with a fresh SQLite-backed node and cleans up. */
export async function withFixture<T>(
  fn: (f: Fixture) => Promise<T>,
  options: Partial<ControlPlaneOptions> = {},
): Promise<T> {
  const db = sqliteDatabase();
  const inventory = await db.open();
  const f = { ...fixtureOn(inventory, emulatedDriver(), options), dbUrl: db.url };
  try {
    return await fn(f);
  } finally {
    await f.cp.stop();
    await inventory.close();
    await db.dispose();
  }
}
