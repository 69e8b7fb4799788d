/**
 * `ciphervisor config …`: named contexts (a server and where its token is) in the config file, and `whoami` to
 * see which server and token a command would use — the token's name and roles, never the token.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import {
  type ConfigFile,
  checkContextName,
  configPath,
  readConfig,
  writeConfig,
} from "../client/config-file.ts";
import { normaliseServer, resolveConnection } from "../client/connection.ts";
import { me } from "../client/me.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor } from "../options.ts";
import { json } from "../output/format.ts";
import { fields, table } from "../output/table.ts";

function env(io: CliIo) {
  return io.env ?? process.env;
}

export function registerConfig(program: Command, io: CliIo): void {
  const config = program
    .command("config")
    .description("connection contexts (server + token file) and whoami");

  config
    .command("get-contexts")
    .description("list the contexts of the config file")
    .option("--json", "one JSON document on stdout")
    .action((flags: { json?: boolean }) => {
      const path = configPath(env(io));
      const c = readConfig(path);
      const rows = Object.entries(c.contexts).map(([name, ctx]) => ({
        name,
        current: name === c.currentContext,
        server: ctx.server,
        token:
          ctx.tokenFile !== undefined ? `file ${ctx.tokenFile}` : ctx.token !== undefined ? "inline" : "none",
      }));
      if (flags.json) io.out(json({ path, currentContext: c.currentContext ?? null, contexts: rows }));
      else if (rows.length === 0) io.out(`no contexts in ${path}\n`);
      else
        io.out(
          table(
            [
              { header: "CURRENT", value: (r: (typeof rows)[number]) => (r.current ? "*" : "") },
              { header: "NAME", value: (r: (typeof rows)[number]) => r.name },
              { header: "SERVER", value: (r: (typeof rows)[number]) => r.server },
              { header: "TOKEN", value: (r: (typeof rows)[number]) => r.token },
            ],
            rows,
          ),
        );
    });

  config
    .command("set-context")
    .argument("<name>", "context name")
    .description("add or change a context")
    .requiredOption("--server <url>", "the API server")
    .option("--token-file <file>", "file holding the token (kept as a reference; preferred)")
    .option("--token-stdin", "read the token from standard input and keep it in the config file (mode 0600)")
    .option("--use", "make it the current context")
    .action(
      async (
        name: string,
        flags: { server: string; tokenFile?: string; tokenStdin?: boolean; use?: boolean },
      ) => {
        checkContextName(name);
        const server = normaliseServer(flags.server, "--server");
        if (flags.tokenFile !== undefined && flags.tokenStdin) {
          throw new CiphervisorError("USAGE", "give --token-file or --token-stdin, not both");
        }
        let token: string | undefined;
        if (flags.tokenStdin) {
          token = ((await io.readStdin?.()) ?? "").split(/\r?\n/)[0]?.trim();
          if (!token)
            throw new CiphervisorError("INVALID_INPUT", "--token-stdin: standard input holds no token");
        }
        const path = configPath(env(io));
        const c = readConfig(path);
        const next: ConfigFile = {
          ...(flags.use
            ? { currentContext: name }
            : c.currentContext === undefined
              ? {}
              : { currentContext: c.currentContext }),
          contexts: {
            ...c.contexts,
            [name]: {
              server,
              ...(flags.tokenFile === undefined ? {} : { tokenFile: flags.tokenFile }),
              ...(token === undefined ? {} : { token }),
            },
          },
        };
        writeConfig(path, next);
        io.out(`context ${name}: ${server}${flags.use ? " (current)" : ""}\n`);
      },
    );

  config
    .command("use-context")
    .argument("<name>", "context name")
    .description("make a context the current one")
    .action((name: string) => {
      const path = configPath(env(io));
      const c = readConfig(path);
      if (!c.contexts[name]) throw new CiphervisorError("NOT_FOUND", `no context named '${name}' in ${path}`);
      writeConfig(path, { ...c, currentContext: name });
      io.out(`current context: ${name}\n`);
    });

  config
    .command("delete-context")
    .argument("<name>", "context name")
    .description("remove a context")
    .action((name: string) => {
      const path = configPath(env(io));
      const c = readConfig(path);
      if (!c.contexts[name]) throw new CiphervisorError("NOT_FOUND", `no context named '${name}' in ${path}`);
      const { [name]: _gone, ...rest } = c.contexts;
      writeConfig(path, {
        ...(c.currentContext === undefined || c.currentContext === name
          ? {}
          : { currentContext: c.currentContext }),
        contexts: rest,
      });
      io.out(`deleted context ${name}\n`);
    });

  apiCommand(
    config.command("whoami").description("the server and token a command would use, and the token's roles"),
  ).action(async (flags: CommonFlags) => {
    const mode = modeFor(flags);
    const c = resolveConnection(flags, env(io));
    const who = await me(apiFor(io, flags));
    const doc = {
      server: c.server,
      serverFrom: c.serverSource,
      tokenFrom: c.tokenSource ?? null,
      token: { id: who.tokenId, name: who.name, roles: who.roles },
      permissions: who.permissions,
    };
    if (mode === "json") io.out(json(doc));
    else
      io.out(
        fields([
          ["server", `${c.server} (${c.serverSource})`],
          ["token", `${who.name} (${who.tokenId}) from ${c.tokenSource ?? "-"}`],
          ["roles", who.roles.join(", ")],
          ["permissions", who.permissions.join(", ")],
        ]),
      );
  });
}
