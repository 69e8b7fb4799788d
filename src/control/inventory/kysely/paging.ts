/**
 * Keyset pagination: every list is ordered by a unique key (id, or seq for audit), and a cursor is that key of the
 * last item, opaque to clients (base64url JSON). Unlike offsets, a page boundary stays put while rows are added or
 * removed elsewhere in the list.
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

/** Builds a page from `limit + 1` fetched rows (the extra row only tells that another page exists). */
export function toPage<T>(rows: T[], limit: number, keyOf: (item: T) => string | number): Page<T> {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: last === undefined ? null : encodeCursor(keyOf(last)) };
}
