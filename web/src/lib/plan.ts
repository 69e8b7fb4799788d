/**
 * A dry-run plan (`?dryRun=true`, src/api/schemas/plan.ts) as the dashboard shows it. The server computes every
 * verdict; this only groups and words them: refused items first (with the code and reason the real request would
 * give), then changes, then unchanged, and the key-slot pools before → after.
 */
import { MODE_LABEL, policyHex } from "./format.ts";
import type { DryRunPlan, PlanItem, PoolImpact, Protection } from "./types.ts";

export interface PlanGroup {
  readonly outcome: PlanItem["outcome"];
  readonly title: string;
  readonly items: readonly PlanItem[];
}

const GROUP_TITLE: Record<PlanItem["outcome"], string> = {
  refused: "Refused",
  change: "Will change",
  unchanged: "Already as asked",
};

/** The plan's items in groups, refused first; empty groups are left out. */
export function planGroups(plan: DryRunPlan): PlanGroup[] {
  return (["refused", "change", "unchanged"] as const)
    .map((outcome) => ({
      outcome,
      title: GROUP_TITLE[outcome],
      items: plan.items.filter((i) => i.outcome === outcome),
    }))
    .filter((g) => g.items.length > 0);
}

/** "4 VMs: 2 will change (1 with a restart), 1 already as asked, 1 refused". */
export function planHeadline(plan: DryRunPlan): string {
  const parts = [`${plan.change} will change${plan.restart ? ` (${plan.restart} with a restart)` : ""}`];
  parts.push(`${plan.unchanged} already as asked`, `${plan.refused} refused`);
  return `${plan.total} ${plan.total === 1 ? "item" : "items"}: ${parts.join(", ")}`;
}

export function protectionText(p: Protection | undefined): string {
  if (!p) return "";
  return p.securityMode === "none" ? "none" : `${MODE_LABEL[p.securityMode]} ${policyHex(p.policy)}`;
}

/** "none → SEV-ES 0x0005" for a change; the action words otherwise. */
export function itemChange(item: PlanItem): string {
  if (item.before && item.after) return `${protectionText(item.before)} → ${protectionText(item.after)}`;
  return item.action ?? "";
}

export interface CapacityRow {
  readonly label: string;
  readonly before: string;
  readonly after: string;
  /** The pool would be over its size (the server refuses those items; shown for emphasis). */
  readonly full: boolean;
}

export function capacityRows(capacity: readonly PoolImpact[]): CapacityRow[] {
  return capacity.map((c) => ({
    label: `${c.host} ${MODE_LABEL[c.pool]} key slots`,
    before: `${c.used} / ${c.size}`,
    after: `${c.usedAfter} / ${c.size}`,
    full: c.usedAfter >= c.size,
  }));
}

/** The run button is pointless when nothing would change. */
export function planRunnable(plan: DryRunPlan): boolean {
  return plan.change > 0;
}
