/**
 * Where the CLI connects and with which token, in one order everywhere:
 *
 * 1. `--server` / `--token` (and `--token-file`),
 * 2. `CIPHERVISOR_SERVER` / `CIPHERVISOR_TOKEN` (also `CIPHERVISOR_URL` and `CIPHERVISOR_TOKEN_FILE`, the names
 *    `serve` prints),
 * 3. the context named by `--context`, `CIPHERVISOR_CONTEXT` or the config file's `currentContext`,
 * 4. a local `ciphervisor serve`: its default address, and the admin token it wrote to its data directory
 *    (`CIPHERVISOR_DATA_DIR`, default `~/.ciphervisor`).
 *
 * The local admin token is only ever sent to a loopback address, so pointing `--server` at another machine never
 * leaks it. Tokens are read, never printed: `describe()` names where a token came from, not what it is.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CiphervisorError } from "../../errors.ts";
import type { Env } from "../io.ts";
import { type Context, configPath, readConfig } from "./config-file.ts";
import { ApiClient } from "./http.ts";

/** The address `serve` listens on by default. */
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;
export const DEFAULT_SERVER = `http://${DEFAULT_HOST}:${DEFAULT_PORT}`;

/** The flags every API command takes. */
export interface ConnectionFlags {
  readonly server?: string;
  readonly token?: string;
  readonly tokenFile?: string;
  readonly context?: string;
  readonly timeout?: string;
}

export interface Connection {
  readonly server: string;
  readonly serverSource: string;
  readonly token: string | undefined;
  readonly tokenSource: string | undefined;
  readonly timeoutMs: number;
}

/** `host:port` or a URL → a normalised http(s) base URL; INVALID_INPUT otherwise. */
export function normaliseServer(value: string, source: string): string {
  const t = value.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${t}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${source}: '${value}' is not a server address (http://host:port)`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CiphervisorError("INVALID_INPUT", `${source}: the server address must use http or https`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new CiphervisorError("INVALID_INPUT", `${source}: put credentials in --token, not in the URL`);
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(server: string): boolean {
  const host = new URL(server).hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The local `serve` data directory the CLI looks in for `admin.token`. */
export function localDataDir(env: Env): string {
  return env.CIPHERVISOR_DATA_DIR || join(env.HOME || homedir(), ".ciphervisor");
}

/** Reads a token file: its first line, trimmed. IO names the file, never the content. */
export function readTokenFile(path: string, source: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
    throw new CiphervisorError("IO", `${source} ${path}: ${why}`, { cause: e });
  }
  const token = text.split(/\r?\n/)[0]?.trim() ?? "";
  if (token === "") throw new CiphervisorError("INVALID_INPUT", `${source} ${path} is empty`);
  return token;
}

function tokenOf(ctx: Context, name: string): { token: string; source: string } | undefined {
  if (ctx.token !== undefined) return { token: ctx.token, source: `context '${name}'` };
  if (ctx.tokenFile !== undefined) {
    return {
      token: readTokenFile(ctx.tokenFile, `context '${name}' tokenFile`),
      source: `context '${name}'`,
    };
  }
  return undefined;
}

function parseTimeout(value: string | undefined): number {
  if (value === undefined) return 30_000;
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value.trim());
  const n = m ? Number(m[1]) * (m[2] === "ms" ? 1 : 1000) : Number.NaN;
  if (!Number.isFinite(n) || n < 1 || n > 3_600_000) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `--timeout must be a duration such as 30s or 500ms, got '${value}'`,
    );
  }
  return n;
}

/** Resolves the connection for one command run. */
export function resolveConnection(flags: ConnectionFlags, env: Env): Connection {
  const timeoutMs = parseTimeout(flags.timeout);
  let server: string | undefined;
  let serverSource = "";
  let token: string | undefined;
  let tokenSource: string | undefined;

  if (flags.server !== undefined) {
    server = normaliseServer(flags.server, "--server");
    serverSource = "--server";
  } else if (env.CIPHERVISOR_SERVER) {
    server = normaliseServer(env.CIPHERVISOR_SERVER, "CIPHERVISOR_SERVER");
    serverSource = "CIPHERVISOR_SERVER";
  } else if (env.CIPHERVISOR_URL) {
    server = normaliseServer(env.CIPHERVISOR_URL, "CIPHERVISOR_URL");
    serverSource = "CIPHERVISOR_URL";
  }
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    throw new CiphervisorError("USAGE", "give --token or --token-file, not both");
  }
  if (flags.token !== undefined) {
    if (flags.token.trim() === "") throw new CiphervisorError("INVALID_INPUT", "--token is empty");
    token = flags.token.trim();
    tokenSource = "--token";
  } else if (flags.tokenFile !== undefined) {
    token = readTokenFile(flags.tokenFile, "--token-file");
    tokenSource = "--token-file";
  } else if (env.CIPHERVISOR_TOKEN) {
    token = env.CIPHERVISOR_TOKEN.trim();
    tokenSource = "CIPHERVISOR_TOKEN";
  } else if (env.CIPHERVISOR_TOKEN_FILE) {
    token = readTokenFile(env.CIPHERVISOR_TOKEN_FILE, "CIPHERVISOR_TOKEN_FILE");
    tokenSource = "CIPHERVISOR_TOKEN_FILE";
  }

  const contextName = flags.context ?? env.CIPHERVISOR_CONTEXT;
  if (server === undefined || token === undefined || contextName !== undefined) {
    const path = configPath(env);
    const config = readConfig(path);
    const name = contextName ?? config.currentContext;
    if (name !== undefined) {
      const ctx = config.contexts[name];
      if (!ctx) {
        throw new CiphervisorError(
          "NOT_FOUND",
          `no context named '${name}' in ${path} ('ciphervisor config get-contexts' lists them)`,
        );
      }
      if (server === undefined) {
        server = normaliseServer(ctx.server, `context '${name}'`);
        serverSource = `context '${name}'`;
      }
      if (token === undefined) {
        const t = tokenOf(ctx, name);
        if (t) {
          token = t.token;
          tokenSource = t.source;
        }
      }
    }
  }

  if (server === undefined) {
    server = DEFAULT_SERVER;
    serverSource = "default (local serve)";
  }
  if (token === undefined && isLoopback(server)) {
    const file = join(localDataDir(env), "admin.token");
    try {
      token = readTokenFile(file, "admin token");
      tokenSource = file;
    } catch {
      // No local serve data directory: requests go without a token and the server says what it needs.
    }
  }
  return { server, serverSource, token, tokenSource, timeoutMs };
}

/** An API client for the resolved connection. */
export function connect(flags: ConnectionFlags, env: Env): ApiClient {
  const c = resolveConnection(flags, env);
  return new ApiClient({
    server: c.server,
    token: c.token,
    tokenSource: c.tokenSource,
    timeoutMs: c.timeoutMs,
  });
}
