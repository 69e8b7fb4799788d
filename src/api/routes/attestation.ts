/**
 * Attestation, as KubeVirt's `sev/*` subresources and libvirt's `nodesevinfo` / `domlaunchsecinfo` /
 * `domsetlaunchsecstate` offer it (docs/product-behaviour.md §7): reading (certificate chain, measurement) needs
 * `attestation.read`; setting a session needs `attestation.session`; injecting a secret or finishing the launch
 * needs `attestation.secret`. Nothing here says "verified": the owner verifies with their own tools.
 *
 * The session and the secret arrive in request bodies only; no response, problem or audit record repeats them.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { LaunchSecret } from "../../control/drivers/driver.ts";
import type { Actor } from "../../control/inventory/types.ts";
import { planAttestationReport, planFinishLaunch, planLaunchSession } from "../../control/plan/admin.ts";
import {
  AuditedFailure,
  failureCode,
  finishLaunch,
  launchMeasurement,
  setLaunchSession,
  sevInfo,
} from "../../control/services/attestation.ts";
import { checkLaunchSecret, checkLaunchSession } from "../../control/services/attestation-input.ts";
import { attestationReport, parseReportData } from "../../control/services/attestation-report.ts";
import { CiphervisorError } from "../../errors.ts";
import { answerDryRun, DryRunQuery, isDryRun, orPlan } from "../dry-run.ts";
import type { OperationDeps } from "../operation-response.ts";
import { ProblemError, problemType, toProblem } from "../problem.ts";
import {
  AttestationReportBody,
  AttestationReportSchema,
  LaunchFinishAnswer,
  LaunchMeasurementSchema,
  LaunchSecretBody,
  LaunchSessionAnswer,
  LaunchSessionBody,
  SevInfoSchema,
} from "../schemas/attestation.ts";
import { errorResponses, IdParams } from "../schemas/common.ts";

function actorOf(req: FastifyRequest): Actor {
  const principal = req.principal;
  if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
  return principal.actor;
}

/** A host failure the service audited: its problem, with the firmware's status name as the code. */
function auditedProblem(f: AuditedFailure, instance: string): ProblemError {
  const p = toProblem(f.error, instance);
  const code = failureCode(f.error);
  const d = f.error.details;
  const firmware =
    typeof d?.statusName === "string"
      ? { firmware: { command: d.command, status: d.status, statusName: d.statusName } }
      : {};
  return new ProblemError({ ...p, code, type: problemType(code), ...firmware });
}

export function attestationRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = deps.cp.context;

  app.get(
    "/v1/hosts/:id/sev-info",
    {
      config: { permission: "attestation.read", action: "host.sev-info" },
      schema: {
        tags: ["attestation"],
        summary:
          "The host's PDH, certificate chain (PEK, OCA, CEK), cpu0 id and firmware (virsh nodesevinfo), and where the KDS serves its ASK-signed CEK",
        params: IdParams,
        response: { 200: SevInfoSchema, ...errorResponses },
      },
    },
    async (req) => sevInfo(ctx, actorOf(req), req.params.id),
  );

  app.put(
    "/v1/vms/:id/launch-session",
    {
      config: { permission: "attestation.session", action: "vm.launch-session.set" },
      schema: {
        tags: ["attestation"],
        summary:
          "Set the guest owner's session (GODH + session blob) for the next launch of a powered-off SEV/SEV-ES VM; it then starts paused for attestation",
        params: IdParams,
        body: LaunchSessionBody,
        querystring: DryRunQuery,
        response: { 200: orPlan(LaunchSessionAnswer), ...errorResponses },
      },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      const session = checkLaunchSession(req.body);
      const planned = await planLaunchSession(ctx, req.params.id);
      if (isDryRun(req)) return answerDryRun(req, reply, ctx.inventory, planned.plan);
      if (planned.refusal) throw planned.refusal;
      const { vm, policy, host } = await setLaunchSession(ctx, actor, req.params.id, session);
      return {
        vm: vm.id,
        name: vm.name,
        hostId: host.id,
        host: host.name,
        attestationState: vm.attestationState,
        policy,
        note: `the session must be made for ${host.name}'s PDH and policy 0x${policy.toString(16)}; otherwise power-on fails with the firmware's POLICY_FAILURE (or a bad session)`,
      };
    },
  );

  app.get(
    "/v1/vms/:id/launch-measurement",
    {
      config: { permission: "attestation.read", action: "vm.launch-measurement.read" },
      schema: {
        tags: ["attestation"],
        summary:
          "The raw launch measurement of a VM paused for attestation, with the API version, build and policy (never a verdict)",
        params: IdParams,
        response: { 200: LaunchMeasurementSchema, ...errorResponses },
      },
    },
    async (req) => launchMeasurement(ctx, actorOf(req), req.params.id),
  );

  app.post(
    "/v1/vms/:id/attestation-report",
    {
      config: { permission: "attestation.read", action: "vm.attestation-report.read" },
      schema: {
        tags: ["attestation"],
        summary:
          "A running SEV-SNP guest's signed attestation report with the caller's REPORT_DATA, and the VCEK and ASK/ARK to verify it with (never a verdict)",
        params: IdParams,
        querystring: DryRunQuery,
        body: AttestationReportBody,
        response: { 200: orPlan(AttestationReportSchema), ...errorResponses },
      },
    },
    async (req, reply) => {
      const reportData = parseReportData(req.body?.reportData?.toLowerCase());
      if (isDryRun(req)) {
        return answerDryRun(
          req,
          reply,
          ctx.inventory,
          (await planAttestationReport(ctx, req.params.id)).plan,
        );
      }
      return attestationReport(ctx, actorOf(req), req.params.id, reportData);
    },
  );

  async function finish(
    req: FastifyRequest,
    reply: FastifyReply,
    id: string,
    secret: LaunchSecret | undefined,
  ) {
    const actor = actorOf(req);
    const planned = await planFinishLaunch(ctx, id, secret !== undefined);
    if (isDryRun(req)) return answerDryRun(req, reply, ctx.inventory, planned.plan);
    if (planned.refusal) throw planned.refusal;
    try {
      const vm = await finishLaunch(ctx, actor, id, secret);
      return { vm: vm.id, name: vm.name, powerState: vm.powerState, attestationState: vm.attestationState };
    } catch (e) {
      if (e instanceof AuditedFailure) throw auditedProblem(e, req.url.split("?")[0] ?? req.url);
      throw e;
    }
  }

  app.post(
    "/v1/vms/:id/launch-secret",
    {
      config: { permission: "attestation.secret", action: "vm.launch-secret.inject" },
      schema: {
        tags: ["attestation"],
        summary:
          "Inject the owner's secret (LAUNCH_SECRET) and finish the launch; a packet the firmware refuses (BAD_MEASUREMENT) leaves the VM paused",
        params: IdParams,
        body: LaunchSecretBody,
        querystring: DryRunQuery,
        response: { 200: orPlan(LaunchFinishAnswer), ...errorResponses },
      },
    },
    async (req, reply) => finish(req, reply, req.params.id, checkLaunchSecret(req.body)),
  );

  app.post(
    "/v1/vms/:id/launch-finish",
    {
      config: { permission: "attestation.secret", action: "vm.launch-finish" },
      schema: {
        tags: ["attestation"],
        summary: "Finish an attested launch without a secret (LAUNCH_FINISH): the guest runs",
        params: IdParams,
        querystring: DryRunQuery,
        response: { 200: orPlan(LaunchFinishAnswer), ...errorResponses },
      },
    },
    async (req, reply) => finish(req, reply, req.params.id, undefined),
  );
}
