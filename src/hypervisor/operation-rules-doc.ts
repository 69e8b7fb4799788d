/**
 * The operation table rendered as Markdown for docs/operation-rules.md, so the docs are generated from the same
 * table the code enforces (`npm run docs` rewrites the file; a test fails when it is stale).
 */
import { OPERATION_RULES, OPERATIONS, SECURITY_MODES } from "./operation-rules.ts";

export function renderOperationRules(): string {
  const lines = [
    "# What each security mode allows",
    "",
    "Generated from `src/hypervisor/operation-rules.ts` by `npm run docs` — edit the table, not this file.",
    "The hypervisor enforces it, the API answers `409` with the code and reason, `--what-if` reports it.",
    "",
    `| operation | ${SECURITY_MODES.join(" | ")} |`,
    `|---|${SECURITY_MODES.map(() => "---").join("|")}|`,
  ];
  for (const op of OPERATIONS) {
    const cells = SECURITY_MODES.map((m) => {
      const r = OPERATION_RULES[m][op];
      return r.allowed ? "allowed" : `refused: \`${r.code}\``;
    });
    lines.push(`| ${op} | ${cells.join(" | ")} |`);
  }
  lines.push(
    "",
    "A memory dump of an encrypted VM is allowed when its guest policy permits debug (SEV and SEV-ES: NODBG clear;",
    "SEV-SNP: DEBUG set): it then goes through the firmware's DBG_DECRYPT (SNP_DBG_DECRYPT).",
    "",
    "## Reasons",
    "",
  );
  for (const m of SECURITY_MODES) {
    for (const op of OPERATIONS) {
      const r = OPERATION_RULES[m][op];
      if (!r.allowed) lines.push(`- **${m} × ${op}** (\`${r.code}\`): ${r.reason}.`);
    }
  }
  return `${lines.join("\n")}\n`;
}
