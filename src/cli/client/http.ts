/**
 * The CLI's HTTP client: node:http (`transport.ts`) with a timeout on every request, Bearer authentication, JSON in and out, and
 * every failure turned into one RemoteError — the server's problem+json code and detail as they were sent, or a
 * single clear line when no answer came (UNREACHABLE, TIMEOUT). The token is only ever put in the Authorization
 * header; no message built here contains it.
 *
 * @example
 * ```ts
 * const api = new ApiClient({ server: "http://127.0.0.1:7480", token });
 * const vm = await api.get<Vm>(`/v1/vms/${id}`);
 * ```
 */
import type { IncomingHttpHeaders } from "node:http";
import { RemoteError } from "./remote-error.ts";
import { type Answer, send } from "./transport.ts";

export type QueryValue = string | number | boolean | undefined | null;

export interface ApiClientOptions {
  /** The server's base URL (`http://host:port`), without a trailing slash. */
  readonly server: string;
  readonly token?: string | undefined;
  /** Where the token came from (a flag, a variable, a context, a file): named in authentication errors. */
  readonly tokenSource?: string | undefined;
  /** Per-request timeout (default 30 s). */
  readonly timeoutMs?: number;
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, QueryValue>>;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** Aborts the request (the user pressed Ctrl-C twice). */
  readonly signal?: AbortSignal;
}

export interface ApiResponse<T> {
  readonly status: number;
  readonly body: T;
  readonly headers: IncomingHttpHeaders;
}

/** Network error codes that mean "nobody answered at that address". */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNRESET",
  "EPIPE",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "no such host",
  EAI_AGAIN: "name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed",
  UND_ERR_SOCKET: "connection closed",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out",
};

function networkCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let depth = 0; depth < 4 && cur instanceof Error; depth++) {
    const code = (cur as NodeJS.ErrnoException).code;
    if (typeof code === "string" && UNREACHABLE.has(code)) return code;
    cur = (cur as Error & { cause?: unknown }).cause;
  }
  return undefined;
}

/** A path plus query string; undefined and null values are left out. */
export function withQuery(path: string, query: Readonly<Record<string, QueryValue>> | undefined): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s === "" ? path : `${path}?${s}`;
}

export class ApiClient {
  readonly server: string;
  readonly #token: string | undefined;
  readonly #tokenSource: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.server = options.server.replace(/\/+$/, "");
    this.#token = options.token;
    this.#tokenSource = options.tokenSource;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** True when a token will be sent. */
  get authenticated(): boolean {
    return this.#token !== undefined;
  }

  get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("GET", path, options).then((r) => r.body);
  }

  post<T>(path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", path, { ...options, body }).then((r) => r.body);
  }

  patch<T>(path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("PATCH", path, { ...options, body }).then((r) => r.body);
  }

  delete<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("DELETE", path, options).then((r) => r.body);
  }

  /** One request; RemoteError for any non-2xx answer or when no answer comes. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const url = `${this.server}${withQuery(path, options.query)}`;
    const headers: Record<string, string> = { accept: "application/json", ...options.headers };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    let body: string | Uint8Array | undefined;
    if (options.body instanceof Uint8Array) {
      // A binary upload (an image): the bytes as they are.
      headers["content-type"] = "application/octet-stream";
      body = options.body;
    } else if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let res: Answer;
    let text: string;
    try {
      res = await send({ method, url, headers, ...(body === undefined ? {} : { body }), signal });
      text = await res.text();
    } catch (e) {
      throw this.#noAnswer(e, method, path, timeoutMs, timeout, options.signal);
    }
    if (res.status >= 200 && res.status < 300) {
      if (text === "") return { status: res.status, body: undefined as T, headers: res.headers };
      try {
        return { status: res.status, body: JSON.parse(text) as T, headers: res.headers };
      } catch (e) {
        throw new RemoteError(
          "BAD_RESPONSE",
          res.status,
          `${method} ${path}: the server's answer is not JSON`,
          {
            cause: e,
            base: "INTERNAL",
          },
        );
      }
    }
    throw this.#problem(res.status, text, method, path);
  }

  /**
   * A binary GET (certificates): the body's bytes. `path` is a path on this server, or the absolute http(s) URL of
   * another service (AMD's KDS), which is sent no token. RemoteError for a non-2xx answer or none.
   */
  async getBytes(
    path: string,
    options: Pick<RequestOptions, "timeoutMs" | "signal"> = {},
  ): Promise<Uint8Array> {
    const absolute = /^https?:\/\//i.test(path);
    const headers: Record<string, string> = { accept: "application/octet-stream, application/problem+json" };
    if (!absolute && this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let res: Answer;
    let body: Uint8Array;
    try {
      res = await send({ method: "GET", url: absolute ? path : `${this.server}${path}`, headers, signal });
      body = new Uint8Array(await res.bytes());
    } catch (e) {
      const err = this.#noAnswer(e, "GET", path, timeoutMs, timeout, options.signal);
      if (!absolute || err.shownCode === "INTERRUPTED") throw err;
      // Not the ciphervisor server: say which service did not answer.
      throw new RemoteError(err.shownCode, 0, `GET ${path}: no answer (${err.shownCode.toLowerCase()})`, {
        cause: e,
        base: "IO",
      });
    }
    if (res.status >= 200 && res.status < 300) return body;
    throw this.#problem(res.status, new TextDecoder().decode(body), "GET", path);
  }

  /**
   * Opens a streaming GET (server-sent events). The timeout covers the wait for the response headers only; the
   * stream then lasts until the server ends it or `signal` aborts.
   */
  async open(path: string, signal?: AbortSignal): Promise<Answer> {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    const abort = new AbortController();
    const timedOut = new AbortController();
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => {
      timedOut.abort();
      abort.abort();
    }, this.#timeoutMs);
    let res: Answer;
    try {
      res = await send({ method: "GET", url: `${this.server}${path}`, headers, signal: abort.signal });
    } catch (e) {
      throw this.#noAnswer(e, "GET", path, this.#timeoutMs, timedOut.signal, signal);
    } finally {
      clearTimeout(timer);
    }
    if (res.status < 200 || res.status >= 300) throw this.#problem(res.status, await res.text(), "GET", path);
    return res;
  }

  /** The error for a request that got no (complete) answer: interrupted by the user, timed out, or unreachable. */
  #noAnswer(
    e: unknown,
    method: string,
    path: string,
    timeoutMs: number,
    timeout: AbortSignal,
    user?: AbortSignal,
  ): RemoteError {
    if (user?.aborted) {
      return new RemoteError("INTERRUPTED", 0, "interrupted", { cause: e, base: "INTERRUPTED" });
    }
    if (timeout.aborted) {
      return new RemoteError(
        "TIMEOUT",
        0,
        `${method} ${path}: the server at ${this.server} did not answer within ${timeoutMs / 1000} s`,
        { cause: e, base: "IO" },
      );
    }
    const code = networkCode(e);
    const why = code === undefined ? "no answer" : (REASONS[code] ?? code);
    return new RemoteError(
      "UNREACHABLE",
      0,
      `cannot reach the ciphervisor server at ${this.server} (${why}); start one with 'ciphervisor serve' or point --server / CIPHERVISOR_SERVER at it`,
      { cause: e, base: "IO" },
    );
  }

  #problem(status: number, text: string, method: string, path: string): RemoteError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const p = (parsed ?? {}) as { code?: unknown; detail?: unknown; title?: unknown };
    const code = typeof p.code === "string" && /^[A-Z][A-Z0-9_]*$/.test(p.code) ? p.code : undefined;
    let detail =
      typeof p.detail === "string" && p.detail !== ""
        ? p.detail
        : typeof p.title === "string"
          ? `${method} ${path}: ${p.title}`
          : `${method} ${path}: the server answered HTTP ${status}`;
    detail = detail.split("\n")[0] ?? detail;
    if (status === 401) detail = this.#authHint(detail);
    const details =
      parsed !== null && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
    return new RemoteError(code ?? (status === 404 ? "NOT_FOUND" : `HTTP_${status}`), status, detail, {
      ...(details === undefined ? {} : { details }),
    });
  }

  #authHint(detail: string): string {
    if (this.#token === undefined) {
      return `${detail}: no API token was given; pass --token, set CIPHERVISOR_TOKEN, or use a context that has one ('ciphervisor config set-context')`;
    }
    return this.#tokenSource === undefined ? detail : `${detail} (token from ${this.#tokenSource})`;
  }
}
