/**
 * `ciphervisor audit list|verify`: the hash-chained audit log. `verify` recomputes the chain on the server and
 * exits 1 with the first bad record when it does not hold.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseChoice, parseIntFlag } from "../args.ts";
import type { ApiAuditRecord, ApiAuditVerification, Page } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor } from "../options.ts";
import { json } from "../output/format.ts";
import { table } from "../output/table.ts";

const OUTCOMES = ["ok", "failed", "denied"] as const;

function details(r: ApiAuditRecord): string {
  const d = r.details;
  const keys = ["operationId", "code", "reason", "name", "host"].filter((k) => d[k] !== undefined);
  return keys.map((k) => `${k}=${String(d[k])}`).join(" ");
}

export function registerAudit(program: Command, io: CliIo): void {
  const audit = program.command("audit").description("the hash-chained audit log: list, verify");

  apiCommand(
    audit
      .command("list")
      .description("audit records in order (oldest first)")
      .option("--action <action>", "e.g. vm.security.enable")
      .option("--target <id>", "a VM, host or token id")
      .option("--actor <token-id>", "records of one token")
      .option("--outcome <outcome>", OUTCOMES.join("|"))
      .option("--cursor <cursor>", "continue where a previous page ended")
      .option("--limit <n>", "at most this many", "100"),
  ).action(
    async (
      flags: CommonFlags & {
        action?: string;
        target?: string;
        actor?: string;
        outcome?: string;
        cursor?: string;
        limit: string;
      },
    ) => {
      const mode = modeFor(flags);
      const limit = parseIntFlag(flags.limit, "--limit", 1, 5000);
      const outcome =
        flags.outcome === undefined ? undefined : parseChoice(flags.outcome, "--outcome", OUTCOMES);
      const page = await apiFor(io, flags).get<Page<ApiAuditRecord>>("/v1/audit", {
        query: {
          limit,
          action: flags.action,
          target: flags.target,
          actorId: flags.actor,
          outcome,
          cursor: flags.cursor,
        },
      });
      if (mode === "json") {
        io.out(json(page));
        return;
      }
      io.out(
        table(
          [
            { header: "SEQ", value: (r: ApiAuditRecord) => r.seq, right: true },
            { header: "TIME", value: (r: ApiAuditRecord) => r.time },
            { header: "ACTOR", value: (r: ApiAuditRecord) => r.actor.name },
            { header: "ACTION", value: (r: ApiAuditRecord) => r.action },
            { header: "TARGET", value: (r: ApiAuditRecord) => r.target },
            { header: "OUTCOME", value: (r: ApiAuditRecord) => r.outcome },
            { header: "DETAILS", value: details },
          ],
          page.items,
        ),
      );
      if (page.nextCursor !== null && flags.quiet !== true) {
        io.err(`ciphervisor: more records: --cursor ${page.nextCursor}\n`);
      }
    },
  );

  apiCommand(
    audit.command("verify").description("recompute the hash chain; exit 1 at the first bad record"),
  ).action(async (flags: CommonFlags) => {
    const mode = modeFor(flags);
    const v = await apiFor(io, flags).get<ApiAuditVerification>("/v1/audit/verify");
    if (mode === "json") io.out(json(v));
    if (!v.ok) {
      const bad = v.firstBad;
      throw new CiphervisorError(
        "AUDIT_CHAIN_BROKEN",
        `the audit chain does not hold${bad ? ` at record ${bad.seq} (${bad.problem}): ${bad.message}` : ""}; ${v.verified} records before it verified`,
      );
    }
    if (mode !== "json")
      io.out(`audit chain ok: ${v.verified} records verified, head ${v.lastSeq} ${v.lastHash}\n`);
  });
}
