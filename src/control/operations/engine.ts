/**
 * The operations engine: a worker loop that claims operations from the shared queue (`operations.claimNext`),
 * runs at most `concurrency` of them at a time, renews their leases while they run, and finishes them. On
 * PostgreSQL several `serve` nodes run one engine each against the same queue; the claim hands each operation to
 * exactly one of them, and a node that dies leaves a lease that expires so another node takes the work over.
 *
 * A run that fails because the store went away (STORE_UNREACHABLE) is not finished as failed but handed back after
 * a backoff, to be resumed when the store answers again (`outage.ts`); every other failure is final.
 *
 * Requests wake the local loop (`kick`); work submitted on another node is found by polling. Anyone may `watch`
 * an operation: it yields a snapshot whenever the stored progress changes, locally signalled or polled.
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { CiphervisorError, isCiphervisorError } from "../../errors.ts";
import { refusesWrites } from "../inventory/health.ts";
import type { Inventory } from "../inventory/inventory.ts";
import { FINAL_OPERATION_STATUSES, type Operation } from "../inventory/types.ts";
import { localHolderAlive, type Resumption, resumption } from "./liveness.ts";
import { isStoreOutage, outageBackoffMs } from "./outage.ts";
import { type Logger, type Runner, type RunResult, silentLogger } from "./types.ts";

export interface EngineOptions {
  readonly inventory: Inventory;
  /** Runners by operation kind; the engine claims only these kinds. */
  readonly runners: Readonly<Record<string, Runner>>;
  /** This node's worker name (stored as `claimedBy`). */
  readonly worker: string;
  /** Operations run at once on this node (default 4). */
  readonly concurrency?: number;
  /** Lease length; renewed every third of it while running (default 30 s). */
  readonly leaseMs?: number;
  /** How often an idle loop looks for work submitted elsewhere, and watchers poll (default 500 ms). */
  readonly pollMs?: number;
  readonly log?: Logger;
  /** Whether another worker's process lives (default: `host/pid` names on this machine, `liveness.ts`). */
  readonly holderAlive?: (worker: string) => boolean | undefined;
}

export function isFinal(op: Operation): boolean {
  return FINAL_OPERATION_STATUSES.includes(op.status);
}

/** Resolves after `ms`, or earlier when `wake` fires or `signal` aborts. */
function nap(ms: number, wake: EventEmitter, event: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      wake.off(event, done);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    // Not unref'd: a running engine, or somebody waiting for an operation, is work that keeps the process alive.
    const timer = setTimeout(done, ms);
    wake.on(event, done);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class OperationEngine {
  readonly worker: string;
  readonly #inventory: Inventory;
  readonly #runners: Readonly<Record<string, Runner>>;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #log: Logger;
  readonly #events = new EventEmitter();
  readonly #holderAlive: (worker: string) => boolean | undefined;
  readonly #running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /** Store outages in a row, by operation, of this node's runs (the backoff doubles with each). */
  readonly #outages = new Map<string, number>();
  #loop: Promise<void> | undefined;
  #stopping = false;

  constructor(options: EngineOptions) {
    this.#inventory = options.inventory;
    this.#runners = options.runners;
    this.worker = options.worker;
    this.#concurrency = Math.max(1, options.concurrency ?? 4);
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#pollMs = options.pollMs ?? 500;
    this.#log = options.log ?? silentLogger;
    const host = hostname();
    this.#holderAlive = options.holderAlive ?? ((w) => localHolderAlive(host, w));
    // Many concurrent watchers of one operation are normal (streams, waiting requests).
    this.#events.setMaxListeners(0);
  }

  /** Kinds this engine can run. */
  get kinds(): string[] {
    return Object.keys(this.#runners);
  }

  /**
   * Whether running operation `op` waits to be taken over because its node is gone (`liveness.ts`): what the API
   * shows as `resuming`, with the takeover time.
   */
  resumption(op: Operation): Resumption | undefined {
    return resumption(op, {
      now: Date.now(),
      worker: this.worker,
      runsHere: (id) => this.#running.has(id),
      restsAfterOutage: (id) => this.#outages.has(id),
      holderAlive: this.#holderAlive,
      leaseMs: this.#leaseMs,
    });
  }

  /** Operations running on this node now. */
  get busy(): number {
    return this.#running.size;
  }

  /** Starts claiming work. */
  start(): void {
    if (this.#loop || this.#stopping) return;
    this.#loop = this.#claimLoop();
  }

  /** Wakes the claim loop now (a request just queued work). */
  kick(): void {
    this.#events.emit("kick");
  }

  /**
   * Stops claiming, then waits up to `graceMs` for running operations to finish. Whatever still runs after that
   * is aborted and its lease released, so another node (or this one after a restart) resumes it.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    this.kick();
    await this.#loop;
    const all = Promise.all([...this.#running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), graceMs);
    });
    const first = await Promise.race([all.then(() => "done" as const), timeout]);
    clearTimeout(timer);
    if (first === "timeout") {
      for (const r of this.#running.values())
        r.abort.abort(new CiphervisorError("INTERRUPTED", "the node is shutting down"));
      await all;
    }
  }

  async #claimLoop(): Promise<void> {
    const kinds = this.kinds;
    while (!this.#stopping) {
      if (this.#running.size >= this.#concurrency) {
        await nap(this.#pollMs, this.#events, "slot");
        continue;
      }
      // A damaged store (inventory/health.ts) takes no claims; the loop waits, quietly, until a check clears it.
      if (refusesWrites(this.#inventory.damage)) {
        await nap(this.#pollMs, this.#events, "kick");
        continue;
      }
      let op: Operation | undefined;
      try {
        op = await this.#inventory.operations.claimNext({
          worker: this.worker,
          leaseMs: this.#leaseMs,
          kinds,
          exclude: [...this.#running.keys()],
        });
      } catch (e) {
        this.#log.error({ err: errorSummary(e) }, "claiming an operation failed");
      }
      if (this.#stopping && op) {
        // Claimed during shutdown: hand it straight back by letting the lease lapse.
        await this.#release(op.id);
        break;
      }
      if (!op) {
        await nap(this.#pollMs, this.#events, "kick");
        continue;
      }
      this.#launch(op);
    }
  }

  #launch(op: Operation): void {
    const abort = new AbortController();
    const done = this.#run(op, abort).finally(() => {
      this.#running.delete(op.id);
      this.#events.emit("slot");
      this.#events.emit(`op:${op.id}`);
    });
    this.#running.set(op.id, { abort, done });
  }

  async #run(op: Operation, abort: AbortController): Promise<void> {
    const runner = this.#runners[op.kind];
    const renew = setInterval(
      () => {
        this.#inventory.operations.renewLease(op.id, this.worker, this.#leaseMs).then(
          (held) => {
            if (!held) abort.abort(new CiphervisorError("CONFLICT", "the operation's lease was lost"));
          },
          (e: unknown) => this.#log.warn({ op: op.id, err: errorSummary(e) }, "lease renewal failed"),
        );
      },
      Math.max(50, Math.floor(this.#leaseMs / 3)),
    );
    renew.unref?.();
    let result: RunResult | undefined;
    let failure: unknown;
    try {
      if (!runner) throw new CiphervisorError("INTERNAL", `no runner for operation kind ${op.kind}`);
      result = await runner({
        op,
        worker: this.worker,
        signal: abort.signal,
        recordedTargets: () => this.#recordedTargets(op.id),
        progress: () => this.#events.emit(`op:${op.id}`),
      });
    } catch (e) {
      failure = e;
    } finally {
      clearInterval(renew);
    }
    if (abort.signal.aborted) {
      // Shutdown or a lost lease: leave the operation to whoever resumes it; do not mark it finished.
      if (isCiphervisorError(abort.signal.reason, "INTERRUPTED")) await this.#release(op.id);
      this.#log.warn({ op: op.id, kind: op.kind }, "operation interrupted; it will be resumed");
      return;
    }
    if (failure !== undefined && isStoreOutage(failure)) {
      await this.#restAfterOutage(op.id, failure);
      return;
    }
    this.#outages.delete(op.id);
    try {
      if (failure !== undefined) {
        const err = errorSummary(failure);
        if (err.code === "INTERNAL") this.#log.error({ op: op.id, kind: op.kind, err }, "operation failed");
        await this.#inventory.operations.finish(op.id, {
          worker: this.worker,
          status: "failed",
          error: { code: err.code, message: err.message },
        });
      } else {
        await this.#inventory.operations.finish(op.id, {
          worker: this.worker,
          ...(result?.status ? { status: result.status } : {}),
          ...(result?.error ? { error: result.error } : {}),
        });
      }
    } catch (e) {
      // Another worker took the operation over (our lease lapsed); its run finishes it.
      this.#log.warn({ op: op.id, err: errorSummary(e) }, "could not finish the operation");
    }
  }

  /**
   * The store went away under the run (`outage.ts`): the operation is not failed but handed back, its lease set to
   * lapse after a backoff, so this node or another resumes it once the store answers again.
   */
  async #restAfterOutage(id: string, failure: unknown): Promise<void> {
    const n = (this.#outages.get(id) ?? 0) + 1;
    this.#outages.delete(id);
    this.#outages.set(id, n);
    // Operations that end on another node leave their count here: keep only the most recent few hundred.
    if (this.#outages.size > 256) this.#outages.delete(this.#outages.keys().next().value as string);
    const backoffMs = outageBackoffMs(n, this.#leaseMs);
    this.#log.warn(
      { op: id, err: errorSummary(failure), outages: n, backoffMs },
      "the store went away under the operation; it will be resumed",
    );
    // While the store is still away this write fails too, and the lease lapses by itself within one lease.
    await this.#release(id, backoffMs);
  }

  /** Lets the lease lapse `afterMs` from now (at once by default), for whoever claims the operation next. */
  async #release(id: string, afterMs = 1): Promise<void> {
    try {
      await this.#inventory.operations.renewLease(id, this.worker, afterMs);
    } catch (e) {
      this.#log.warn({ op: id, err: errorSummary(e) }, "could not release the operation's lease");
    }
  }

  async #recordedTargets(id: string): Promise<Set<string>> {
    const out = new Set<string>();
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<Inventory["operations"]["items"]>> =
        await this.#inventory.operations.items(id, {
          limit: 5000,
          cursor,
        });
      for (const i of page.items) out.add(i.target);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return out;
  }

  /**
   * Snapshots of operation `id` each time its stored state changes, ending with the final one. NOT_FOUND when it
   * does not exist. Stops early when `signal` aborts.
   */
  async *watch(id: string, signal?: AbortSignal): AsyncGenerator<Operation> {
    let last = "";
    while (!signal?.aborted) {
      const op = await this.#inventory.operations.get(id);
      if (!op) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
      // A holder found gone changes no row, yet watchers must see `resuming`.
      const key = `${op.status}|${op.done}|${op.total}|${op.updatedAt}|${this.resumption(op)?.reason ?? ""}`;
      if (key !== last) {
        last = key;
        yield op;
      }
      if (isFinal(op)) return;
      await nap(this.#pollMs, this.#events, `op:${id}`, signal);
    }
  }

  /** The operation once final, or its latest state when `timeoutMs` passes first. */
  async waitFor(id: string, timeoutMs: number): Promise<Operation> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    let latest: Operation | undefined;
    try {
      for await (const op of this.watch(id, abort.signal)) latest = op;
    } finally {
      clearTimeout(timer);
    }
    if (!latest) {
      latest = await this.#inventory.operations.get(id);
      if (!latest) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
    }
    return latest;
  }
}

/** A loggable, secret-free summary of an error: its code and first message line, never a stack. */
export function errorSummary(e: unknown): { code: CiphervisorError["code"]; message: string } {
  if (isCiphervisorError(e)) return { code: e.code, message: e.message };
  const message = e instanceof Error ? (e.message.split("\n")[0] ?? "") : String(e);
  return { code: "INTERNAL", message: `internal error: ${message}` };
}
