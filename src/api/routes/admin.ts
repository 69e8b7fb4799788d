/**
 * Tokens (admin), the audit log (auditor: list and verify; nobody can edit or delete it — there is no route for
 * that, and the database refuses it), and `/v1/me`.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { verifyAuditChain } from "../../control/audit/verify.ts";
import { planCreateToken, planRevokeToken } from "../../control/plan/admin.ts";
import { permissionsOf } from "../../control/rbac.ts";
import type { ControlContext } from "../../control/services/context.ts";
import { createToken, revokeToken } from "../../control/services/tokens.ts";
import { CiphervisorError } from "../../errors.ts";
import type { Principal } from "../auth.ts";
import { answerDryRun, DryRunQuery, isDryRun, orPlan } from "../dry-run.ts";
import {
  AuditQuery,
  AuditVerificationSchema,
  CreatedTokenSchema,
  CreateTokenBody,
  MeSchema,
} from "../schemas/admin.ts";
import { errorResponses, IdParams, PageOf, PageQuery } from "../schemas/common.ts";
import { auditView, tokenView } from "../views.ts";

export function adminRoutes(root: FastifyInstance, ctx: ControlContext): void {
  const inv = ctx.inventory;
  const app = root.withTypeProvider<TypeBoxTypeProvider>();

  const principalOf = (p: { principal?: Principal }) => {
    if (!p.principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
    return p.principal;
  };

  app.get(
    "/v1/me",
    {
      config: { permission: "authenticated", action: "me.read" },
      schema: {
        tags: ["tokens"],
        summary: "Who am I: the token's name, roles and permissions",
        response: { 200: MeSchema, ...errorResponses },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return {
        tokenId: p.tokenId,
        name: p.actor.name,
        roles: [...p.roles],
        permissions: [...permissionsOf(p.roles)].sort(),
      };
    },
  );

  app.get(
    "/v1/tokens",
    {
      config: { permission: "token.manage", action: "token.list" },
      schema: {
        tags: ["tokens"],
        summary: "List tokens (never their secrets)",
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: { 200: PageOf(Type.Ref("Token"), "TokenPage"), ...errorResponses },
      },
    },
    async (req) => {
      const page = await inv.tokens.list({ limit: req.query.limit ?? 100, cursor: req.query.cursor ?? null });
      return { items: page.items.map(tokenView), nextCursor: page.nextCursor };
    },
  );

  app.post(
    "/v1/tokens",
    {
      config: { permission: "token.manage", action: "token.create" },
      schema: {
        tags: ["tokens"],
        summary: "Issue a token; its secret is in this response only",
        body: CreateTokenBody,
        querystring: DryRunQuery,
        response: { 200: Type.Ref("DryRunPlan"), 201: CreatedTokenSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const request = {
        name: req.body.name,
        roles: req.body.roles,
        ...(req.body.expiresAt === undefined ? {} : { expiresAt: req.body.expiresAt }),
      };
      if (isDryRun(req)) return answerDryRun(req, reply, inv, (await planCreateToken(request)).plan);
      const issued = await createToken(inv, principalOf(req).actor, request);
      return reply
        .code(201)
        .header("cache-control", "no-store")
        .header("location", `/v1/tokens/${issued.token.id}`)
        .send({ token: tokenView(issued.token), secret: issued.secret.reveal() });
    },
  );

  app.delete(
    "/v1/tokens/:id",
    {
      config: { permission: "token.manage", action: "token.revoke" },
      schema: {
        tags: ["tokens"],
        summary: "Revoke a token",
        params: IdParams,
        querystring: DryRunQuery,
        response: { 200: orPlan(Type.Ref("Token")), ...errorResponses },
      },
    },
    async (req, reply) => {
      if (isDryRun(req))
        return answerDryRun(req, reply, inv, (await planRevokeToken(ctx, req.params.id)).plan);
      return tokenView(await revokeToken(inv, principalOf(req).actor, req.params.id));
    },
  );

  app.get(
    "/v1/audit",
    {
      config: { permission: "audit.read", action: "audit.list" },
      schema: {
        tags: ["audit"],
        summary: "The hash-chained audit log, in order",
        querystring: AuditQuery,
        response: { 200: PageOf(Type.Ref("AuditRecord"), "AuditPage"), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query;
      const page = await inv.audit.list(
        {
          ...(q.action === undefined ? {} : { action: q.action }),
          ...(q.target === undefined ? {} : { target: q.target }),
          ...(q.actorId === undefined ? {} : { actorId: q.actorId }),
          ...(q.outcome === undefined ? {} : { outcome: q.outcome }),
        },
        { limit: q.limit ?? 100, cursor: q.cursor ?? null },
      );
      return { items: page.items.map(auditView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/audit/verify",
    {
      config: { permission: "audit.read", action: "audit.verify" },
      schema: {
        tags: ["audit"],
        summary: "Verify the whole chain; names the first bad record",
        response: { 200: AuditVerificationSchema, ...errorResponses },
      },
    },
    async () => verifyAuditChain(inv),
  );
}
