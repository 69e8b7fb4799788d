/**
 * Prometheus text exposition (format 0.0.4) at `/metrics`: request counters and latency per route, the
 * operations this node runs, and — computed at scrape time from the inventory — VMs by power state and mode and
 * each host's ASID pools (size and used), the numbers capacity planning watches.
 */

import { hostViews } from "../control/capacity.ts";
import { POOLS, poolSize } from "../control/compat.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import { POWER_STATES, SECURITY_MODES } from "../control/inventory/types.ts";

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Label values are escaped as the exposition format requires. */
function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

export class ApiMetrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Map<string, { buckets: number[]; sum: number; count: number }>();

  /** Records one finished request. `route` is the route pattern (never the raw URL, which carries ids). */
  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `method="${label(method)}",route="${label(route)}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    const lk = `method="${label(method)}",route="${label(route)}"`;
    let h = this.#latency.get(lk);
    if (!h) {
      h = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(lk, h);
    }
    BUCKETS.forEach((b, i) => {
      if (seconds <= b && h) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    });
    h.sum += seconds;
    h.count += 1;
  }

  /** The exposition text. */
  async render(cp: ControlPlane): Promise<string> {
    const out: string[] = [];
    out.push("# HELP ciphervisor_http_requests_total HTTP requests by route and status.");
    out.push("# TYPE ciphervisor_http_requests_total counter");
    for (const [k, v] of this.#requests) out.push(`ciphervisor_http_requests_total{${k}} ${v}`);
    out.push("# HELP ciphervisor_http_request_duration_seconds HTTP request latency.");
    out.push("# TYPE ciphervisor_http_request_duration_seconds histogram");
    for (const [k, h] of this.#latency) {
      for (const [i, b] of BUCKETS.entries()) {
        out.push(`ciphervisor_http_request_duration_seconds_bucket{${k},le="${b}"} ${h.buckets[i] ?? 0}`);
      }
      out.push(`ciphervisor_http_request_duration_seconds_bucket{${k},le="+Inf"} ${h.count}`);
      out.push(`ciphervisor_http_request_duration_seconds_sum{${k}} ${h.sum}`);
      out.push(`ciphervisor_http_request_duration_seconds_count{${k}} ${h.count}`);
    }
    out.push("# HELP ciphervisor_operations_running Operations this node runs now.");
    out.push("# TYPE ciphervisor_operations_running gauge");
    out.push(`ciphervisor_operations_running ${cp.engine.busy}`);
    const inv = cp.context.inventory;
    out.push("# HELP ciphervisor_vms VMs by power state and security mode.");
    out.push("# TYPE ciphervisor_vms gauge");
    for (const powerState of POWER_STATES) {
      for (const securityMode of SECURITY_MODES) {
        const n = await inv.vms.count({ powerState, securityMode });
        out.push(`ciphervisor_vms{power_state="${powerState}",security_mode="${securityMode}"} ${n}`);
      }
    }
    out.push("# HELP ciphervisor_host_asids Key slots (ASIDs) per host and pool.");
    out.push("# TYPE ciphervisor_host_asids gauge");
    for (const v of await hostViews(inv)) {
      const h = label(v.host.name);
      for (const { pool, mode } of POOLS) {
        out.push(`ciphervisor_host_asids{host="${h}",pool="${mode}",state="size"} ${poolSize(v.host, pool)}`);
        out.push(`ciphervisor_host_asids{host="${h}",pool="${mode}",state="used"} ${v.used[pool]}`);
      }
    }
    return `${out.join("\n")}\n`;
  }
}
