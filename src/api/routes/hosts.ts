/**
 * `/v1/hosts`: registration (the driver reports the SEV platform and the ASID split), pools as placement counts
 * them, the drain plan, and maintenance mode (entering drains the host: a 202 operation).
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import {
  planEnterMaintenance,
  planExitMaintenance,
  planRegisterHost,
  planRemoveHost,
} from "../../control/plan/host.ts";
import { getHost } from "../../control/services/context.ts";
import { hostReports, registerHost, removeHost } from "../../control/services/hosts.ts";
import { drainPlan } from "../../control/services/maintenance.ts";
import { CiphervisorError } from "../../errors.ts";
import { answerDryRun, DryRunQuery, isDryRun, orPlan } from "../dry-run.ts";
import { type OperationDeps, submitAndRespond } from "../operation-response.ts";
import {
  errorResponses,
  IdParams,
  MutatingHeaders,
  OperationResponse,
  PageOf,
  PageQuery,
} from "../schemas/common.ts";
import { DrainPlanSchema, HostSchema, RegisterHostBody } from "../schemas/host.ts";
import { hostView } from "../views.ts";

const OperationAnswers = { 200: orPlan(OperationResponse), 202: OperationResponse, ...errorResponses };

export function hostRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = deps.cp.context;
  const inv = ctx.inventory;

  app.get(
    "/v1/hosts",
    {
      config: { permission: "inventory.read", action: "host.list" },
      schema: {
        tags: ["hosts"],
        summary: "List hosts with their SEV / SEV-ES ASID pools",
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: { 200: PageOf(Type.Ref("Host"), "HostPage"), ...errorResponses },
      },
    },
    async (req) => {
      const page = await inv.hosts.list(
        {},
        { limit: req.query.limit ?? 100, cursor: req.query.cursor ?? null },
      );
      return { items: (await hostReports(ctx, page.items)).map(hostView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/hosts/:id",
    {
      config: { permission: "inventory.read", action: "host.read" },
      schema: {
        tags: ["hosts"],
        summary: "Read a host",
        params: IdParams,
        response: { 200: HostSchema, ...errorResponses },
      },
    },
    async (req) => {
      const [report] = await hostReports(ctx, [await getHost(inv, req.params.id)]);
      if (!report) throw new CiphervisorError("NOT_FOUND", `host ${req.params.id} not found`);
      return hostView(report);
    },
  );

  app.post(
    "/v1/hosts",
    {
      config: { permission: "host.manage", action: "host.register" },
      schema: {
        tags: ["hosts"],
        summary: "Register a host (emulated: optionally build it)",
        body: RegisterHostBody,
        querystring: DryRunQuery,
        response: { 200: Type.Ref("DryRunPlan"), 201: HostSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
      const b = req.body;
      const request = {
        name: b.name,
        ...(b.driver === undefined ? {} : { driver: b.driver }),
        ...(b.address === undefined ? {} : { address: b.address }),
        ...(b.clusterId === undefined ? {} : { clusterId: b.clusterId }),
        ...(b.emulated === undefined ? {} : { emulated: b.emulated }),
        ...(b.esMode === undefined ? {} : { esMode: b.esMode }),
      };
      if (isDryRun(req)) return answerDryRun(req, reply, inv, (await planRegisterHost(ctx, request)).plan);
      const host = await registerHost(ctx, principal.actor, request);
      const [report] = await hostReports(ctx, [host]);
      if (!report) throw new CiphervisorError("INTERNAL", "registered host not found");
      return reply.code(201).header("location", `/v1/hosts/${host.id}`).send(hostView(report));
    },
  );

  app.delete(
    "/v1/hosts/:id",
    {
      config: { permission: "host.manage", action: "host.remove" },
      schema: {
        tags: ["hosts"],
        summary: "Remove a host that has no VMs",
        params: IdParams,
        querystring: DryRunQuery,
        response: { 200: Type.Ref("DryRunPlan"), 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
      if (isDryRun(req)) {
        const plan = await planRemoveHost(ctx, await getHost(inv, req.params.id));
        return answerDryRun(req, reply, inv, plan.plan);
      }
      await removeHost(ctx, principal.actor, req.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/v1/hosts/:id/drain-plan",
    {
      config: { permission: "inventory.read", action: "host.drain-plan" },
      schema: {
        tags: ["hosts"],
        summary: "What entering maintenance would do to each VM, and where it would go",
        params: IdParams,
        response: { 200: DrainPlanSchema, ...errorResponses },
      },
    },
    async (req) => {
      const host = await getHost(inv, req.params.id);
      return { host: host.name, steps: await drainPlan(ctx, host.id) };
    },
  );

  app.post(
    "/v1/hosts/:id/enter-maintenance",
    {
      config: { permission: "host.maintenance", action: "host.enter-maintenance" },
      schema: {
        tags: ["hosts"],
        summary:
          "Enter maintenance: drain the host (ordinary VMs live-migrate, encrypted VMs restart elsewhere)",
        params: IdParams,
        querystring: DryRunQuery,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const host = await getHost(inv, req.params.id);
      const total = await inv.vms.count({ hostId: host.id });
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "host.enter-maintenance", params: { hostId: host.id }, target: host.id, total },
        { plan: () => planEnterMaintenance(ctx, host) },
      );
    },
  );

  app.post(
    "/v1/hosts/:id/exit-maintenance",
    {
      config: { permission: "host.maintenance", action: "host.exit-maintenance" },
      schema: {
        tags: ["hosts"],
        summary: "Exit maintenance: the host takes VMs again",
        params: IdParams,
        querystring: DryRunQuery,
        headers: MutatingHeaders,
        response: OperationAnswers,
      },
    },
    async (req, reply) => {
      const host = await getHost(inv, req.params.id);
      return submitAndRespond(
        req,
        reply,
        deps,
        { kind: "host.exit-maintenance", params: { hostId: host.id }, target: host.id },
        { plan: () => planExitMaintenance(host) },
      );
    },
  );
}
