/**
 * API tokens: 32 random bytes shown once at creation (`cvt_` + base64url), stored only as SHA-256. A lookup hashes
 * the presented secret and finds the row by hash. The secret travels in a `TokenSecret` wrapper whose JSON and
 * inspect forms are redacted, so logging an issued token by accident prints nothing useful.
 */
import { createHash, randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { CiphervisorError } from "../errors.ts";
import type { InventoryScope } from "./inventory/inventory.ts";
import type { TokenRecord } from "./inventory/types.ts";
import { parseRoles } from "./rbac.ts";

/** Every token starts with this, so secret scanners and people recognise one. */
export const TOKEN_PREFIX = "cvt_";
const TOKEN_SHAPE = /^cvt_[A-Za-z0-9_-]{43}$/;

/** A token secret. `reveal()` is the only way to read it; everything else prints `[redacted]`. */
export class TokenSecret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The secret, to show once to its owner (or write to `admin.token` with mode 0600). */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return "[redacted token]";
  }

  toJSON(): string {
    return "[redacted token]";
  }

  [inspect.custom](): string {
    return "TokenSecret [redacted]";
  }
}

/** Lower-case hex SHA-256 of a secret: what the store keeps and looks up by. */
export function hashToken(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export interface IssueTokenRequest {
  readonly name: string;
  readonly roles: readonly string[];
  /** The id of the token that created this one (null for the first admin token). */
  readonly createdBy?: string | null;
  readonly expiresAt?: string | null;
}

export interface IssuedToken {
  readonly token: TokenRecord;
  readonly secret: TokenSecret;
}

/**
 * Creates a token. Call inside the transaction that also appends its `token.create` audit record.
 *
 * @example
 * ```ts
 * const { token, secret } = await inventory.transaction(async (tx) => {
 *   const issued = await issueToken(tx, { name: "ci", roles: ["operator"] });
 *   await tx.audit.append({ actor, action: "token.create", target: issued.token.id, outcome: "ok" });
 *   return issued;
 * });
 * console.log(secret.reveal()); // shown once
 * ```
 */
export async function issueToken(
  scope: Pick<InventoryScope, "tokens">,
  req: IssueTokenRequest,
): Promise<IssuedToken> {
  const roles = parseRoles(req.roles);
  const secret = `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  const token = await scope.tokens.create({
    name: req.name,
    hash: hashToken(secret),
    roles,
    createdBy: req.createdBy ?? null,
    expiresAt: req.expiresAt ?? null,
  });
  return { token, secret: new TokenSecret(secret) };
}

/**
 * The token record for a presented secret; UNAUTHENTICATED when it is malformed, unknown, revoked or expired.
 * Error messages never contain the secret.
 */
export async function authenticateToken(
  scope: Pick<InventoryScope, "tokens">,
  secret: string,
  now: Date = new Date(),
): Promise<TokenRecord> {
  if (!TOKEN_SHAPE.test(secret)) throw new CiphervisorError("UNAUTHENTICATED", "malformed API token");
  const token = await scope.tokens.findByHash(hashToken(secret));
  if (!token) throw new CiphervisorError("UNAUTHENTICATED", "unknown API token");
  if (token.revokedAt !== null)
    throw new CiphervisorError("UNAUTHENTICATED", `API token '${token.name}' was revoked`);
  if (token.expiresAt !== null && Date.parse(token.expiresAt) <= now.getTime()) {
    throw new CiphervisorError("UNAUTHENTICATED", `API token '${token.name}' has expired`);
  }
  return token;
}
