/**
 * `/v1/vms`: list, read, create, delete, power, migrate, snapshot, clone, and `vms:bulk-update`. Each mutating
 * route checks what it can before queuing anything — existence (404), the operation table (409 with the table's
 * code and reason), power state (409), placement (409 NO_VALID_HOST with a reason per host), and the permissions
 * the body implies (403) — then answers with its operation.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { hostViews } from "../../control/capacity.ts";
import type { VmFilter } from "../../control/inventory/types.ts";
import { choosePlacement, noValidHost } from "../../control/placement.ts";
import {
  bulkParams,
  requestPermissionNeeds,
  selectorFilter,
  type VmSelector,
} from "../../control/services/bulk-update.ts";
import { getVm } from "../../control/services/context.ts";
import { checkMigrate, type MigrationMode, migrationTarget } from "../../control/services/migrate.ts";
import {
  checkPowerOff,
  checkPowerOn,
  checkRestart,
  checkResume,
  checkSuspend,
} from "../../control/services/power.ts";
import { checkClone, checkSnapshot, clonePermissions } from "../../control/services/snapshot-clone.ts";
import { checkCreate, checkCreateHost, checkDelete, createParams } from "../../control/services/vm-create.ts";
import { CiphervisorError } from "../../errors.ts";
import { requireAnyPermission, requirePermissions } from "../auth.ts";
import { type OperationDeps, submitAndRespond } from "../operation-response.ts";
import { errorResponses, IdParams, MutatingHeaders, OperationResponse, PageOf } from "../schemas/common.ts";
import {
  BulkUpdateBody,
  CloneBody,
  CreateVmBody,
  MigrateBody,
  SnapshotBody,
  VmListQuery,
  VmSchema,
} from "../schemas/vm.ts";
import { vmView } from "../views.ts";

const OperationAnswers = { 200: OperationResponse, 202: OperationResponse, ...errorResponses };

/** `app=web,env=prod` → { app: "web", env: "prod" }. */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(",")) {
    if (pair === "") continue;
    const i = pair.indexOf("=");
    if (i <= 0) {
      throw new CiphervisorError("INVALID_INPUT", "labels must be key=value pairs separated by commas", {
        details: { field: "labels" },
      });
    }
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

export function vmRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const inv = deps.cp.context.inventory;
  const ctx = deps.cp.context;

  app.get(
    "/v1/vms",
    {
      config: { permission: "inventory.read", action: "vm.list" },
      schema: {
        tags: ["vms"],
        summary: "List VMs (cursor-paginated, filterable)",
        querystring: VmListQuery,
        response: { 200: PageOf(Type.Ref("Vm"), "VmPage"), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query;
      const filter: VmFilter = {
        ...(q.hostId === undefined ? {} : { hostId: q.hostId === "none" ? null : q.hostId }),
        ...(q.clusterId === undefined ? {} : { clusterId: q.clusterId }),
        ...(q.powerState === undefined ? {} : { powerState: q.powerState }),
        ...(q.securityMode === undefined ? {} : { securityMode: q.securityMode }),
        ...(q.namePrefix === undefined ? {} : { namePrefix: q.namePrefix }),
        ...(q.labels === undefined ? {} : { labels: parseLabels(q.labels) }),
      };
      const page = await inv.vms.list(filter, { limit: q.limit ?? 100, cursor: q.cursor ?? null });
      return { items: page.items.map(vmView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/vms/:id",
    {
      config: { permission: "inventory.read", action: "vm.read" },
      schema: {
        tags: ["vms"],
        summary: "Read a VM",
        params: IdParams,
        response: { 200: VmSchema, ...errorResponses },
      },
    },
    async (req) => vmView(await getVm(inv, req.params.id)),
  );

  app.post(
    "/v1/vms",
    {
      config: { permission: "vm.create", action: "vm.create" },
      schema: {
        tags: ["vms"],
        summary: "Create a VM (powered off). Encrypted VMs also need 'vm.security.enable'.",
        body: CreateVmBody,
        headers: MutatingHeaders,
        response: {
          201: Type.Object({
            operation: Type.Ref("Operation"),
            results: Type.Optional(Type.Array(Type.Ref("OperationItem"))),
            vm: Type.Ref("Vm"),
          }),
          ...OperationAnswers,
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const checked = checkCreate({
        name: b.name,
        spec: b.spec as never,
        ...(b.securityMode === undefined ? {} : { securityMode: b.securityMode }),
        ...(b.policy === undefined ? {} : { policy: b.policy }),
        ...(b.labels === undefined ? {} : { labels: b.labels }),
        ...(b.clusterId === undefined ? {} : { clusterId: b.clusterId }),
        ...(b.hostId === undefined ? {} : { hostId: b.hostId }),
      });
      requirePermissions(req, checked.permissions);
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "vm.create", params: createParams(checked), target: b.name },
        {
          precheck: async () => {
            await checkCreateHost(ctx, checked);
            if (await inv.vms.getByName(b.name)) {
              throw new CiphervisorError("CONFLICT", `a VM named '${b.name}' already exists`, {
                details: { field: "name" },
              });
            }
          },
          onSuccess: async (items) => {
            const id = items[0]?.target;
            const vm = id === undefined ? undefined : await inv.vms.get(id);
            return vm ? { status: 201, location: `/v1/vms/${vm.id}`, vm: vmView(vm) } : {};
          },
        },
      );
    },
  );

  app.delete(
    "/v1/vms/:id",
    {
      config: { permission: "vm.delete", action: "vm.delete" },
      schema: {
        tags: ["vms"],
        summary: "Delete a powered-off VM",
        params: IdParams,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const vm = await getVm(inv, req.params.id);
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "vm.delete", params: { vmId: vm.id }, target: vm.id },
        { precheck: () => checkDelete(vm) },
      );
    },
  );

  const power = [
    {
      verb: "power-on",
      kind: "vm.power-on",
      check: checkPowerOn,
      summary: "Power on (placement takes a key slot)",
    },
    {
      verb: "power-off",
      kind: "vm.power-off",
      check: checkPowerOff,
      summary: "Power off (the ASID returns to its pool)",
    },
    {
      verb: "restart",
      kind: "vm.restart",
      check: checkRestart,
      summary: "Restart (SEV-ES: a full relaunch)",
    },
    { verb: "suspend", kind: "vm.suspend", check: checkSuspend, summary: "Suspend (refused for SEV/SEV-ES)" },
    { verb: "resume", kind: "vm.resume", check: checkResume, summary: "Resume a suspended VM" },
  ] as const;
  for (const p of power) {
    app.post(
      `/v1/vms/:id/${p.verb}`,
      {
        config: { permission: "vm.power", action: p.kind },
        schema: {
          tags: ["vms"],
          summary: p.summary,
          params: IdParams,
          headers: MutatingHeaders,
          response: OperationAnswers,
        },
      },
      async (req, reply) => {
        const vm = await getVm(inv, req.params.id);
        const precheck = async () => {
          p.check(vm);
          if (p.verb === "power-on") {
            // Answer NO_VALID_HOST now rather than queue a request that cannot be placed.
            const decision = choosePlacement(vm, await hostViews(inv), { prefer: vm.hostId });
            if (!decision.chosen) throw noValidHost(vm, decision.verdicts);
          }
        };
        return submitAndRespond(
          req,
          reply,
          deps,
          { kind: p.kind, params: { vmId: vm.id }, target: vm.id },
          { precheck },
        );
      },
    );
  }

  app.post(
    "/v1/vms/:id/migrate",
    {
      config: { permission: "vm.migrate", action: "vm.migrate" },
      schema: {
        tags: ["vms"],
        summary: "Migrate: live (ordinary VMs only) or cold (powered off, any mode)",
        params: IdParams,
        body: MigrateBody,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const vm = await getVm(inv, req.params.id);
      const mode = req.body.mode as MigrationMode;
      const targetHostId = req.body.targetHostId;
      return submitAndRespond(
        req,
        reply,
        deps,
        {
          kind: "vm.migrate",
          params: { vmId: vm.id, mode, ...(targetHostId === undefined ? {} : { targetHostId }) },
          target: vm.id,
        },
        {
          precheck: async () => {
            checkMigrate(vm, mode);
            await migrationTarget(ctx, vm, mode, targetHostId);
          },
        },
      );
    },
  );

  app.post(
    "/v1/vms/:id/snapshots",
    {
      config: { permission: "vm.create", action: "vm.snapshot" },
      schema: {
        tags: ["vms"],
        summary: "Take a snapshot (memory snapshots are refused for SEV/SEV-ES)",
        params: IdParams,
        body: SnapshotBody,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const vm = await getVm(inv, req.params.id);
      const memory = req.body.memory === true;
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "vm.snapshot", params: { vmId: vm.id, name: req.body.name, memory }, target: vm.id },
        { precheck: () => checkSnapshot(vm, memory) },
      );
    },
  );

  app.post(
    "/v1/vms/:id/clone",
    {
      config: { permission: "vm.create", action: "vm.clone" },
      schema: {
        tags: ["vms"],
        summary: "Clone (hot clones are refused for SEV/SEV-ES; cold clones keep the mode and policy)",
        params: IdParams,
        body: CloneBody,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const vm = await getVm(inv, req.params.id);
      requirePermissions(req, clonePermissions(vm));
      const name = req.body.name;
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "vm.clone", params: { vmId: vm.id, name }, target: vm.id },
        {
          precheck: async () => {
            checkClone(vm);
            if (await inv.vms.getByName(name)) {
              throw new CiphervisorError("CONFLICT", `a VM named '${name}' already exists`, {
                details: { field: "name" },
              });
            }
          },
        },
      );
    },
  );

  app.post(
    "/v1/vms::bulk-update",
    {
      config: {
        permission: {
          anyOf: ["vm.security.enable", "vm.security.policy", "vm.security.downgrade", "vm.debug.allow"],
        },
        action: "vm.bulk-update",
      },
      schema: {
        tags: ["vms"],
        summary: "Turn SEV/SEV-ES on or off, or change the policy, for every VM a selector matches (202)",
        description:
          "Each VM is checked on its own (powered off, host CPU generation and ES pool, guest OS, EFI, hardware version, devices, and the caller's permission for that VM's change) and is either fully changed with its audit record or left untouched with a failed result naming the check.",
        body: BulkUpdateBody,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const selector = req.body.selector as VmSelector;
      const filter = selectorFilter(selector);
      const needs = requestPermissionNeeds(req.body.set);
      requirePermissions(req, needs.all);
      requireAnyPermission(req, needs.anyOf);
      const total = await inv.vms.count(filter);
      return submitAndRespond(req, reply, deps, {
        kind: "vm.bulk-update",
        params: bulkParams(selector, req.body.set, req.principal?.roles ?? []),
        target: "*",
        total,
      });
    },
  );
}
