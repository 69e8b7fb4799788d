/**
 * `ciphervisor serve`: one control-plane node and its REST API. On first start it creates the data directory,
 * the SQLite inventory (or uses `--db postgres://…`, shared by several nodes) and an admin token in
 * `DIR/admin.token` (mode 0600), then prints the API URL and how to use it — never the token. `--demo` builds a
 * small emulated datacenter; `--demo-hosts N --demo-vms M` a benchmark fleet. SIGTERM (or SIGINT) drains:
 * the listener closes, running operations finish (or are handed back for another node to resume), and the
 * process exits 0.
 */
import { mkdirSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { pino } from "pino";
import { buildApi, LOG_SAFETY } from "../../api/app.ts";
import { ensureAdminToken, restoreEmulatedHosts, writeDemoTokens } from "../../control/bootstrap.ts";
import { createControlPlane } from "../../control/control-plane.ts";
import { buildDemo, buildFleet } from "../../control/demo.ts";
import { DriverRegistry } from "../../control/drivers/driver.ts";
import { emulatedDriver } from "../../control/drivers/emulated-hosts.ts";
import { LibvirtDriver, virshOnPath } from "../../control/drivers/libvirt/driver.ts";
import { fileBlobStore } from "../../control/images/blobs.ts";
import { refusesWrites } from "../../control/inventory/health.ts";
import { openInventory, parseInventoryUrl } from "../../control/inventory/open.ts";
import { CiphervisorError } from "../../errors.ts";
import { parseChoice, parseIntFlag, readInputFile } from "../args.ts";
import type { CliIo } from "../io.ts";

interface ServeFlags {
  dataDir?: string;
  db?: string;
  host: string;
  port: string;
  demo?: boolean;
  demoHosts?: string;
  demoVms?: string;
  logLevel: string;
  worker?: string;
  operationLease?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export interface ServeOptions {
  readonly dataDir: string;
  readonly db?: string;
  readonly host: string;
  readonly port: number;
  readonly demo: boolean;
  readonly fleet?: { readonly hosts: number; readonly vms: number };
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "silent";
  readonly worker?: string;
  /**
   * How long this node's claim on an operation lasts without renewal (ms). A node that dies holds its operations
   * this long before another node, or this one restarted, takes them over; short for tests, longer for slow stores.
   */
  readonly leaseMs?: number;
  /** PEM certificate chain and private key: serve HTTPS instead of HTTP. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

export interface ServeControl {
  /** Stops the server when aborted (tests); the CLI wires SIGTERM and SIGINT. */
  readonly signal: AbortSignal;
  /** Called once the API listens, with its base URL. */
  readonly onListening?: (url: string) => void;
}

/** The default data directory: `$CIPHERVISOR_DATA_DIR`, else `~/.ciphervisor`. */
export function defaultDataDir(): string {
  return process.env.CIPHERVISOR_DATA_DIR ?? join(homedir(), ".ciphervisor");
}

/** Validates the flags into options; USAGE for contradictions. */
export function parseServeFlags(flags: ServeFlags): ServeOptions {
  const port = parseIntFlag(flags.port, "--port", 0, 65535);
  if (flags.demo && (flags.demoHosts !== undefined || flags.demoVms !== undefined)) {
    throw new CiphervisorError(
      "USAGE",
      "--demo and --demo-hosts/--demo-vms are alternatives; give one of them",
    );
  }
  if (flags.demoVms !== undefined && flags.demoHosts === undefined) {
    throw new CiphervisorError("USAGE", "--demo-vms needs --demo-hosts");
  }
  const fleet =
    flags.demoHosts === undefined
      ? undefined
      : {
          hosts: parseIntFlag(flags.demoHosts, "--demo-hosts", 1, 10_000),
          vms: flags.demoVms === undefined ? 0 : parseIntFlag(flags.demoVms, "--demo-vms", 0, 1_000_000),
        };
  if (flags.db !== undefined) parseInventoryUrl(flags.db);
  const tls = tlsFiles(flags);
  return {
    dataDir: resolve(flags.dataDir ?? defaultDataDir()),
    ...(flags.db === undefined ? {} : { db: flags.db }),
    host: flags.host,
    port,
    demo: flags.demo === true,
    ...(fleet === undefined ? {} : { fleet }),
    logLevel: parseChoice(flags.logLevel, "--log-level", [
      "fatal",
      "error",
      "warn",
      "info",
      "debug",
      "silent",
    ] as const),
    ...(flags.worker === undefined ? {} : { worker: flags.worker }),
    leaseMs: parseIntFlag(flags.operationLease ?? "30", "--operation-lease", 1, 3600) * 1000,
    ...(tls === undefined ? {} : { tls }),
  };
}

/** `--tls-cert` and `--tls-key`, both or neither, read now so a bad path fails before anything starts. */
function tlsFiles(flags: ServeFlags): ServeOptions["tls"] {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new CiphervisorError("USAGE", "give --tls-cert and --tls-key together");
  }
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) return undefined;
  const pem = (path: string, flag: string, label: RegExp) => {
    const bytes = readInputFile(path, flag);
    if (!label.test(Buffer.from(bytes).toString("latin1"))) {
      throw new CiphervisorError("INVALID_INPUT", `${flag} ${path} is not a PEM file of that kind`);
    }
    return Buffer.from(bytes);
  };
  return {
    cert: pem(flags.tlsCert, "--tls-cert", /-----BEGIN CERTIFICATE-----/),
    key: pem(flags.tlsKey, "--tls-key", /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/),
  };
}

/** True for an address only this machine can reach (tokens on plain HTTP are then no one else's to read). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** A database URL fit to print: a PostgreSQL password is masked. */
function shownDb(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
}

/**
 * Runs a node until `control.signal` aborts. Resolves after a clean shutdown.
 *
 * @example
 * ```ts
 * const stop = new AbortController();
 * const done = runServe({ dataDir, host: "127.0.0.1", port: 0, demo: true, logLevel: "silent" }, io, {
 *   signal: stop.signal, onListening: (url) => console.log(url) });
 * stop.abort(); await done;
 * ```
 */
export async function runServe(options: ServeOptions, io: CliIo, control: ServeControl): Promise<void> {
  try {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CiphervisorError(
      "IO",
      `cannot create the data directory ${options.dataDir}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const dbUrl = options.db ?? join(options.dataDir, "inventory.db");
  const log = pino({ level: options.logLevel, ...LOG_SAFETY }, pino.destination({ dest: 2, sync: false }));
  const inventory = await openInventory(dbUrl);
  let stopping = false;
  // libvirt hosts only where virsh exists; without it `host add --driver libvirt` says there is no such driver.
  const libvirt = virshOnPath() ? new LibvirtDriver() : undefined;
  const drivers = new DriverRegistry([emulatedDriver(), ...(libvirt ? [libvirt] : [])]);
  const cp = createControlPlane({
    inventory,
    drivers,
    worker: options.worker ?? `${hostname()}/${process.pid}`,
    log,
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    // The image catalog's bytes, content-addressed, beside the inventory file.
    blobs: fileBlobStore(join(options.dataDir, "images")),
  });
  // A damaged store still serves reads and /readyz; nothing that writes at start runs (restoring hosts, a new admin
  // token, the demo), the engine claims nothing while the damage lasts, the API refuses writes (api/app.ts). Said
  // once, here; a repaired store is found by the next /readyz (restart to bring emulated hosts back).
  const damage = refusesWrites(inventory.damage) ? inventory.damage : undefined;
  if (damage) {
    log.error(
      { code: damage.code, damage: damage.kind, findings: damage.findings, db: shownDb(dbUrl) },
      `inventory damaged, serving reads only: ${damage.message}`,
    );
  }
  try {
    const restored = damage ? 0 : await restoreEmulatedHosts(inventory, drivers);
    cp.start();
    const admin = damage
      ? { path: join(options.dataDir, "admin.token"), state: "existing" as const }
      : await ensureAdminToken(inventory, options.dataDir);
    let demoNote = damage ? `  DAMAGED: ${damage.message} (${damage.code}); reads only\n` : "";
    if (damage) {
      // Nothing to build on a store that takes no writes.
    } else if (options.demo) {
      const built = await buildDemo(cp);
      const tokens = await writeDemoTokens(inventory, options.dataDir);
      demoNote =
        built.hosts > 0
          ? `  demo:    built ${built.hosts} emulated hosts and ${built.vms} VMs; role tokens in ${tokens}/\n`
          : `  demo:    role tokens in ${tokens}/\n`;
    } else if (options.fleet) {
      const t0 = performance.now();
      const built = await buildFleet(cp, options.fleet.hosts, options.fleet.vms);
      demoNote = `  fleet:   ${options.fleet.hosts} emulated hosts, ${built.vms} new VMs in ${(performance.now() - t0).toFixed(0)} ms\n`;
    }
    const app = await buildApi({
      cp,
      loggerInstance: log,
      isReady: () => !stopping,
      ...(options.tls === undefined ? {} : { https: options.tls }),
    });
    try {
      await app.listen({ host: options.host, port: options.port });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
        await app.close();
        const why =
          code === "EADDRINUSE"
            ? "is already in use"
            : code === "EACCES"
              ? "needs privileges"
              : "is not an address of this machine";
        throw new CiphervisorError(
          "IO",
          `cannot listen on ${options.host}:${options.port}: the address ${why} (choose another --port or --host)`,
          { cause: e },
        );
      }
      throw e;
    }
    const addr = app.server.address();
    const port = typeof addr === "object" && addr !== null ? addr.port : options.port;
    const hostPart = options.host.includes(":") ? `[${options.host}]` : options.host;
    const url = `${options.tls ? "https" : "http"}://${hostPart}:${port}`;
    const plainNote =
      options.tls === undefined && !isLoopback(options.host)
        ? `  WARNING: listening on ${options.host} over plain HTTP: API tokens cross the network readable by anyone on the path; give --tls-cert and --tls-key\n`
        : "";
    const tokenLine =
      admin.state === "elsewhere"
        ? `  token:   this database already has tokens (issued by another node); use that node's admin.token\n`
        : `  token:   ${admin.path} (mode 0600, ${admin.state === "created" ? "created now" : "existing"}; the file is the only copy)\n`;
    if (plainNote !== "") io.err(plainNote);
    io.out(
      `ciphervisor control plane listening on ${url}\n` +
        `  API:     ${url}/v1   OpenAPI: ${url}/docs\n` +
        `  data:    ${options.dataDir}   inventory: ${shownDb(dbUrl)}\n` +
        tokenLine +
        demoNote +
        (restored > 0
          ? `  note:    ${restored} VMs were on emulated hosts that restarted with this process; they are now powered off\n`
          : "") +
        `  CLI:     export CIPHERVISOR_SERVER=${url} CIPHERVISOR_TOKEN_FILE=${admin.path}\n` +
        `  curl:    curl -H "Authorization: Bearer $(cat ${admin.path})" ${url}/v1/hosts\n`,
    );
    control.onListening?.(url);
    await new Promise<void>((done) => {
      if (control.signal.aborted) done();
      else control.signal.addEventListener("abort", () => done(), { once: true });
    });
    stopping = true;
    io.out("ciphervisor: shutting down (draining operations)\n");
    await app.close();
    await cp.stop();
  } finally {
    await cp.stop().catch(() => undefined);
    // End the virsh sessions of libvirt hosts rather than leaving them to die with the process.
    await libvirt?.close().catch(() => undefined);
    await inventory.close();
    log.flush();
  }
  io.out("ciphervisor: stopped\n");
}

export function registerServe(program: Command, io: CliIo): void {
  program
    .command("serve")
    .description("run a control-plane node and its REST API (/v1, OpenAPI at /docs)")
    .option("--data-dir <dir>", "data directory (default $CIPHERVISOR_DATA_DIR or ~/.ciphervisor)")
    .option(
      "--db <url>",
      "inventory database: a file path (default DIR/inventory.db) or postgres://… for several nodes (?schema=NAME: the tables in schema NAME, created if missing, so several inventories or test runs share one database)",
    )
    .option("--host <addr>", "listen address", "127.0.0.1")
    .option("--port <n>", "listen port (0 picks a free one)", "8080")
    .option("--demo", "build a small emulated datacenter (Naples, two Rome, Milan; mixed VMs)")
    .option("--demo-hosts <n>", "build a benchmark fleet of N emulated Rome/Milan hosts")
    .option("--demo-vms <m>", "… with M powered-off Linux VMs")
    .option(
      "--log-level <level>",
      "fatal|error|warn|info|debug|silent (logs go to stderr; each request at debug, failed ones at warn/error)",
      "info",
    )
    .option("--worker <name>", "this node's worker name in the operations queue (default host/pid)")
    .option(
      "--operation-lease <seconds>",
      "how long a claimed operation stays this node's without renewal (1..3600); a dead node's work is taken over after it",
      "30",
    )
    .option("--tls-cert <file>", "serve HTTPS with this PEM certificate (chain); needs --tls-key")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .action(async (flags: ServeFlags) => {
      const options = parseServeFlags(flags);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
      try {
        await runServe(options, io, { signal: stop.signal });
      } finally {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
    });
}
