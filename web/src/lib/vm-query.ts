/**
 * The VMs page's server-side state as API requests: the filter and page become `GET /v1/vms` query parameters
 * (the API filters and paginates; the dashboard never loads the fleet), and a selection — some rows, or "all
 * matching the filter" — becomes the bulk routes' selector, so 200,000 VMs are changed by one request.
 */
import type { SecurityMode } from "./types.ts";

export interface VmFilter {
  readonly namePrefix?: string;
  /** A host id, or "none" for unplaced VMs. */
  readonly hostId?: string;
  readonly powerState?: string;
  readonly securityMode?: SecurityMode | "";
  /** `key=value` pairs, comma-separated. */
  readonly labels?: string;
}

export const PAGE_SIZES = [25, 50, 100, 250] as const;

/** The query string of one page of `GET /v1/vms` (empty filter fields are left out). */
export function vmListQuery(
  filter: VmFilter,
  page: { limit: number; cursor?: string | null; sort?: ServerOrder | undefined },
): string {
  const q = new URLSearchParams();
  q.set("limit", String(page.limit));
  if (page.cursor) q.set("cursor", page.cursor);
  if (page.sort) q.set("sort", page.sort);
  for (const key of ["namePrefix", "hostId", "powerState", "securityMode", "labels"] as const) {
    const v = filter[key]?.trim();
    if (v) q.set(key, v);
  }
  return q.toString();
}

/** `app=web, env=prod` → { app: "web", env: "prod" }; pairs without '=' are ignored (the list query reports them). */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(",")) {
    const p = pair.trim();
    const i = p.indexOf("=");
    if (i > 0) out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

export type Selection =
  | { readonly kind: "ids"; readonly ids: readonly string[] }
  | { readonly kind: "filter" };

/** The bulk routes' selector for a selection: the ids, or the filter itself (every VM it matches, on every page). */
export function selectorFor(selection: Selection, filter: VmFilter): Record<string, unknown> {
  if (selection.kind === "ids") return { ids: [...selection.ids] };
  const s: Record<string, unknown> = {};
  if (filter.namePrefix?.trim()) s.namePrefix = filter.namePrefix.trim();
  if (filter.hostId?.trim()) s.hostId = filter.hostId.trim() === "none" ? null : filter.hostId.trim();
  if (filter.powerState?.trim()) s.powerState = filter.powerState.trim();
  if (filter.securityMode?.trim()) s.securityMode = filter.securityMode.trim();
  if (filter.labels?.trim()) {
    const labels = parseLabels(filter.labels);
    if (Object.keys(labels).length > 0) s.labels = labels;
  }
  return Object.keys(s).length === 0 ? { all: true } : s;
}

export type SortKey = "name" | "host" | "powerState" | "guestOs" | "securityMode" | "policy";
export interface Sort {
  readonly key: SortKey;
  readonly dir: "asc" | "desc";
}

/** Each column's sort key in `GET /v1/vms?sort=` (the server's names for them). */
const SERVER_KEYS = {
  name: "name",
  host: "host",
  powerState: "power",
  guestOs: "guestOs",
  securityMode: "mode",
  policy: "policy",
} as const satisfies Record<SortKey, string>;
type ServerKey = (typeof SERVER_KEYS)[SortKey];

/**
 * The orders `GET /v1/vms?sort=` pages in over the whole list: a column ascending, or with `-` descending. Host is
 * ordered by host id (not name), with the VMs on no host last ascending and first descending.
 */
export type ServerOrder = ServerKey | `-${ServerKey}`;

/** The server's order for a column sort: every column has one, so the whole list is sorted, never just a page. */
export function serverOrder(sort: Sort | undefined): ServerOrder | undefined {
  if (!sort) return undefined;
  const key = SERVER_KEYS[sort.key];
  return sort.dir === "asc" ? key : `-${key}`;
}

/** The next sort after clicking a column header: ascending first, then descending. */
export function nextSort(current: Sort | undefined, key: SortKey): Sort {
  return current?.key === key && current.dir === "asc" ? { key, dir: "desc" } : { key, dir: "asc" };
}
