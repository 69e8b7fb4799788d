/**
 * Asking the server what a request would do: the same request with `?dryRun=true` (its real checks and plan,
 * nothing changed, one audit record). Every `--what-if` goes through here.
 */
import type { ApiClient } from "./client/http.ts";
import type { ApiPlan } from "./client/types.ts";

export function dryRun(
  api: ApiClient,
  path: string,
  options: { readonly method?: "POST" | "PUT" | "DELETE"; readonly body?: unknown } = {},
): Promise<ApiPlan> {
  const method = options.method ?? "POST";
  return api
    .request<ApiPlan>(method, path, {
      query: { dryRun: true },
      ...(method === "DELETE" ? {} : { body: options.body ?? {} }),
    })
    .then((r) => r.body);
}
