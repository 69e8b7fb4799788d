/**
 * What the crash-consistency suites share (crash-consistency.test.ts on SQLite, crash-consistency-pg.test.ts on
 * PostgreSQL): child `serve` nodes tracked so a failed check never leaves one running, API calls that fail with the
 * answer, a seeded random generator so a failing run's delays replay, the check of a crashed store's rows (every VM
 * wholly old or new, a change audited exactly when made, no result without its change), and a TCP proxy that can
 * take "PostgreSQL" away from one node without touching the shared server (and names that node's connections).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createServer, type Server, Socket } from "node:net";
import { hostname } from "node:os";
import { type ServeChild, startServeChild } from "../../src/cli/testing/serve-child.ts";
import { defaultPolicy } from "../../src/hypervisor/vm-spec.ts";

export const FINAL = ["succeeded", "partially-failed", "failed", "cancelled"];
export const ROLES = ["operator", "security-admin", "auditor", "attestation-reader"];
export const ES_POLICY = defaultPolicy("sev-es");

/** mulberry32: a small seeded generator, so a failing run's delays are replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every node started and not yet killed: `killAll` ends them when a failed check left them running. */
const nodes = new Set<ChildProcess>();

/** Starts `serve …args` (the built CLI through bin/) and tracks it. */
export async function startNode(args: readonly string[]): Promise<ServeChild> {
  const node = await startServeChild(args, { onSpawn: (c) => nodes.add(c) });
  return node;
}

/** A node being started, killable before it listens. */
export interface Spawned {
  readonly child: ChildProcess;
  /** Its worker name in the operations queue (`claimed_by`): serve's default, host/pid. */
  readonly worker: string;
  /** When it was spawned (Date.now()). */
  readonly spawnedAt: number;
  /** The node once it listens; rejected when it dies first (killed while starting). */
  readonly listening: Promise<ServeChild>;
  stderr(): string;
}

/** Spawns `serve …args`, tracked, without waiting for it to listen. */
export function spawnNode(args: readonly string[]): Spawned {
  let child: ChildProcess | undefined;
  let err = "";
  const listening = startServeChild(args, {
    onSpawn: (c) => {
      child = c;
      nodes.add(c);
      c.stderr?.on("data", (d: Buffer) => {
        err += String(d);
      });
    },
  });
  // A node killed while it starts never listens: that rejection is the expected end, not a failure.
  listening.catch(() => undefined);
  assert.ok(child, "serve was spawned");
  return { child, worker: workerOf(child), spawnedAt: Date.now(), listening, stderr: () => err };
}

/** serve's default worker name for a node on this machine. */
export function workerOf(child: ChildProcess): string {
  return `${hostname()}/${child.pid}`;
}

/** SIGKILL: no drain, no lease released; resolved once the process is gone. */
export async function killChild(child: ChildProcess): Promise<void> {
  nodes.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await gone;
}

/** SIGKILL: no drain, no lease released; resolved once the process is gone. */
export async function kill(node: ServeChild): Promise<void> {
  nodes.delete(node.child);
  if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL");
  await node.exit();
}

/** Stops tracking `node` (the caller stops it cleanly and checks how it exited). */
export function untrack(node: ServeChild): void {
  nodes.delete(node.child);
}

export async function killAll(): Promise<void> {
  for (const c of [...nodes]) await killChild(c);
}

/** One API call with a bearer token; asserts a 2xx answer and returns its JSON body. */
export async function call<T>(
  node: ServeChild,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const r = await fetch(`${node.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Every item of a cursor-paged collection. */
export async function allPages<T>(node: ServeChild, token: string, path: string): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  const sep = path.includes("?") ? "&" : "?";
  do {
    const q: string = `${path}${sep}limit=5000${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
    const page: { items: T[]; nextCursor: string | null } = await call(node, token, "GET", q);
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

export interface Op {
  id: string;
  status: string;
  attempts: number;
  resumeReason?: string;
  progress: { done: number; total: number; ok: number; failed: number };
}

export interface VmRow {
  id: string;
  name: string;
  hostId: string | null;
  spec: unknown;
  powerState: string;
  securityMode: string;
  policy: number;
  labels: Record<string, string>;
}

export interface Item {
  target: string;
  outcome: "ok" | "failed";
  code: string | null;
  details: Record<string, unknown> | null;
  recordedAt: string;
}

export interface AuditRow {
  seq: number;
  actor: { id: string | null; name: string };
  action: string;
  target: string;
  outcome: string;
  details: Record<string, unknown> | null;
}

export interface Pool {
  size: number;
  used: number;
}

/** Polls operation `id` until `done(op)` or it is final; fails after `waitMs` with the node's log. */
export async function waitOp(
  node: ServeChild,
  token: string,
  id: string,
  what: string,
  done: (op: Op) => boolean,
  waitMs: number,
): Promise<Op> {
  const deadline = Date.now() + waitMs;
  let op: Op | undefined;
  while (Date.now() < deadline) {
    op = await call<Op>(node, token, "GET", `/v1/operations/${id}`);
    if (FINAL.includes(op.status) || done(op)) return op;
    await sleep(20);
  }
  assert.fail(
    `${what}: not reached in ${waitMs} ms; last ${JSON.stringify(op)}; node stderr: ${node.stderr()}`,
  );
}

/** A VM row as a store holds it (read directly, not through the API). */
export interface StoredVm {
  readonly id: string;
  readonly name: string;
  readonly power_state: string;
  readonly security_mode: string;
  readonly policy: number;
}

/**
 * The rows of a store nobody has repaired yet (a node just killed, or cut off from its database), checked: the
 * done counter matches the stored results, every VM is wholly old or new, a change has exactly its one audit
 * record (`change`, of this operation), and a result matches its VM. For a power-on, result, record and power
 * state are one transaction; a later node that found the VM's emulated host restarted empty recorded it off
 * (`restoredOff`: the VMs with such a `vm.power-off` record).
 */
export function checkStoredState(
  change: string,
  done: number,
  vms: readonly StoredVm[],
  items: ReadonlyMap<string, { outcome: string }>,
  auditTargets: readonly string[],
  where: string,
  restoredOff: ReadonlySet<string> = new Set(),
): void {
  assert.equal(items.size, done, `the file's done counter and its results ${where}`);
  const audited = new Map<string, number>();
  for (const t of auditTargets) audited.set(t, (audited.get(t) ?? 0) + 1);
  for (const vm of vms) {
    const records = audited.get(vm.id) ?? 0;
    const item = items.get(vm.id);
    const at = `VM ${vm.name} in the crashed file (${vm.security_mode} 0x${vm.policy.toString(16)}, ${vm.power_state}, ${records} ${change} records, item ${item?.outcome}) ${where}`;
    assert.ok(records <= 1, at);
    if (change === "vm.security.enable") {
      const isOld = vm.security_mode === "none" && vm.policy === 0;
      const isNew = vm.security_mode === "sev-es" && vm.policy === ES_POLICY;
      assert.ok(isOld || isNew, `half-written: ${at}`);
      assert.equal(records, isNew ? 1 : 0, `change without its audit record or the reverse: ${at}`);
      if (item) assert.equal(item.outcome === "ok", isNew, `result not matching the VM: ${at}`);
    } else if (item) {
      // A power-on's result, its audit record and the VM's new power state are one transaction.
      assert.equal(item.outcome, "ok", at);
      assert.equal(vm.power_state, restoredOff.has(vm.id) ? "off" : "running", at);
      assert.equal(records, 1, at);
    } else {
      assert.equal(records, 0, at);
      assert.ok(["off", "starting"].includes(vm.power_state), at);
    }
  }
}

/** A TCP proxy in front of one server, which a test can cut off ("the database stopped") and reconnect. */
export interface CutProxy {
  /** The local port to connect to instead of the server's. */
  readonly port: number;
  /** Connections accepted since the start (forwarded or refused). */
  readonly accepted: () => number;
  /** Connections refused while cut off. */
  readonly refused: () => number;
  /** Destroys every forwarded connection and resets each new one until `restore`. */
  cut(): void;
  /** The local ports of the open connections to the server: its `pg_stat_activity.client_port`s. */
  upstreamPorts(): number[];
  /** Forwards new connections again. */
  restore(): void;
  close(): Promise<void>;
}

/**
 * Starts a proxy on 127.0.0.1 (port 0) forwarding to `host:port`. While cut, every new connection is reset at
 * once — what a client meets when the server is down (a refusal, not a hang) — and the listener stays ours, so
 * the same port forwards again afterwards.
 */
export async function startCutProxy(host: string, port: number): Promise<CutProxy> {
  const open = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let down = false;
  let accepted = 0;
  let refused = 0;
  const server: Server = createServer((client) => {
    accepted++;
    client.on("error", () => {});
    if (down) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    client.pause();
    const upstream = new Socket();
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    upstream.on("close", () => upstreams.delete(upstream));
    upstream.connect(port, host, () => {
      upstreams.add(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    const pair = [client, upstream];
    for (const s of pair) {
      open.add(s);
      s.on("close", () => {
        open.delete(s);
        for (const o of pair) o.destroy();
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === "object");
  return {
    port: addr.port,
    accepted: () => accepted,
    refused: () => refused,
    cut() {
      down = true;
      for (const s of open) s.resetAndDestroy();
    },
    upstreamPorts: () => [...upstreams].flatMap((u) => (u.localPort === undefined ? [] : [u.localPort])),
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
