/**
 * The dry-run answer of every mutating route (`?dryRun=true`): the plan `control/plan/` computes. The CLI's
 * `--what-if` and the dashboard read this one shape.
 */
import { Type } from "typebox";
import { POWER_STATES, SECURITY_MODES } from "../../control/inventory/types.ts";
import { PLAN_KINDS, PLAN_OUTCOMES } from "../../control/plan/types.ts";

export const ProtectionSchema = Type.Object({
  securityMode: Type.Enum([...SECURITY_MODES]),
  policy: Type.Integer(),
});

export const PlanItemSchema = Type.Object(
  {
    target: Type.String({ description: "The object's id (for one the request would create, its name)" }),
    name: Type.String(),
    kind: Type.Enum([...PLAN_KINDS]),
    outcome: Type.Enum([...PLAN_OUTCOMES], {
      description: "change: would change; unchanged: already as asked; refused: would fail with `code`",
    }),
    action: Type.Optional(Type.String({ description: "What would be done, in words" })),
    hostId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    host: Type.Optional(
      Type.Union([Type.String(), Type.Null()], { description: "Where it runs or would run afterwards" }),
    ),
    powerState: Type.Optional(Type.Enum([...POWER_STATES])),
    restart: Type.Optional(
      Type.Boolean({ description: "A running VM would be powered off, changed, started" }),
    ),
    before: Type.Optional(ProtectionSchema),
    after: Type.Optional(ProtectionSchema),
    code: Type.Optional(Type.String({ description: "The stable code the real request would give" })),
    reason: Type.Optional(Type.String()),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: "PlanItem" },
);

export const PoolImpactSchema = Type.Object(
  {
    hostId: Type.String(),
    host: Type.String(),
    pool: Type.Enum(["sev", "sev-es"]),
    size: Type.Integer(),
    used: Type.Integer(),
    usedAfter: Type.Integer(),
    vms: Type.Integer(),
    vmsAfter: Type.Integer(),
  },
  { $id: "PoolImpact" },
);

/** Not `$ref`-linked inside: the CLI derives its types from this schema with `Static`. */
export const DryRunPlanSchema = Type.Object(
  {
    dryRun: Type.Literal(true),
    action: Type.String(),
    total: Type.Integer(),
    change: Type.Integer(),
    unchanged: Type.Integer(),
    refused: Type.Integer(),
    restart: Type.Integer(),
    items: Type.Array(PlanItemSchema),
    capacity: Type.Array(PoolImpactSchema),
  },
  {
    $id: "DryRunPlan",
    description:
      "What the request would do (?dryRun=true); nothing was changed and one dry-run audit record written",
  },
);
