import { MODE_LABEL } from "../lib/format.ts";
import type { SecurityMode } from "../lib/types.ts";

/** none / SEV / SEV-ES, in colours that keep a 4.5:1 contrast, with the text itself saying the mode. */
export function ModeBadge({ mode }: { mode: SecurityMode }) {
  return <span class={`badge mode-${mode}`}>{MODE_LABEL[mode]}</span>;
}
