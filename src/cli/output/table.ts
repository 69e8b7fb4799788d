/** Plain aligned tables for people: a header row, then one row per item, columns two spaces apart. */

export interface Column<T> {
  readonly header: string;
  readonly value: (row: T) => string | number;
  /** Right-align (counts). */
  readonly right?: boolean;
}

/** Renders `rows` under `columns`; trailing spaces are trimmed so output diffs cleanly. */
export function table<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  const cells = rows.map((r) => columns.map((c) => String(c.value(r))));
  const widths = columns.map((c, i) =>
    Math.max(c.header.length, ...cells.map((row) => (row[i] ?? "").length)),
  );
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (columns[i]?.right ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(columns.map((c) => c.header)), ...cells.map(line)].join("\n")}\n`;
}

/** `key: value` lines for one object, keys aligned. */
export function fields(entries: readonly (readonly [string, string | number])[]): string {
  const w = Math.max(0, ...entries.map(([k]) => k.length));
  return entries
    .map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${v}`.trimEnd())
    .join("\n")
    .concat("\n");
}
