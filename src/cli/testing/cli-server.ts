/**
 * A real API server for CLI tests: a fresh control plane (SQLite in a temp directory, emulated hosts), its REST API
 * listening on 127.0.0.1 port 0, a token per role, and `cli()` to run the CLI in-process against it with its own
 * environment (no `process.env`, no shared config file), so test files run in parallel.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ApiApp, buildApi } from "../../api/app.ts";
import type { AuditRecord } from "../../control/audit/record.ts";
import { buildDemo } from "../../control/demo.ts";
import type { DriverHost } from "../../control/drivers/driver.ts";
import { emulatedDriver } from "../../control/drivers/emulated-hosts.ts";
import type { Vm } from "../../control/inventory/types.ts";
import { ROLES, type Role } from "../../control/rbac.ts";
import { createToken } from "../../control/services/tokens.ts";
import { type Fixture, fixtureOn, sqliteDatabase } from "../../control/testing/control-fixture.ts";
import { type Env, type MemoryIo, memoryIo } from "../io.ts";
import { main } from "../main.ts";

export type As = Role | "all" | "ops" | null;

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export interface CliServer extends Fixture {
  readonly app: ApiApp;
  readonly url: string;
  /** A private directory (config files, token files). */
  readonly home: string;
  /** Token secrets: one per role; `ops` = operator + security-admin; `all` adds security-officer, admin, auditor. */
  readonly tokens: Readonly<Record<Exclude<As, null>, string>>;
  /** The environment a CLI run as `as` gets (server and token, and a private HOME). */
  env(as: As, extra?: Env): Env;
  /** Runs the CLI in-process. */
  cli(as: As, ...argv: string[]): Promise<CliResult>;
  /** Runs the CLI with a prepared io (stdin, interrupts, a terminal for progress). */
  cliWith(io: MemoryIo, ...argv: string[]): Promise<CliResult>;
  /** Every VM, by name. */
  vms(): Promise<Map<string, Vm>>;
  /**
   * The inventory (VMs, hosts, operations) and the audit log without its dry-run records, as JSON text: equal
   * before and after means nothing changed. A dry run writes exactly one audit record: count them with `dryRuns`.
   */
  snapshot(): Promise<string>;
  /** Audit records marked as dry runs. */
  dryRuns(): Promise<number>;
}

async function allVms(f: Fixture): Promise<Vm[]> {
  const out: Vm[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Vm[]; nextCursor: string | null } = await f.inventory.vms.list(
      {},
      { limit: 5000, cursor },
    );
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

async function allAudit(f: Fixture): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: AuditRecord[]; nextCursor: string | null } = await f.inventory.audit.list(
      {},
      { limit: 5000, cursor },
    );
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

export interface CliServerOptions {
  /** Build the small demo datacenter (4 hosts, 9 VMs, some running). */
  readonly demo?: boolean;
  /** VMs per bulk-update transaction (default: the control plane's). */
  readonly batchSize?: number;
}

/** Starts a fresh listening server; `close()` removes everything. */
export async function startCliServer(
  options: CliServerOptions = {},
): Promise<CliServer & { close(): Promise<void> }> {
  const db = sqliteDatabase();
  const inventory = await db.open();
  const f: Fixture = {
    ...fixtureOn(
      inventory,
      emulatedDriver(),
      options.batchSize === undefined ? {} : { batchSize: options.batchSize },
    ),
    dbUrl: db.url,
  };
  const home = mkdtempSync(join(tmpdir(), "cv-cli-home-"));
  const app = await buildApi({ cp: f.cp });
  const close = async () => {
    await app.close();
    await f.cp.stop();
    await inventory.close();
    await db.dispose();
    rmSync(home, { recursive: true, force: true });
  };
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const addr = app.server.address();
    const port = typeof addr === "object" && addr !== null ? addr.port : 0;
    const url = `http://127.0.0.1:${port}`;
    const actor = { id: null, name: "test-setup" };
    const tokens: Record<string, string> = {};
    for (const role of ROLES) {
      tokens[role] = (await createToken(f.inventory, actor, { name: role, roles: [role] })).secret.reveal();
    }
    tokens.ops = (
      await createToken(f.inventory, actor, { name: "ops", roles: ["operator", "security-admin"] })
    ).secret.reveal();
    tokens.all = (
      await createToken(f.inventory, actor, {
        name: "all",
        roles: ["operator", "security-admin", "security-officer", "admin", "auditor"],
      })
    ).secret.reveal();
    if (options.demo) await buildDemo(f.cp);
    const env = (as: As, extra: Env = {}): Env => ({
      HOME: home,
      CIPHERVISOR_DATA_DIR: join(home, "no-serve"),
      CIPHERVISOR_SERVER: url,
      ...(as === null ? {} : { CIPHERVISOR_TOKEN: tokens[as] }),
      ...extra,
    });
    const cliWith = async (io: MemoryIo, ...argv: string[]): Promise<CliResult> => {
      const code = await main(argv, io);
      return { code, out: io.stdout, err: io.stderr };
    };
    return {
      ...f,
      app,
      url,
      home,
      tokens: tokens as Record<Exclude<As, null>, string>,
      env,
      cliWith,
      cli: (as, ...argv) => cliWith(memoryIo({ env: env(as) }), ...argv),
      vms: async () => new Map((await allVms(f)).map((v) => [v.name, v])),
      snapshot: async () =>
        JSON.stringify({
          vms: await allVms(f),
          hosts: (await f.inventory.hosts.list({}, { limit: 5000 })).items,
          operations: (await f.inventory.operations.list({}, { limit: 5000 })).items,
          audit: (await allAudit(f)).filter((r) => r.details.dryRun !== true),
        }),
      dryRuns: async () => (await allAudit(f)).filter((r) => r.details.dryRun === true).length,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Runs `fn` against a fresh listening server and cleans up. */
export async function withCliServer<T>(
  fn: (s: CliServer) => Promise<T>,
  options: CliServerOptions = {},
): Promise<T> {
  const s = await startCliServer(options);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** A gate the emulated hosts' VM starts wait at: tests hold starts in flight, then let them finish. */
export interface StartGate {
  /** Starts waiting at the gate now. */
  readonly waiting: number;
  /** Resolves once `n` starts wait at the gate. */
  until(n: number): Promise<void>;
  /** Lets every waiting (and later) start through. */
  open(): void;
}

/**
 * Makes the first `free` VM starts on `s`'s emulated hosts go through and holds the rest at a gate. Lets a test
 * interrupt a command with work provably in flight, without timing.
 */
export function gateStarts(s: CliServer, free: number): StartGate {
  let passed = 0;
  let opened = false;
  const waiters: (() => void)[] = [];
  const watchers: { n: number; resolve: () => void }[] = [];
  const notify = () => {
    for (const w of [...watchers]) {
      if (waiters.length >= w.n) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const connect = s.driver.connect.bind(s.driver);
  s.driver.connect = async (address: string): Promise<DriverHost> => {
    const host = await connect(address);
    return new Proxy(host, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (prop !== "start" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
        return async (name: string) => {
          if (!opened && passed >= free) {
            await new Promise<void>((resolve) => {
              waiters.push(resolve);
              notify();
            });
          }
          passed++;
          return (v as DriverHost["start"]).call(target, name);
        };
      },
    });
  };
  return {
    get waiting() {
      return waiters.length;
    },
    until(n) {
      return new Promise<void>((resolve) => {
        watchers.push({ n, resolve });
        notify();
      });
    },
    open() {
      opened = true;
      for (const w of waiters.splice(0)) w();
    },
  };
}

/** The one-line error shape: `ciphervisor: … [CODE]` and nothing else, no stack. */
export function oneLineError(err: string, code: string): boolean {
  return new RegExp(`^ciphervisor: [^\\n]+ \\[${code}\\]\\n$`).test(err) && !/\bat .*\.ts:\d+/.test(err);
}
