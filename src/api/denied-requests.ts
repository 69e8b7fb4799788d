/**
 * Requests denied without a valid token, kept bounded (issue 13). A 401 is not attributable to anybody, so writing
 * one audit record per request let any client grow the append-only, undeletable audit log at request speed. Here:
 *  - `AuthFailureLimiter` counts failed authentications per source address in a fixed window; past `max` failures
 *    the source is answered 429 `RATE_LIMITED` with a `Retry-After` until the window ends. A request that presents
 *    a valid token is never refused by it, so a working client behind the same address (a NAT, a proxy) goes on;
 *  - `DeniedRequestAudit` folds the denials (401 and 429) of one source into one audit record per window: the count,
 *    the first and last time, the statuses, codes and routes hit. A window's record is written when the window
 *    closes, and every open window on `close()` (the server's shutdown). Requests denied *with* a valid token (403)
 *    are attributable and keep one record each (`app.ts`).
 * Both hold at most `maxSources` sources; an IPv6 source counts per /64, which one client usually holds whole.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { AuditEntry } from "../control/audit/record.ts";
import type { JsonObject } from "../control/json.ts";
import { ANONYMOUS } from "./auth.ts";

/** The default limit: 100 failed authentications per source a minute, then 429 until the minute ends. */
export const DEFAULT_AUTH_FAILURES = { max: 100, windowMs: 60_000 } as const;
/** The default aggregation window of unauthenticated denials: one audit record per source a minute. */
export const DEFAULT_DENIED_AUDIT_WINDOW_MS = 60_000;
/** At most this many sources are tracked at once (limiter and aggregation each). */
export const MAX_TRACKED_SOURCES = 10_000;
/** At most this many distinct routes are named per aggregated record (routes are patterns, so few exist). */
const MAX_ROUTES = 100;

/** The audit action of an aggregated record. */
export const DENIED_AGGREGATE_ACTION = "request.unauthenticated";

/** The source a request is counted under: its IPv4 address, or the /64 of its IPv6 address. */
export function sourceOf(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  if (isIPv4(ip) || !isIPv6(ip)) return ip;
  const [head = "", tail = ""] = ip.toLowerCase().split("%")[0]?.split("::") ?? [];
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = ip.includes("::")
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** Drops the oldest entries of `map` (insertion order) until it has room for one more. */
function makeRoom<V>(map: Map<string, V>, max: number, expired: (v: V) => boolean): void {
  if (map.size < max) return;
  for (const [k, v] of map) if (expired(v)) map.delete(k);
  for (const k of map.keys()) {
    if (map.size < max) break;
    map.delete(k);
  }
}

export interface AuthFailureLimits {
  /** Failed authentications a source may have in one window before it is answered 429. */
  readonly max: number;
  readonly windowMs: number;
}

/** Fixed-window counters of failed authentication per source, bounded in memory. */
export class AuthFailureLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, { start: number; failures: number }>();

  constructor(limits: AuthFailureLimits = DEFAULT_AUTH_FAILURES, now: () => number = Date.now) {
    this.#max = Math.max(1, limits.max);
    this.#windowMs = Math.max(1, limits.windowMs);
    this.#now = now;
  }

  /**
   * Records one failed authentication from address `ip` (counted under `sourceOf(ip)`). Returns 0 when it is
   * answered as usual (401), or the seconds until its window ends when it is over the limit (429, `Retry-After`).
   */
  fail(ip: string): number {
    const source = sourceOf(ip);
    const now = this.#now();
    let w = this.#windows.get(source);
    if (w === undefined || now >= w.start + this.#windowMs) {
      this.#windows.delete(source);
      makeRoom(this.#windows, MAX_TRACKED_SOURCES, (x) => now >= x.start + this.#windowMs);
      w = { start: now, failures: 0 };
      this.#windows.set(source, w);
    }
    if (w.failures < this.#max) {
      w.failures++;
      return 0;
    }
    return Math.max(1, Math.ceil((w.start + this.#windowMs - now) / 1000));
  }

  /** Sources tracked now (tests check the bound). */
  get size(): number {
    return this.#windows.size;
  }
}

interface Aggregate {
  readonly source: string;
  readonly first: number;
  last: number;
  count: number;
  readonly statuses: Record<string, number>;
  readonly codes: Record<string, number>;
  readonly routes: Map<string, number>;
  otherRoutes: number;
}

export interface DeniedAuditOptions {
  /** Writes the records (one call per flush, so one transaction). */
  readonly append: (entries: readonly AuditEntry[]) => Promise<unknown>;
  /** Called when a flush cannot be written (the counts are in `summary`, never a request's content). */
  readonly onError: (e: unknown, summary: JsonObject) => void;
  readonly windowMs?: number;
  readonly now?: () => number;
}

/** Folds unauthenticated denials into one audit record per source and window. */
export class DeniedRequestAudit {
  readonly #append: DeniedAuditOptions["append"];
  readonly #onError: DeniedAuditOptions["onError"];
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #open = new Map<string, Aggregate>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: DeniedAuditOptions) {
    this.#append = options.append;
    this.#onError = options.onError;
    this.#windowMs = Math.max(1, options.windowMs ?? DEFAULT_DENIED_AUDIT_WINDOW_MS);
    this.#now = options.now ?? Date.now;
  }

  /** Counts one denial of `source` on `route` (a route pattern such as `GET /v1/vms/:id`, never a URL). */
  record(source: string, route: string, status: number, code: string): void {
    const now = this.#now();
    let a = this.#open.get(source);
    if (a === undefined) {
      // Over the bound, further sources share one record: the count stays exact, the addresses do not.
      const key = this.#open.size >= MAX_TRACKED_SOURCES ? "*" : source;
      a = this.#open.get(key);
      if (a === undefined) {
        a = {
          source: key,
          first: now,
          last: now,
          count: 0,
          statuses: {},
          codes: {},
          routes: new Map(),
          otherRoutes: 0,
        };
        this.#open.set(key, a);
      }
    }
    a.last = now;
    a.count++;
    a.statuses[String(status)] = (a.statuses[String(status)] ?? 0) + 1;
    a.codes[code] = (a.codes[code] ?? 0) + 1;
    if (a.routes.has(route) || a.routes.size < MAX_ROUTES)
      a.routes.set(route, (a.routes.get(route) ?? 0) + 1);
    else a.otherRoutes++;
    this.#schedule();
  }

  /** Writes the records of windows that have closed, or of every open window with `all`. */
  flush(all = true): Promise<void> {
    const now = this.#now();
    const due: Aggregate[] = [];
    for (const [k, a] of this.#open) {
      if (all || now >= a.first + this.#windowMs) {
        due.push(a);
        this.#open.delete(k);
      }
    }
    // Flushes are written in order, so the records of one source never overtake each other.
    const write = this.#writing.then(() => (due.length === 0 ? undefined : this.#write(due)));
    this.#writing = write;
    return write;
  }

  /** Flushes everything and stops the window timer (the server is shutting down). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush(true);
  }

  async #write(due: readonly Aggregate[]): Promise<void> {
    const entries: AuditEntry[] = due.map((a) => ({
      actor: ANONYMOUS,
      action: DENIED_AGGREGATE_ACTION,
      target: a.source,
      outcome: "denied",
      details: {
        aggregated: true,
        source: a.source,
        count: a.count,
        first: new Date(a.first).toISOString(),
        last: new Date(a.last).toISOString(),
        windowMs: this.#windowMs,
        statuses: a.statuses,
        codes: a.codes,
        routes: Object.fromEntries(a.routes),
        ...(a.otherRoutes > 0 ? { otherRoutes: a.otherRoutes } : {}),
      },
    }));
    try {
      await this.#append(entries);
    } catch (e) {
      this.#onError(e, {
        records: entries.length,
        requests: due.reduce((n, a) => n + a.count, 0),
        sources: due.map((a) => a.source).slice(0, 20),
      });
    }
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    let next = Number.POSITIVE_INFINITY;
    for (const a of this.#open.values()) next = Math.min(next, a.first + this.#windowMs);
    if (next === Number.POSITIVE_INFINITY) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        void this.flush(false).finally(() => this.#schedule());
      },
      Math.max(1, next - this.#now()),
    );
    // The audit of denials must not keep a process alive that has nothing else to do; `close()` flushes.
    this.#timer.unref();
  }
}
