/**
 * `ciphervisor token create|list|revoke`: API tokens. A new token's secret is shown exactly once — on stdout, or
 * written to `--out FILE` (mode 0600) so it never touches the terminal; lists show names and roles, never secrets.
 */
import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { collect } from "../args.ts";
import type { ApiClient } from "../client/http.ts";
import { listAll } from "../client/lookup.ts";
import type { ApiToken } from "../client/types.ts";
import { dryRun } from "../dry-run.ts";
import type { CliIo } from "../io.ts";
import {
  apiCommand,
  apiFor,
  type CommonFlags,
  type MutatingFlags,
  modeFor,
  mutatingOptions,
} from "../options.ts";
import { json } from "../output/format.ts";
import { table } from "../output/table.ts";
import { printPlan } from "../output/what-if.ts";

async function findToken(api: ApiClient, idOrName: string): Promise<ApiToken> {
  const all = await listAll<ApiToken>(api, "/v1/tokens", {}, 1000);
  const byId = all.find((t) => t.id === idOrName);
  if (byId) return byId;
  const named = all.filter((t) => t.name === idOrName && t.revokedAt === null);
  if (named.length > 1) {
    throw new CiphervisorError(
      "CONFLICT",
      `${named.length} active tokens are named '${idOrName}'; give the token id`,
    );
  }
  const hit = named[0];
  if (!hit) throw new CiphervisorError("NOT_FOUND", `no token '${idOrName}'`);
  return hit;
}

export function registerToken(program: Command, io: CliIo): void {
  const token = program.command("token").description("API tokens: create, list, revoke");

  mutatingOptions(
    apiCommand(
      token
        .command("create")
        .argument("<name>", "a name for the token (shown in the audit log)")
        .description("issue a token; its secret is shown once")
        .option(
          "--role <role>",
          "a role (repeatable), e.g. viewer, operator, security-admin; the server names every role if one is unknown",
          collect,
        )
        .option("--expires <time>", "ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z")
        .option("--out <file>", "write the secret to this file (mode 0600) instead of stdout"),
    ),
  ).action(
    async (name: string, flags: MutatingFlags & { role?: string[]; expires?: string; out?: string }) => {
      const mode = modeFor(flags);
      const roles = flags.role ?? [];
      if (roles.length === 0) throw new CiphervisorError("USAGE", "give at least one --role");
      const body = {
        name,
        roles: [...new Set(roles)],
        ...(flags.expires === undefined ? {} : { expiresAt: flags.expires }),
      };
      const api = apiFor(io, flags);
      if (flags.whatIf) {
        printPlan(io, mode, `token create ${name}`, await dryRun(api, "/v1/tokens", { body }));
        return;
      }
      const created = await api.post<{ token: ApiToken; secret: string }>("/v1/tokens", body);
      if (flags.out !== undefined) {
        try {
          writeFileSync(flags.out, `${created.secret}\n`, { mode: 0o600, flag: "wx" });
        } catch (e) {
          throw new CiphervisorError(
            "IO",
            `--out ${flags.out}: ${(e as NodeJS.ErrnoException).code === "EEXIST" ? "the file exists; the token was created (revoke it, or read it nowhere)" : (e as Error).message}; token ${created.token.id}`,
            { cause: e },
          );
        }
        io.out(
          mode === "json"
            ? json({ token: created.token, secretFile: flags.out })
            : `created token ${created.token.name} (${created.token.id}); secret written to ${flags.out}\n`,
        );
        return;
      }
      if (mode === "json") io.out(json(created));
      else {
        io.out(`${created.secret}\n`);
        if (flags.quiet !== true) {
          io.err(
            `ciphervisor: created token ${created.token.name} (${created.token.id}); the secret above is shown only this once\n`,
          );
        }
      }
    },
  );

  apiCommand(token.command("list").description("list tokens (never their secrets)"), { name: true }).action(
    async (flags: CommonFlags) => {
      const mode = modeFor(flags, true);
      const tokens = await listAll<ApiToken>(apiFor(io, flags), "/v1/tokens", {}, 1000);
      if (mode === "name") io.out(tokens.map((t) => `${t.id}\n`).join(""));
      else if (mode === "json") io.out(json(tokens));
      else
        io.out(
          table(
            [
              { header: "ID", value: (t: ApiToken) => t.id },
              { header: "NAME", value: (t: ApiToken) => t.name },
              { header: "ROLES", value: (t: ApiToken) => t.roles.join(",") },
              { header: "STATE", value: (t: ApiToken) => (t.revokedAt ? "revoked" : "active") },
              { header: "EXPIRES", value: (t: ApiToken) => t.expiresAt ?? "-" },
              { header: "LAST-USED", value: (t: ApiToken) => t.lastUsedAt ?? "-" },
            ],
            tokens,
          ),
        );
    },
  );

  mutatingOptions(
    apiCommand(token.command("revoke").argument("<token>", "token id or name").description("revoke a token")),
  ).action(async (idOrName: string, flags: MutatingFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const t = await findToken(api, idOrName);
    if (flags.whatIf) {
      printPlan(
        io,
        mode,
        `token revoke ${t.name}`,
        await dryRun(api, `/v1/tokens/${t.id}`, { method: "DELETE" }),
      );
      return;
    }
    const revoked = await api.delete<ApiToken>(`/v1/tokens/${t.id}`);
    io.out(mode === "json" ? json(revoked) : `revoked token ${revoked.name} (${revoked.id})\n`);
  });
}
