/**
 * `POST /v1/vms:bulk-update-plan`: the what-if of `vms:bulk-update` (the CLI's `--what-if`). Same body, same
 * permission, same checks — it runs the bulk-update runner itself inside a transaction that is rolled back — and
 * answers the per-VM outcomes and the capacity impact per host and ASID pool. Nothing is written: no operation,
 * no VM change, no audit record.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { planBulkUpdate } from "../../control/services/bulk-plan.ts";
import type { BulkSet, VmSelector } from "../../control/services/bulk-update.ts";
import { requestPermissions } from "../../control/services/bulk-update.ts";
import { CiphervisorError } from "../../errors.ts";
import { requirePermissions } from "../auth.ts";
import type { OperationDeps } from "../operation-response.ts";
import { errorResponses } from "../schemas/common.ts";
import { SecurityModeSchema, SelectorSchema } from "../schemas/vm.ts";

const Protection = Type.Object({ securityMode: SecurityModeSchema, policy: Type.Integer() });

const PlanBody = Type.Object(
  {
    selector: SelectorSchema,
    set: Type.Object(
      {
        securityMode: Type.Optional(SecurityModeSchema),
        policy: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
      },
      { additionalProperties: false },
    ),
    restart: Type.Optional(
      Type.Boolean({
        description:
          "Evaluate running VMs as powered off, changed and started again on their host, admitted within its free key slots",
      }),
    ),
  },
  { additionalProperties: false },
);

const PlannedVmSchema = Type.Object({
  vmId: Type.String(),
  vm: Type.String(),
  hostId: Type.Union([Type.String(), Type.Null()]),
  host: Type.Union([Type.String(), Type.Null()]),
  powerState: Type.String(),
  outcome: Type.Enum(["change", "unchanged", "refused"]),
  restart: Type.Boolean(),
  before: Protection,
  after: Type.Optional(Protection),
  code: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

const PoolImpactSchema = Type.Object({
  hostId: Type.String(),
  host: Type.String(),
  pool: Type.Enum(["sev", "sev-es"]),
  size: Type.Integer(),
  used: Type.Integer(),
  usedAfter: Type.Integer(),
  vms: Type.Integer(),
  vmsAfter: Type.Integer(),
});

const PlanSchema = Type.Object({
  total: Type.Integer(),
  change: Type.Integer(),
  unchanged: Type.Integer(),
  refused: Type.Integer(),
  restart: Type.Integer(),
  items: Type.Array(PlannedVmSchema),
  capacity: Type.Array(PoolImpactSchema),
});

export function vmPlanRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    // "::" is fastify's escape for a literal colon (a single one would start a path parameter).
    "/v1/vms::bulk-update-plan",
    {
      config: {
        permission: {
          anyOf: ["vm.security.enable", "vm.security.policy", "vm.security.downgrade", "vm.debug.allow"],
        },
        action: "vm.bulk-update-plan",
      },
      schema: {
        tags: ["vms"],
        summary:
          "What-if of vms:bulk-update: per-VM outcomes and capacity impact per host and pool; changes nothing",
        body: PlanBody,
        response: { 200: PlanSchema, ...errorResponses },
      },
    },
    async (req) => {
      const principal = req.principal;
      if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
      const set = req.body.set as BulkSet;
      requirePermissions(req, requestPermissions(set));
      return planBulkUpdate(deps.cp.context, {
        selector: req.body.selector as VmSelector,
        set,
        roles: principal.roles,
        actor: principal.actor,
        ...(req.body.restart === undefined ? {} : { restart: req.body.restart }),
      });
    },
  );
}
