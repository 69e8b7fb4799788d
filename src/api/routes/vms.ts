/**
 * `/v1/vms`: list, read, create, delete, power, migrate, snapshot, clone, and `vms:bulk-update`. Each mutating
 * route checks what it can before queuing anything — existence (404), the operation table (409 with the table's
 * code and reason), power state (409), placement (409 NO_VALID_HOST with a reason per host), and the permissions
 * the body implies (403) — then answers with its operation.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { VmFilter } from "../../control/inventory/types.ts";
import { planBulkUpdate } from "../../control/plan/bulk.ts";
import {
  planClone,
  planCreate,
  planDelete,
  planMigrate,
  planPower,
  planSnapshot,
} from "../../control/plan/vm.ts";
import { bulkPowerParams, bulkPowerPermission, planBulkPower } from "../../control/services/bulk-power.ts";
import {
  type BulkSet,
  bulkParams,
  requestPermissionNeeds,
  selectorFilter,
  type VmSelector,
} from "../../control/services/bulk-update.ts";
import { getVm } from "../../control/services/context.ts";
import type { MigrationMode } from "../../control/services/migrate.ts";
import { clonePermissions } from "../../control/services/snapshot-clone.ts";
import { createParams } from "../../control/services/vm-create.ts";
import { CiphervisorError } from "../../errors.ts";
import { requireAnyPermission, requirePermissions } from "../auth.ts";
import { DryRunQuery, orPlan } from "../dry-run.ts";
import { type OperationDeps, submitAndRespond } from "../operation-response.ts";
import { type CachedPage, PageCache } from "../page-cache.ts";
import { errorResponses, IdParams, MutatingHeaders, OperationResponse, PageOf } from "../schemas/common.ts";
import {
  BulkPowerBody,
  BulkUpdateBody,
  CloneBody,
  CreateVmBody,
  MigrateBody,
  SnapshotBody,
  VmListQuery,
  VmSchema,
} from "../schemas/vm.ts";
import { vmView } from "../views.ts";
import { VmPageWriter } from "../vm-page-json.ts";

const OperationAnswers = { 200: orPlan(OperationResponse), 202: OperationResponse, ...errorResponses };

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

/** A list page with its ETag; `If-None-Match` with that tag (a client polling an unchanged fleet) gets 304. */
function sendPage(req: FastifyRequest, reply: FastifyReply, page: CachedPage): FastifyReply {
  reply.header("etag", page.etag).header("cache-control", "private, no-cache");
  const match = req.headers["if-none-match"];
  if (match !== undefined && match.split(",").some((t) => t.trim() === page.etag)) {
    return reply.code(304).send();
  }
  return reply.type("application/json; charset=utf-8").send(page.body);
}

export function vmRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const inv = deps.cp.context.inventory;
  const ctx = deps.cp.context;
  let writer: VmPageWriter | undefined;
  const pages = new PageCache();

  app.get(
    "/v1/vms",
    {
      config: { permission: "inventory.read", action: "vm.list" },
      schema: {
        tags: ["vms"],
        summary: "List VMs (cursor-paginated, filterable, sortable on each column)",
        querystring: VmListQuery,
        response: { 200: PageOf(Type.Ref("Vm"), "VmPage"), ...errorResponses },
      },
    },
    async (req, reply) => {
      const q = req.query;
      // The store's version first, then the cache (page-cache.ts): between two writes a query's answer is the
      // same bytes, so it is read and serialized once. The permission check has already run.
      const token = inv.changeToken();
      const key = JSON.stringify(q);
      const cached = pages.get(token, key);
      if (cached) return sendPage(req, reply, cached);
      const filter: VmFilter = {
        ...(q.hostId === undefined ? {} : { hostId: q.hostId === "none" ? null : q.hostId }),
        ...(q.clusterId === undefined ? {} : { clusterId: q.clusterId }),
        ...(q.powerState === undefined ? {} : { powerState: q.powerState }),
        ...(q.securityMode === undefined ? {} : { securityMode: q.securityMode }),
        ...(q.namePrefix === undefined ? {} : { namePrefix: q.namePrefix }),
        ...(q.labels === undefined ? {} : { labels: parseLabels(q.labels) }),
      };
      const page = await inv.vms.listStored(
        filter,
        { limit: q.limit ?? 100, cursor: q.cursor ?? null },
        q.sort ?? "id",
      );
      // The stored rows written as the response schema would (vm-page-json.ts), without a parse per row.
      writer ??= new VmPageWriter(reply.compileSerializationSchema({ $ref: "VmSpec#" }, "200"));
      return sendPage(req, reply, pages.set(token, key, writer.page(page)));
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
        querystring: DryRunQuery,
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
      const request = {
        name: b.name,
        spec: b.spec as never,
        ...(b.securityMode === undefined ? {} : { securityMode: b.securityMode }),
        ...(b.policy === undefined ? {} : { policy: b.policy }),
        ...(b.labels === undefined ? {} : { labels: b.labels }),
        ...(b.clusterId === undefined ? {} : { clusterId: b.clusterId }),
        ...(b.hostId === undefined ? {} : { hostId: b.hostId }),
      };
      const planned = await planCreate(ctx, request, (permissions) => requirePermissions(req, permissions));
      const checked = planned.checked;
      return submitAndRespond(
        req,
        reply,
        deps,
        {
          kind: "vm.create",
          params: checked ? createParams(checked) : { name: b.name },
          target: b.name,
        },
        {
          plan: async () => planned,
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
        querystring: DryRunQuery,
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
        { plan: () => planDelete(ctx, vm) },
      );
    },
  );

  const power = [
    { verb: "power-on", summary: "Power on (placement takes a key slot); already running: unchanged" },
    { verb: "power-off", summary: "Power off (the ASID returns to its pool); already off: unchanged" },
    { verb: "restart", summary: "Restart (SEV-ES: a full relaunch)" },
    { verb: "suspend", summary: "Suspend (refused for SEV/SEV-ES)" },
    { verb: "resume", summary: "Resume a suspended VM" },
  ] as const;
  for (const p of power) {
    const kind = `vm.${p.verb}` as const;
    app.post(
      `/v1/vms/:id/${p.verb}`,
      {
        config: { permission: "vm.power", action: kind },
        schema: {
          tags: ["vms"],
          summary: p.summary,
          params: IdParams,
          querystring: DryRunQuery,
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
          { kind, params: { vmId: vm.id }, target: vm.id },
          { plan: () => planPower(ctx, p.verb, vm) },
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
        querystring: DryRunQuery,
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
        { plan: () => planMigrate(ctx, vm, mode, targetHostId) },
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
        querystring: DryRunQuery,
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
        { plan: () => planSnapshot(ctx, vm, req.body.name, memory) },
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
        querystring: DryRunQuery,
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
        { plan: () => planClone(ctx, vm, name) },
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
          "Each VM is checked on its own (powered off, host CPU generation and ES pool, guest OS, EFI, hardware version, devices, and the caller's permission for that VM's change) and is either fully changed with its audit record or left untouched with a failed result naming the check; VMs already as asked are unchanged (ok). With restart: true, running VMs are powered off, changed and powered on again inside the same operation, at most `parallel` at a time and only as many per host as its pool has free key slots (the others stay running, refused ASID_POOL_EXHAUSTED). ?dryRun=true answers the per-VM plan and the capacity impact per host and pool.",
        body: BulkUpdateBody,
        querystring: DryRunQuery,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const selector = req.body.selector as VmSelector;
      const set = req.body.set as BulkSet;
      const filter = selectorFilter(selector);
      const needs = requestPermissionNeeds(set);
      requirePermissions(req, needs.all);
      requireAnyPermission(req, needs.anyOf);
      const roles = req.principal?.roles ?? [];
      const restart = {
        ...(req.body.restart === undefined ? {} : { restart: req.body.restart }),
        ...(req.body.parallel === undefined ? {} : { parallel: req.body.parallel }),
      };
      const params = bulkParams(selector, set, roles, restart);
      const total = await inv.vms.count(filter);
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "vm.bulk-update", params, target: "*", total },
        {
          dryRun: () =>
            planBulkUpdate(ctx, {
              selector,
              set,
              roles,
              actor: req.principal?.actor ?? { id: null, name: "anonymous" },
              ...restart,
            }),
        },
      );
    },
  );

  app.post(
    "/v1/vms::bulk-power",
    {
      config: { permission: { anyOf: ["vm.power", "vm.delete"] }, action: "vm.bulk-power" },
      schema: {
        tags: ["vms"],
        summary: "Power on, power off, restart or delete every VM a selector matches, as one operation (202)",
        description:
          "The verdicts come first, in id order over the hosts' key slots (a later VM sees the slots the earlier ones take); refused VMs fail with the single-VM route's code, VMs already as asked are unchanged, the rest run `parallel` at a time. ?dryRun=true answers the per-VM plan and the capacity impact.",
        body: BulkPowerBody,
        querystring: DryRunQuery,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const selector = req.body.selector as VmSelector;
      const action = req.body.action;
      requirePermissions(req, [bulkPowerPermission(action)]);
      const params = bulkPowerParams(selector, action, req.body.parallel);
      const total = await inv.vms.count(selectorFilter(selector));
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "vm.bulk-power", params, target: "*", total },
        { dryRun: () => planBulkPower(ctx, selector, action) },
      );
    },
  );
}
