/** Who the token is (`GET /v1/me`): its name, roles and permissions. */
import type { ApiClient } from "./http.ts";
import type { ApiMe } from "./types.ts";

export function me(api: ApiClient): Promise<ApiMe> {
  return api.get<ApiMe>("/v1/me");
}
