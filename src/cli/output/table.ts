/**
 * Plain aligned tables for people: a header row, then one row per item, columns two spaces apart. Every value is
 * shown through `visible()`: whatever a server (or a database someone wrote to directly) holds, the terminal gets
 * no escape sequence, bell or line break from it.
 */

// C0 controls, DEL and C1 controls (U+0080–U+009F; U+009B alone starts a CSI sequence on many terminals).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** `text` with every control character written out as `\uXXXX` (ESC → `\u001b`), so it prints as itself. */
export function visible(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export interface Column<T> {
  readonly header: string;
  readonly value: (row: T) => string | number;
  /** Right-align (counts). */
  readonly right?: boolean;
}

/** Renders `rows` under `columns`; trailing spaces are trimmed so output diffs cleanly. */
export function table<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  const cells = rows.map((r) => columns.map((c) => visible(String(c.value(r)))));
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
    .map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${visible(String(v))}`.trimEnd())
    .join("\n")
    .concat("\n");
}
