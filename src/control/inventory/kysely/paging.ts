/**
 * Keyset pagination: every list is ordered by a unique key (id, or seq for audit; a sorted VM list by its column
 * and then id), and a cursor is that key of the last item, opaque to clients (base64url JSON). Unlike offsets, a
 * page boundary stays put while rows are added or removed elsewhere in the list.
 */
import { CiphervisorError } from "../../../errors.ts";
import type { Page, PageRequest } from "../types.ts";

export const DEFAULT_PAGE_SIZE = 100;
/** vCenter's REST cap is 4,000 VMs per call; allow a little more. */
export const MAX_PAGE_SIZE = 5000;

/** The requested page size, validated. */
export function pageLimit(page: PageRequest | undefined): number {
  const limit = page?.limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new CiphervisorError("INVALID_INPUT", `page limit must be an integer from 1 to ${MAX_PAGE_SIZE}`, {
      details: { field: "limit" },
    });
  }
  return limit;
}

export function encodeCursor(key: string | number): string {
  return Buffer.from(JSON.stringify({ k: key }), "utf8").toString("base64url");
}

function decode(cursor: string): unknown {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    return typeof v === "object" && v !== null && "k" in v ? v.k : undefined;
  } catch {
    return undefined;
  }
}

function badCursor(): CiphervisorError {
  return new CiphervisorError("INVALID_INPUT", "invalid page cursor", { details: { field: "cursor" } });
}

/** The id after which the page starts, or undefined for the first page. */
export function stringCursor(page: PageRequest | undefined): string | undefined {
  if (page?.cursor === undefined || page.cursor === null || page.cursor === "") return undefined;
  const k = decode(page.cursor);
  if (typeof k !== "string") throw badCursor();
  return k;
}

/** The sequence number after which the page starts, or undefined for the first page. */
export function numberCursor(page: PageRequest | undefined): number | undefined {
  if (page?.cursor === undefined || page.cursor === null || page.cursor === "") return undefined;
  const k = decode(page.cursor);
  if (typeof k !== "number" || !Number.isSafeInteger(k)) throw badCursor();
  return k;
}

/** A sort value a cursor may carry: a column's text or integer, or null (a nullable column's missing value). */
export type SortValue = string | number | null;

/**
 * Where a page of a sorted list starts: after the row with this sort value and id (the tie-break), in `order`. The
 * cursor names its order so that it cannot silently continue another one.
 */
export interface OrderedKey {
  readonly order: string;
  readonly value: SortValue;
  readonly id: string;
}

/** A sorted list's cursor: the order, then the last row's sort value and id. */
export function encodeOrderedCursor(key: OrderedKey): string {
  return Buffer.from(JSON.stringify({ k: [key.order, key.value, key.id] }), "utf8").toString("base64url");
}

/**
 * The key of a cursor that lists share between an id order and sorted orders: a string for the id order (what
 * `stringCursor` reads), an `OrderedKey` for a sorted one, undefined for the first page.
 */
export function orderedCursor(page: PageRequest | undefined): string | OrderedKey | undefined {
  if (page?.cursor === undefined || page.cursor === null || page.cursor === "") return undefined;
  const k = decode(page.cursor);
  if (typeof k === "string") return k;
  if (!Array.isArray(k) || k.length !== 3) throw badCursor();
  const [order, value, id] = k as unknown[];
  const valueOk = value === null || typeof value === "string" || Number.isSafeInteger(value);
  if (typeof order !== "string" || typeof id !== "string" || !valueOk) throw badCursor();
  return { order, value: value as SortValue, id };
}

/** Builds a page from `limit + 1` fetched rows (the extra row only tells that another page exists). */
export function toPage<T>(
  rows: T[],
  limit: number,
  keyOf: (item: T) => string | number | OrderedKey,
): Page<T> {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  if (last === undefined) return { items, nextCursor: null };
  const key = keyOf(last);
  return { items, nextCursor: typeof key === "object" ? encodeOrderedCursor(key) : encodeCursor(key) };
}
