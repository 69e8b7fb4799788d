/**
 * The CLI's config file: named contexts (a server and where its token is), kubectl-style, so one person can switch
 * between a lab and production without retyping URLs. JSON at `$CIPHERVISOR_CONFIG`, else
 * `$XDG_CONFIG_HOME/ciphervisor/config.json`, else `~/.config/ciphervisor/config.json`; written with mode 0600
 * because a context may hold a token inline (a `tokenFile` reference is preferred).
 *
 * @example
 * ```json
 * { "currentContext": "lab",
 *   "contexts": { "lab": { "server": "http://10.0.0.5:7480", "tokenFile": "/home/me/.ciphervisor/lab.token" } } }
 * ```
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CiphervisorError } from "../../errors.ts";

export interface Context {
  readonly server: string;
  /** A token inline (the file is then kept at mode 0600). */
  readonly token?: string;
  /** A file holding the token (such as a `serve` data directory's admin.token). */
  readonly tokenFile?: string;
}

export interface ConfigFile {
  readonly currentContext?: string;
  readonly contexts: Readonly<Record<string, Context>>;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Where the config file is for this environment. */
export function configPath(env: Env): string {
  if (env.CIPHERVISOR_CONFIG) return env.CIPHERVISOR_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "ciphervisor", "config.json");
}

const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** INVALID_INPUT unless `name` can name a context. */
export function checkContextName(name: string): string {
  if (!CONTEXT_NAME.test(name)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `context name '${name}' must be 1–63 letters, digits, '.', '_' or '-'`,
    );
  }
  return name;
}

function bad(path: string, why: string): CiphervisorError {
  return new CiphervisorError("INVALID_INPUT", `config file ${path}: ${why}`);
}

/** Reads the config file; an absent file is an empty config, a malformed one a clear error naming the file. */
export function readConfig(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { contexts: {} };
    throw new CiphervisorError("IO", `config file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad(path, "not valid JSON");
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw bad(path, "expected a JSON object");
  const o = raw as Record<string, unknown>;
  const contexts: Record<string, Context> = {};
  const rawContexts = o.contexts ?? {};
  if (rawContexts === null || typeof rawContexts !== "object" || Array.isArray(rawContexts)) {
    throw bad(path, "'contexts' must be an object of name → {server, token | tokenFile}");
  }
  for (const [name, v] of Object.entries(rawContexts as Record<string, unknown>)) {
    const c = v as Record<string, unknown> | null;
    if (c === null || typeof c !== "object" || typeof c.server !== "string") {
      throw bad(path, `context '${name}' needs a 'server' URL`);
    }
    if (c.token !== undefined && typeof c.token !== "string")
      throw bad(path, `context '${name}': 'token' must be a string`);
    if (c.tokenFile !== undefined && typeof c.tokenFile !== "string") {
      throw bad(path, `context '${name}': 'tokenFile' must be a path`);
    }
    contexts[name] = {
      server: c.server,
      ...(typeof c.token === "string" ? { token: c.token } : {}),
      ...(typeof c.tokenFile === "string" ? { tokenFile: c.tokenFile } : {}),
    };
  }
  if (o.currentContext !== undefined && typeof o.currentContext !== "string") {
    throw bad(path, "'currentContext' must be a context name");
  }
  return { ...(typeof o.currentContext === "string" ? { currentContext: o.currentContext } : {}), contexts };
}

/** Writes the config file atomically, mode 0600 (it may hold tokens). */
export function writeConfig(path: string, config: ConfigFile): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (e) {
    throw new CiphervisorError("IO", `config file ${path}: ${(e as Error).message}`, { cause: e });
  }
}
