/**
 * Finding things by the names people type: VMs and hosts by name or id, every page of a list. The API addresses
 * objects by id; the CLI accepts either, and a name that matches nothing is NOT_FOUND (exit 4) before anything
 * is changed.
 */
import { CiphervisorError } from "../../errors.ts";
import type { ApiClient, QueryValue } from "./http.ts";
import { RemoteError } from "./remote-error.ts";
import type { ApiHost, ApiVm, Page } from "./types.ts";

const VM_ID = /^vm_[0-9a-z]{26}$/;
const HOST_ID = /^host_[0-9a-z]{26}$/;

/** Every item of a paginated list (pages of `limit`). */
export async function listAll<T>(
  api: ApiClient,
  path: string,
  query: Readonly<Record<string, QueryValue>> = {},
  limit = 5000,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await api.get<Page<T>>(path, { query: { ...query, limit, cursor } });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

function notFoundVm(name: string): CiphervisorError {
  return new CiphervisorError("NOT_FOUND", `no VM named '${name}'`, { details: { vm: name } });
}

/** One VM by id or exact name. */
export async function findVm(api: ApiClient, nameOrId: string): Promise<ApiVm> {
  if (VM_ID.test(nameOrId)) {
    try {
      return await api.get<ApiVm>(`/v1/vms/${nameOrId}`);
    } catch (e) {
      if (!(e instanceof RemoteError && e.status === 404)) throw e;
    }
  }
  // Names are unique; a prefix query narrows the scan to names starting with it (web-1, web-10, …).
  let cursor: string | null = null;
  do {
    const page: Page<ApiVm> = await api.get<Page<ApiVm>>("/v1/vms", {
      query: { namePrefix: nameOrId, limit: 1000, cursor },
    });
    const hit = page.items.find((v) => v.name === nameOrId);
    if (hit) return hit;
    cursor = page.nextCursor;
  } while (cursor !== null);
  throw notFoundVm(nameOrId);
}

/**
 * VMs by id or name, in the order given (duplicates once). NOT_FOUND naming the missing ones, before anything is
 * changed: a typo in a list of 500 must not turn into 499 changes and a surprise.
 */
export async function findVms(api: ApiClient, names: readonly string[]): Promise<ApiVm[]> {
  const unique = [...new Set(names)];
  const found = new Map<string, ApiVm>();
  if (unique.length <= 20) {
    const missing: string[] = [];
    for (const n of unique) {
      try {
        found.set(n, await findVm(api, n));
      } catch (e) {
        if (e instanceof CiphervisorError && e.code === "NOT_FOUND") missing.push(n);
        else throw e;
      }
    }
    if (missing.length > 0) throw missingVms(missing);
  } else {
    // Many names (a --from-file list): one pass over the inventory beats one query per name.
    const all = await listAll<ApiVm>(api, "/v1/vms");
    const byName = new Map(all.map((v) => [v.name, v]));
    const byId = new Map(all.map((v) => [v.id, v]));
    const missing: string[] = [];
    for (const n of unique) {
      const vm = byName.get(n) ?? byId.get(n);
      if (vm) found.set(n, vm);
      else missing.push(n);
    }
    if (missing.length > 0) throw missingVms(missing);
  }
  const seen = new Set<string>();
  const out: ApiVm[] = [];
  for (const n of unique) {
    const vm = found.get(n);
    if (vm && !seen.has(vm.id)) {
      seen.add(vm.id);
      out.push(vm);
    }
  }
  return out;
}

function missingVms(missing: readonly string[]): CiphervisorError {
  if (missing.length === 1) return notFoundVm(missing[0] ?? "");
  const shown = missing
    .slice(0, 5)
    .map((n) => `'${n}'`)
    .join(", ");
  const more = missing.length > 5 ? ` and ${missing.length - 5} more` : "";
  return new CiphervisorError("NOT_FOUND", `no VMs named ${shown}${more}; nothing was changed`, {
    details: { missing: missing.length },
  });
}

/** Every host. */
export function listHosts(api: ApiClient): Promise<ApiHost[]> {
  return listAll<ApiHost>(api, "/v1/hosts");
}

/** One host by id or exact name. */
export async function findHost(
  api: ApiClient,
  nameOrId: string,
  hosts?: readonly ApiHost[],
): Promise<ApiHost> {
  if (!hosts && HOST_ID.test(nameOrId)) {
    try {
      return await api.get<ApiHost>(`/v1/hosts/${nameOrId}`);
    } catch (e) {
      if (!(e instanceof RemoteError && e.status === 404)) throw e;
    }
  }
  const all = hosts ?? (await listHosts(api));
  const hit = all.find((h) => h.name === nameOrId || h.id === nameOrId);
  if (!hit)
    throw new CiphervisorError("NOT_FOUND", `no host named '${nameOrId}'`, { details: { host: nameOrId } });
  return hit;
}
