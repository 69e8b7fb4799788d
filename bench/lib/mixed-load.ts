/**
 * Mixed load against a running `serve`: autocannon on loopback cycling through what a fleet's users do at once —
 * list pages (plain and filtered), single VMs, hosts, a bulk dry run, and real writes (a new VM each cycle, then its
 * power-on as an operation) — while the server's memory is sampled from /proc. Shared by the load suite
 * (test/suites/load.test.ts: no 5xx, memory flat after warm-up) and the bench (bench/cases/load.ts: the figures).
 */
import autocannon from "autocannon";
import { memoryOf } from "./serve-process.ts";

export interface MixedLoadResult {
  readonly requests: number;
  readonly rps: number;
  readonly p99Ms: number;
  /** Answers by status code, e.g. { "200": 950, "201": 25, "202": 25 }. */
  readonly statuses: Readonly<Record<string, number>>;
  readonly errors: number;
  /** Resident memory of the server after the warm-up third and at the end, MiB. */
  readonly rssWarmMiB: number;
  readonly rssEndMiB: number;
  /** VMs the run created. */
  readonly created: number;
}

interface AutocannonRun {
  requests: { total: number; average: number };
  latency: { p99: number };
  errors: number;
  statusCodeStats?: Record<string, { count: number | string }>;
}

/**
 * Runs `seconds` of mixed load with `connections` clients. `operatorToken` may create and power VMs; `someVmId` is
 * any VM of the fleet (read by id). The run's own VMs are named `load-<run>-<n>`.
 */
export async function mixedLoad(options: {
  readonly url: string;
  readonly pid: number | undefined;
  readonly operatorToken: string;
  readonly someVmId: string;
  readonly seconds: number;
  readonly connections: number;
}): Promise<MixedLoadResult> {
  const run = Date.now().toString(36);
  let created = 0;
  const auth = { authorization: `Bearer ${options.operatorToken}` };
  const json = { ...auth, "content-type": "application/json" };
  const spec = { vcpus: 1, memoryMiB: 64, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };
  const requests = [
    { method: "GET", path: "/v1/vms?limit=100", headers: auth },
    { method: "GET", path: "/v1/vms?limit=50&securityMode=sev-es", headers: auth },
    { method: "GET", path: `/v1/vms/${options.someVmId}`, headers: auth },
    { method: "GET", path: "/v1/hosts?limit=100", headers: auth },
    {
      method: "POST",
      path: "/v1/vms:bulk-power?dryRun=true",
      headers: json,
      body: JSON.stringify({ selector: { namePrefix: "load-none" }, action: "power-on" }),
    },
    {
      method: "POST",
      path: "/v1/vms",
      headers: json,
      setupRequest: (req: Record<string, unknown>) => {
        created++;
        return { ...req, body: JSON.stringify({ name: `load-${run}-${created}`, spec }) };
      },
      onResponse: (_status: number, body: string, context: Record<string, unknown>) => {
        try {
          context.vmId = (JSON.parse(body) as { vm?: { id?: string } }).vm?.id;
        } catch {
          context.vmId = undefined;
        }
      },
    },
    {
      method: "POST",
      headers: json,
      setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => ({
        ...req,
        path: `/v1/vms/${String(context.vmId ?? options.someVmId)}/power-on`,
        body: "{}",
      }),
    },
  ];
  let rssWarmMiB = Number.NaN;
  const warm = setTimeout(
    () => {
      rssWarmMiB = memoryOf(options.pid).rssMiB;
    },
    (options.seconds * 1000) / 3,
  );
  const r = (await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    requests,
  })) as AutocannonRun;
  clearTimeout(warm);
  const statuses: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statuses[code] = Number(s.count);
  return {
    requests: r.requests.total,
    rps: r.requests.average,
    p99Ms: r.latency.p99,
    statuses,
    errors: r.errors,
    rssWarmMiB,
    rssEndMiB: memoryOf(options.pid).rssMiB,
    created,
  };
}
