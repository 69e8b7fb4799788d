/**
 * `--what-if`, the same for every mutating command: the server's plan (`?dryRun=true`) as it came — per object
 * what would happen, or why it would be refused with the stable code the real run would give — the capacity impact
 * per host and key-slot pool, and the reminder that nothing was changed. The CLI decides nothing here; it prints.
 * `--json` prints the plan as one document with `"whatIf": true`; `-o name` the objects that would change.
 */
import type { ApiPlan, ApiPlanItem, ApiPoolImpact } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import { plural } from "../selectors.ts";
import { count, json, type OutputMode } from "./format.ts";
import { table } from "./table.ts";

/** Plans of several requests (one per VM, or per chunk of a selector) as one. */
export function mergePlans(plans: readonly ApiPlan[]): ApiPlan {
  const first = plans[0];
  if (plans.length === 1 && first) return first;
  const capacity = new Map<string, ApiPoolImpact>();
  for (const p of plans) for (const c of p.capacity) capacity.set(`${c.hostId}/${c.pool}`, c);
  const sum = (k: "total" | "change" | "unchanged" | "refused" | "restart") =>
    plans.reduce((n, p) => n + p[k], 0);
  return {
    dryRun: true,
    action: first?.action ?? "",
    total: sum("total"),
    change: sum("change"),
    unchanged: sum("unchanged"),
    refused: sum("refused"),
    restart: sum("restart"),
    items: plans.flatMap((p) => p.items),
    capacity: [...capacity.values()],
  };
}

/** The noun a plan's items are, for the summary line. */
function noun(plan: ApiPlan): string {
  const kinds = new Set(plan.items.map((i) => i.kind));
  if (kinds.size === 1) return [...kinds][0] === "vm" ? "VM" : ([...kinds][0] ?? "object");
  return "object";
}

export function printPlan(io: CliIo, mode: OutputMode, command: string, plan: ApiPlan): void {
  if (mode === "json") {
    const { dryRun: _dry, ...rest } = plan;
    io.out(json({ whatIf: true, command, ...rest }));
    return;
  }
  if (mode === "name") {
    // What would change, one name a line: pipe them into the real command.
    for (const i of plan.items) if (i.outcome === "change") io.out(`${i.name}\n`);
    return;
  }
  io.out(
    `what-if: ${command} — ${plural(plan.total, noun(plan))}: ${count(plan.change)} would change, ${count(plan.unchanged)} already as asked, ${count(plan.refused)} refused. Nothing was changed.\n`,
  );
  if (plan.items.length > 0) {
    io.out(
      table(
        [
          { header: "NAME", value: (i: ApiPlanItem) => i.name },
          {
            header: "WOULD",
            value: (i: ApiPlanItem) => (i.outcome === "change" ? (i.action ?? "change") : i.outcome),
          },
          { header: "HOST", value: (i: ApiPlanItem) => i.host ?? "-" },
          { header: "CODE", value: (i: ApiPlanItem) => i.code ?? "" },
          { header: "REASON", value: (i: ApiPlanItem) => i.reason ?? "" },
        ],
        plan.items,
      ),
    );
  }
  const changed = plan.capacity.filter((c) => c.used !== c.usedAfter || c.vms !== c.vmsAfter);
  if (changed.length > 0) {
    io.out("capacity impact (key slots per host and pool):\n");
    io.out(
      table(
        [
          { header: "HOST", value: (c: ApiPoolImpact) => c.host },
          { header: "POOL", value: (c: ApiPoolImpact) => c.pool },
          { header: "SIZE", value: (c: ApiPoolImpact) => c.size, right: true },
          { header: "IN-USE", value: (c: ApiPoolImpact) => c.used, right: true },
          { header: "AFTER", value: (c: ApiPoolImpact) => c.usedAfter, right: true },
          { header: "VMS", value: (c: ApiPoolImpact) => c.vms, right: true },
          { header: "VMS-AFTER", value: (c: ApiPoolImpact) => c.vmsAfter, right: true },
          {
            header: "NOTE",
            value: (c: ApiPoolImpact) =>
              c.vmsAfter > c.size ? `only ${c.size} of ${c.vmsAfter} can run at once` : "",
          },
        ],
        changed,
      ),
    );
  }
}
