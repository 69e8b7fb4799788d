/**
 * `ciphervisor token create|list|revoke`: API tokens. A new token's secret is shown exactly once — on stdout, or
 * written to `--out FILE` (mode 0600) so it never touches the terminal; lists show names and roles, never secrets.
 */
import { closeSync, writeFileSync } from "node:fs";
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
import { discardOutputFile, openOutputFile } from "../output-files.ts";

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

/** What `token list` shows in STATE: revoked, expired (by this machine's clock), or active. */
export function tokenState(t: ApiToken, now: number = Date.now()): "active" | "expired" | "revoked" {
  if (t.revokedAt !== null) return "revoked";
  if (t.expiresAt !== null && Date.parse(t.expiresAt) <= now) return "expired";
  return "active";
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
      if (flags.out !== undefined) {
        // The file first, the token second: the one failure left after the file is open (writing it) revokes
        // the token, so `--out` never leaves an active token whose secret nobody has.
        const out = flags.out;
        // A new file only (no --force: an existing file may be another token's), mode 0600, never via a symlink.
        const fd = openOutputFile(out, { mode: 0o600, flag: "--out", consequence: "no token was created" });
        let created: { token: ApiToken; secret: string };
        try {
          created = await api.post<{ token: ApiToken; secret: string }>("/v1/tokens", body);
        } catch (e) {
          discardOutputFile(fd, out);
          throw e;
        }
        try {
          writeFileSync(fd, `${created.secret}\n`);
          closeSync(fd);
        } catch (e) {
          discardOutputFile(fd, out);
          const revoked = await api.delete(`/v1/tokens/${created.token.id}`).then(
            () => true,
            () => false,
          );
          throw new CiphervisorError(
            "IO",
            `--out ${out}: could not write the secret (${(e as NodeJS.ErrnoException).code ?? "error"}); ${revoked ? `token ${created.token.id} was revoked` : `revoke token ${created.token.id}: it could not be revoked now`}`,
            { cause: e },
          );
        }
        io.out(
          mode === "json"
            ? json({ token: created.token, secretFile: flags.out })
            : `created token ${created.token.name} (${created.token.id}); secret written to ${out}\n`,
        );
        return;
      }
      const created = await api.post<{ token: ApiToken; secret: string }>("/v1/tokens", body);
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
      const now = Date.now();
      if (mode === "name") io.out(tokens.map((t) => `${t.id}\n`).join(""));
      else if (mode === "json") io.out(json(tokens));
      else
        io.out(
          table(
            [
              { header: "ID", value: (t: ApiToken) => t.id },
              { header: "NAME", value: (t: ApiToken) => t.name },
              { header: "ROLES", value: (t: ApiToken) => t.roles.join(",") },
              { header: "STATE", value: (t: ApiToken) => tokenState(t, now) },
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
