/** Token, audit and identity schemas. A token's secret appears in exactly one response: the one creating it. */
import { Type } from "typebox";
import { AUDIT_OUTCOMES } from "../../control/audit/record.ts";
import { ROLES } from "../../control/rbac.ts";
import { Text } from "./common.ts";

export const TokenSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    roles: Type.Array(Type.String()),
    createdAt: Type.String(),
    createdBy: Type.Union([Type.String(), Type.Null()]),
    expiresAt: Type.Union([Type.String(), Type.Null()]),
    revokedAt: Type.Union([Type.String(), Type.Null()]),
    lastUsedAt: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: "Token" },
);

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: "^[\\x20-\\x7e]+$" }),
    roles: Type.Array(Type.Enum([...ROLES]), { minItems: 1, maxItems: ROLES.length, uniqueItems: true }),
    expiresAt: Type.Optional(Text({ maxLength: 40, description: "ISO 8601 date-time" })),
  },
  { additionalProperties: false },
);

export const CreatedTokenSchema = Type.Object({
  token: Type.Ref("Token"),
  secret: Type.String({
    description: "Shown once; store it now. Send it as 'Authorization: Bearer <secret>'.",
  }),
});

export const AuditRecordSchema = Type.Object(
  {
    seq: Type.Integer(),
    time: Type.String(),
    actor: Type.Object({ id: Type.Union([Type.String(), Type.Null()]), name: Type.String() }),
    action: Type.String(),
    target: Type.String(),
    outcome: Type.String(),
    details: Type.Record(Type.String(), Type.Unknown()),
    prevHash: Type.String(),
    hash: Type.String(),
  },
  { $id: "AuditRecord" },
);

export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 100 })),
    cursor: Type.Optional(Text({ maxLength: 512 })),
    action: Type.Optional(Text({ maxLength: 100 })),
    target: Type.Optional(Text({ maxLength: 255 })),
    actorId: Type.Optional(Text({ maxLength: 64 })),
    outcome: Type.Optional(Type.Enum([...AUDIT_OUTCOMES])),
  },
  { additionalProperties: false },
);

export const AuditVerificationSchema = Type.Object({
  ok: Type.Boolean(),
  verified: Type.Integer(),
  lastSeq: Type.Integer(),
  lastHash: Type.String(),
  firstBad: Type.Union([
    Type.Object({ seq: Type.Integer(), problem: Type.String(), message: Type.String() }),
    Type.Null(),
  ]),
});

export const MeSchema = Type.Object({
  tokenId: Type.String(),
  name: Type.String(),
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String()),
});
