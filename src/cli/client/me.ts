/** Who the token is (`GET /v1/me`): what-if reports name the permission a real run would be refused for. */
import type { ApiClient } from "./http.ts";

export interface Me {
  readonly tokenId: string;
  readonly name: string;
  readonly roles: string[];
  readonly permissions: string[];
}

export function me(api: ApiClient): Promise<Me> {
  return api.get<Me>("/v1/me");
}

/** The permissions of `needed` the token lacks, as a refusal reason, or undefined when it has them all. */
export function lacking(who: Me, needed: readonly string[]): string | undefined {
  const missing = needed.filter((p) => !who.permissions.includes(p));
  if (missing.length === 0) return undefined;
  return `this request needs ${missing.map((p) => `'${p}'`).join(" and ")}; token '${who.name}' has roles ${who.roles.join(", ")}`;
}
