/**
 * Token administration, audited: issuing (the secret is returned once, to the caller, and never stored or logged)
 * and revoking. These run synchronously rather than as queued operations because an operation's stored
 * parameters and results are readable later, and a secret must not be.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Inventory } from "../inventory/inventory.ts";
import type { Actor, TokenRecord } from "../inventory/types.ts";
import { parseRoles } from "../rbac.ts";
import { type IssuedToken, issueToken } from "../tokens.ts";

export interface CreateTokenRequest {
  readonly name: string;
  readonly roles: readonly string[];
  readonly expiresAt?: string | null;
}

/** INVALID_INPUT for a request that cannot be issued (unknown roles, a bad expiry). */
export function checkTokenRequest(req: CreateTokenRequest): void {
  if (req.expiresAt !== undefined && req.expiresAt !== null && Number.isNaN(Date.parse(req.expiresAt))) {
    throw new CiphervisorError("INVALID_INPUT", "expiresAt must be an ISO 8601 date-time", {
      details: { field: "expiresAt" },
    });
  }
  parseRoles(req.roles);
}

/** Issues a token and appends its `token.create` record in one transaction. */
export async function createToken(
  inventory: Inventory,
  actor: Actor,
  req: CreateTokenRequest,
): Promise<IssuedToken> {
  checkTokenRequest(req);
  return inventory.transaction(async (tx) => {
    const issued = await issueToken(tx, {
      name: req.name,
      roles: req.roles,
      createdBy: actor.id,
      expiresAt: req.expiresAt ?? null,
    });
    await tx.audit.append({
      actor,
      action: "token.create",
      target: issued.token.id,
      outcome: "ok",
      details: { name: issued.token.name, roles: [...issued.token.roles], expiresAt: issued.token.expiresAt },
    });
    return issued;
  });
}

/** Revokes a token (NOT_FOUND when absent) and appends its `token.revoke` record in one transaction. */
export function revokeToken(inventory: Inventory, actor: Actor, id: string): Promise<TokenRecord> {
  return inventory.transaction(async (tx) => {
    const token = await tx.tokens.revoke(id);
    await tx.audit.append({
      actor,
      action: "token.revoke",
      target: id,
      outcome: "ok",
      details: { name: token.name },
    });
    return token;
  });
}
