/**
 * Multi-row statements for the bulk paths. Rows are inserted in chunks of a fixed size so that every full chunk
 * has the same SQL text (cached as one prepared statement on SQLite), and the SQL is generated directly instead of
 * through Kysely's builder, whose per-value node building costs more than SQLite's insert at 10,000 rows.
 */
import { CompiledQuery, type Kysely } from "kysely";
import type { InventoryDialect } from "../inventory.ts";
import type { Db } from "./schema.ts";

/** Splits `items` into chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Rows per multi-row statement for a table of `columns` columns. SQLite runs in-process, so mid-sized cached
 * statements are fastest; PostgreSQL pays a round trip per statement, so it gets large ones (its limit is 65,535
 * parameters, SQLite's 32,766).
 */
export function rowsPerStatement(dialect: InventoryDialect, columns: number): number {
  return Math.max(1, Math.floor((dialect === "postgres" ? 16000 : 2000) / columns));
}

const sqlCache = new Map<string, string>();

function insertSql(
  dialect: InventoryDialect,
  table: string,
  columns: readonly string[],
  rows: number,
  suffix: string,
): string {
  const key = `${dialect}\0${table}\0${columns.join(",")}\0${rows}\0${suffix}`;
  let text = sqlCache.get(key);
  if (text === undefined) {
    let n = 0;
    const tuple = () => `(${columns.map(() => (dialect === "postgres" ? `$${++n}` : "?")).join(",")})`;
    const values = Array.from({ length: rows }, tuple).join(",");
    text = `insert into "${table}" (${columns.map((c) => `"${c}"`).join(",")}) values ${values}${suffix}`;
    if (sqlCache.size > 500) sqlCache.clear();
    sqlCache.set(key, text);
  }
  return text;
}

/**
 * Inserts `rows` into `table` with multi-row statements. `suffix` (e.g. an ON CONFLICT clause, the same in both
 * dialects) is appended to each statement. Column names are trusted identifiers from this package, never input.
 */
export async function insertRows<T extends object>(
  db: Kysely<Db>,
  dialect: InventoryDialect,
  table: keyof Db & string,
  columns: readonly (keyof T & string)[],
  rows: readonly T[],
  suffix = "",
): Promise<void> {
  const size = rowsPerStatement(dialect, columns.length);
  for (const part of chunks(rows, size)) {
    const params: unknown[] = [];
    for (const row of part) for (const c of columns) params.push(row[c]);
    await db.executeQuery(CompiledQuery.raw(insertSql(dialect, table, columns, part.length, suffix), params));
  }
}
