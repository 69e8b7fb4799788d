/** HTTP load with autocannon (the package's own dependency, on loopback): requests per second and latency. */
import autocannon from "autocannon";

export interface LoadResult {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly non2xx: number;
}

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  errors: number;
  non2xx: number;
}

/**
 * `connections` clients for `seconds` against `url`. With `paths`, the requests cycle through them (each a path
 * with its query, on `url`'s origin) instead of repeating `url`. Fails when any request errs or answers non-2xx.
 */
export async function load(
  url: string,
  options: {
    connections: number;
    seconds: number;
    headers?: Record<string, string>;
    paths?: readonly string[];
  },
): Promise<LoadResult> {
  const paths = options.paths;
  let next = 0;
  const r = (await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    headers: options.headers ?? {},
    ...(paths && paths.length > 0
      ? {
          requests: [
            {
              setupRequest: (req: Record<string, unknown>) => ({
                ...req,
                path: paths[next++ % paths.length],
              }),
            },
          ],
        }
      : {}),
  })) as AutocannonResult;
  if (r.errors > 0 || r.non2xx > 0) {
    throw new Error(`load on ${url}: ${r.errors} errors, ${r.non2xx} non-2xx answers`);
  }
  return {
    rps: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}
