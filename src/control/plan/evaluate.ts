/**
 * One object's verdict, from the same check the real request runs: the check either describes the change (or
 * says there is nothing to do), or throws. A refusal (the object's state or a rule stands in the way) becomes a
 * `refused` item with the error's own code and reason, kept so the real request can answer it unchanged; any
 * other error (a malformed request, a missing object, a permission) is the request's answer, dry run or not.
 */
import { type CiphervisorError, isRefusal } from "../../errors.ts";
import type { JsonObject } from "../json.ts";
import { type Plan, type PlanItem, planOf } from "./types.ts";

/** An item's identity and the facts known before the check. */
export type ItemBase = Pick<PlanItem, "target" | "name" | "kind"> & Partial<PlanItem>;

/** What a passing check says. */
export type Verdict = Partial<PlanItem> & { readonly outcome: "change" | "unchanged" };

export interface Evaluated {
  readonly item: PlanItem;
  /** The refusal, when the item is refused: what the real request answers. */
  readonly refusal?: CiphervisorError;
}

export async function evaluate(base: ItemBase, check: () => Promise<Verdict> | Verdict): Promise<Evaluated> {
  try {
    return { item: { ...base, ...(await check()) } };
  } catch (e) {
    if (!isRefusal(e)) throw e;
    const details =
      e.details === undefined ? {} : { details: JSON.parse(JSON.stringify(e.details)) as JsonObject };
    return { item: { ...base, outcome: "refused", code: e.code, reason: e.message, ...details }, refusal: e };
  }
}

/** The plan of a request about one object, and the refusal its real run would answer. */
export interface RequestPlan {
  readonly plan: Plan;
  readonly refusal?: CiphervisorError;
}

export function single(action: string, e: Evaluated, capacity: Plan["capacity"] = []): RequestPlan {
  return { plan: planOf(action, [e.item], capacity), ...(e.refusal ? { refusal: e.refusal } : {}) };
}
