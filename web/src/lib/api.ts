/**
 * The dashboard's one way to the API: same origin, the token only in `Authorization: Bearer` (never in a URL, never
 * in a log), JSON in and out, and every failure turned into the API's own problem (RFC 9457) so pages can show its
 * title and code. A 401 tells the app to sign out (`onUnauthenticated`).
 */
import type { Problem } from "./types.ts";

/** A failed request, carrying the API's problem (or one made from the HTTP status when the body is not one). */
export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.title} (${problem.code}): ${problem.detail}`);
  }
}

/** How a problem reads in one line: "Conflict (LIVE_MIGRATION_UNSUPPORTED): …". */
export function problemText(p: Problem): string {
  return `${p.title} (${p.code})${p.detail ? `: ${p.detail}` : ""}`;
}

/** Any thrown value as a problem (network failures become a problem with code NETWORK). */
export function asProblem(e: unknown): Problem {
  if (e instanceof ApiError) return e.problem;
  const detail = e instanceof Error ? e.message : String(e);
  return { title: "The server could not be reached", status: 0, code: "NETWORK", detail };
}

function isProblem(v: unknown): v is Problem {
  return typeof v === "object" && v !== null && typeof (v as Problem).code === "string";
}

/** Builds the problem of a non-2xx answer from its body (JSON problem or not). */
export async function problemOf(res: Response): Promise<Problem> {
  const text = await res.text();
  try {
    const body: unknown = JSON.parse(text);
    if (isProblem(body)) {
      return { ...body, title: body.title || res.statusText, status: body.status || res.status };
    }
  } catch {
    // not JSON: fall through
  }
  return {
    title: res.statusText || `HTTP ${res.status}`,
    status: res.status,
    code: `HTTP_${res.status}`,
    detail: "",
  };
}

export interface ApiOptions {
  readonly method?: "GET" | "POST" | "PUT" | "DELETE";
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

export interface ApiClient {
  /** The JSON answer of `path` (e.g. `/v1/vms?limit=50`), or throws an ApiError. */
  json<T>(path: string, options?: ApiOptions): Promise<T>;
  /** The raw response of an authenticated request (for streams). */
  raw(path: string, options?: ApiOptions): Promise<Response>;
}

/** The request headers of an authenticated call: the token in Authorization, nowhere else. */
export function authHeaders(
  token: string,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  return { accept: "application/json", ...extra, authorization: `Bearer ${token}` };
}

export function apiClient(
  token: string,
  onUnauthenticated: (p: Problem) => void = () => {},
  fetchImpl: typeof fetch = (...a) => fetch(...a),
): ApiClient {
  const raw = async (path: string, o: ApiOptions = {}): Promise<Response> => {
    const headers = authHeaders(token, {
      ...(o.body === undefined ? {} : { "content-type": "application/json" }),
      ...o.headers,
    });
    const res = await fetchImpl(path, {
      method: o.method ?? "GET",
      headers,
      ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
      ...(o.signal ? { signal: o.signal } : {}),
      credentials: "omit",
      cache: "no-store",
    });
    if (!res.ok) {
      const p = await problemOf(res);
      if (res.status === 401) onUnauthenticated(p);
      throw new ApiError(p);
    }
    return res;
  };
  return {
    raw,
    async json<T>(path: string, o: ApiOptions = {}): Promise<T> {
      const res = await raw(path, o);
      return (res.status === 204 ? null : await res.json()) as T;
    },
  };
}
