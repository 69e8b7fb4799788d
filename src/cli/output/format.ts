/**
 * How a command prints: a table (default), one JSON document (`--json` or `-o json`), one name a line (`-o name`,
 * the shape `--from-file -` reads back), or a wider table (`-o wide`).
 */
import { CiphervisorError } from "../../errors.ts";
import { visible } from "./table.ts";

export const OUTPUT_MODES = ["table", "wide", "json", "name"] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

export interface OutputFlags {
  readonly json?: boolean;
  readonly output?: string;
  readonly quiet?: boolean;
}

/** The output mode the flags ask for; USAGE when they contradict each other. */
export function outputMode(flags: OutputFlags): OutputMode {
  const o = flags.output;
  if (o !== undefined && !(OUTPUT_MODES as readonly string[]).includes(o)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `-o/--output must be one of ${OUTPUT_MODES.join(", ")}, got '${o}'`,
    );
  }
  if (flags.json === true && o !== undefined && o !== "json") {
    throw new CiphervisorError("USAGE", `--json and -o ${o} ask for different outputs; give one`);
  }
  return flags.json === true ? "json" : ((o as OutputMode | undefined) ?? "table");
}

/**
 * A count with thousands separators, `10,000`, as `toLocaleString("en-US")` writes it for integers. Not that call:
 * its first use loads ICU's number formatting, ~15 ms of a bulk command's run on this class of machine.
 */
export function count(n: number): string {
  if (!Number.isSafeInteger(n)) return String(n);
  const digits = String(Math.abs(n));
  let out = "";
  for (let i = digits.length; i > 0; i -= 3)
    out = digits.slice(Math.max(0, i - 3), i) + (out ? `,${out}` : "");
  return n < 0 ? `-${out}` : out;
}

/** One JSON document and a newline. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * The one error line, `ciphervisor: <message> [CODE]`: the message's first line, its control characters shown as
 * `\uXXXX` rather than sent (a message may quote a server's text or the user's own argument).
 */
export function errorLine(message: string, code: string): string {
  return `ciphervisor: ${visible(message.split("\n")[0] ?? "")} [${visible(code)}]\n`;
}
