/**
 * One long-lived `virsh -c URI` per host, fed commands on stdin. Why one process and not one `virsh` per call:
 * libvirt's test driver (`test:///default`) keeps its state only inside one connection, and a real host pays a
 * connection (often over ssh) per process. Output is framed by echoing a unique marker before and after each
 * command; stderr is merged into stdout (by `sh -c 'exec … 2>&1'`) so error lines stay in order with the output.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CiphervisorError } from "../../../errors.ts";
import { virshError } from "./virsh-errors.ts";

/** How long one command may take before the session is declared stuck (and ended). */
export const DEFAULT_VIRSH_TIMEOUT_MS = 20_000;

export interface VirshOptions {
  /** The virsh executable; default `virsh` from PATH. */
  readonly virsh?: string;
  readonly timeoutMs?: number;
}

/** A URI virsh may be given: a scheme and `://`, printable, no whitespace, and no password in it. */
export function checkUri(uri: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^\s'"\\]*$/i.test(uri)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `'${uri.slice(0, 80)}' is not a libvirt URI (e.g. qemu:///system)`,
      {
        details: { field: "uri" },
      },
    );
  }
  if (/^[^/]*:\/\/[^/@]*:[^/@]*@/.test(uri)) {
    // A host address is stored and shown; credentials belong in ssh keys or libvirt's auth file.
    throw new CiphervisorError("INVALID_INPUT", "a libvirt URI must not hold a password", {
      details: { field: "uri" },
    });
  }
  return uri;
}

/** Quotes one argument for virsh's own command-line parser (single quotes, no escapes inside). */
export function quoteArg(arg: string): string {
  if (/^[A-Za-z0-9_./:=@+,-]+$/.test(arg)) return arg;
  if (/['\n\r\0]/.test(arg)) {
    throw new CiphervisorError("INVALID_INPUT", "a virsh argument must not contain quotes or line breaks", {
      details: { field: "argument" },
    });
  }
  return `'${arg}'`;
}

interface Pending {
  readonly command: string;
  readonly begin: string;
  readonly end: string;
  readonly resolve: (out: string) => void;
  readonly reject: (e: Error) => void;
}

/** Removes virsh's prompt lines ("virsh # " followed by the echoed command) from a command's output. */
function stripPrompts(text: string): string {
  return text.replace(/virsh # [^\n]*\n?/g, "");
}

/**
 * A virsh session. `run` queues commands (one at a time); any `error:` line rejects with a CiphervisorError;
 * a timeout or an exit ends the session (IO) and every later call fails until a new session is opened.
 *
 * @example
 * ```ts
 * const s = await VirshSession.open("test:///default");
 * const names = await s.run(["list", "--all", "--name"]);
 * s.close();
 * ```
 */
export class VirshSession {
  readonly uri: string;
  readonly #child: ChildProcess;
  readonly #timeoutMs: number;
  readonly #token = `cv${randomBytes(6).toString("hex")}`;
  #seq = 0;
  #buffer = "";
  #current: Pending | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #queue: Array<() => void> = [];
  #closed: CiphervisorError | undefined;

  private constructor(uri: string, options: VirshOptions) {
    this.uri = uri;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_VIRSH_TIMEOUT_MS;
    // `$0` is virsh and `$1` the URI: both are arguments, never parsed by the shell.
    this.#child = spawn("sh", ["-c", 'exec "$0" -c "$1" 2>&1', options.virsh ?? "virsh", uri], {
      stdio: ["pipe", "pipe", "ignore"],
      // TERM=dumb: readline then echoes long lines without cursor-movement escapes.
      env: { ...process.env, LC_ALL: "C", LANG: "C", TERM: "dumb" },
    });
    this.#child.stdout?.setEncoding("utf8");
    this.#child.stdout?.on("data", (chunk: string) => this.#onData(chunk));
    this.#child.stdin?.on("error", () => {
      // EPIPE after virsh exited: the exit handler reports it.
    });
    this.#child.on("error", (e) => this.#fail(`cannot run virsh: ${e.message}`));
    this.#child.on("exit", (code, signal) => {
      const said = this.#errorLines(this.#buffer).join("; ");
      this.#fail(
        said
          ? `virsh for ${uri} ended: ${said}`
          : `virsh for ${uri} ended (${signal ?? `exit code ${code ?? "unknown"}`})`,
      );
    });
  }

  /** Starts virsh for `uri` and checks that it connected (`uri` answers); IO when it cannot. */
  static async open(uri: string, options: VirshOptions = {}): Promise<VirshSession> {
    const s = new VirshSession(checkUri(uri), options);
    try {
      await s.run(["uri"]);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** False once the session ended (timeout, exit, close). */
  get alive(): boolean {
    return this.#closed === undefined;
  }

  /**
   * Runs one virsh command; resolves with its output (prompts removed, trimmed). Arguments are quoted here.
   * Rejects with the mapped error (NOT_FOUND, CONFLICT, LIBVIRT_UNSUPPORTED, INVALID_INPUT, IO).
   */
  run(args: readonly string[]): Promise<string> {
    const command = args.map(quoteArg).join(" ");
    return new Promise<string>((resolve, reject) => {
      const go = () => {
        if (this.#closed) return reject(this.#closed);
        const n = ++this.#seq;
        const begin = `${this.#token}-${n}-begin`;
        const end = `${this.#token}-${n}-end`;
        this.#current = { command, begin, end, resolve, reject };
        this.#timer = setTimeout(() => {
          this.#fail(`virsh on ${this.uri} did not answer '${args[0] ?? ""}' within ${this.#timeoutMs} ms`);
          this.close();
        }, this.#timeoutMs);
        // The quote splits each marker in the echoed command line, so only echo's output matches it.
        this.#child.stdin?.write(
          `echo ${this.#token}-${n}'-begin'\n${command}\necho ${this.#token}-${n}'-end'\n`,
        );
        this.#onData("");
      };
      if (this.#current || this.#queue.length > 0) this.#queue.push(go);
      else go();
    });
  }

  /** Ends virsh (quit, then SIGTERM). Safe to call twice; pending calls fail with IO. */
  close(): void {
    if (!this.#closed) this.#fail(`the virsh session for ${this.uri} is closed`);
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.stdin?.end("quit\n");
      this.#child.kill("SIGTERM");
    }
  }

  #errorLines(text: string): string[] {
    return text
      .split("\n")
      .filter((l) => l.startsWith("error: "))
      .map((l) => l.slice(7).trim());
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    const cur = this.#current;
    if (!cur) return;
    const endAt = this.#buffer.indexOf(cur.end);
    if (endAt < 0) return;
    const beginAt = this.#buffer.indexOf(cur.begin);
    const body = stripPrompts(this.#buffer.slice(beginAt < 0 ? 0 : beginAt + cur.begin.length, endAt));
    this.#buffer = this.#buffer.slice(endAt + cur.end.length);
    this.#finishCurrent();
    const errors = this.#errorLines(body);
    if (errors.length > 0) cur.reject(virshError(this.uri, cur.command, errors.join("; ")));
    else cur.resolve(body.replace(/^\n+|\s+$/g, ""));
    this.#queue.shift()?.();
  }

  #finishCurrent(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#current = undefined;
  }

  #fail(message: string): void {
    if (this.#closed) return;
    this.#closed = new CiphervisorError("IO", message, { details: { uri: this.uri } });
    const cur = this.#current;
    this.#finishCurrent();
    cur?.reject(this.#closed);
    for (const go of this.#queue.splice(0)) go();
  }
}
