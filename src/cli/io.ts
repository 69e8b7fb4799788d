/**
 * Where the CLI writes, what it reads, and how it learns that the user wants to stop. Tests pass a recording
 * implementation (`memoryIo`) with its own environment, so commands run in-process and in parallel without
 * touching `process.env`, the terminal or signal handlers; the binary uses the process (`processIo`).
 */

export type Env = Readonly<Record<string, string | undefined>>;

export interface CliIo {
  out(s: string): void;
  /** Writes to standard output and resolves once it can take more (long streamed output: bounded memory). */
  write?(s: string): Promise<void>;
  err(s: string): void;
  /** Set by a command that succeeded only partly (exit 3) or wants another non-error exit code. */
  exitCode?: number;
  /** The environment connection settings are read from (default `process.env`). */
  readonly env?: Env;
  /** All of standard input, for `--from-file -`. */
  readStdin?(): Promise<string>;
  /** True when stderr is a terminal: only then are progress bars drawn. */
  readonly stderrIsTTY?: boolean;
  /** The terminal stream progress bars draw on (stderr). */
  readonly progressStream?: NodeJS.WritableStream;
  /** Calls `handler` on each interrupt (SIGINT); returns the function that stops listening. */
  onInterrupt?(handler: () => void): () => void;
}

function readProcessStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on("data", (c: Buffer) => chunks.push(c));
    process.stdin.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.once("error", reject);
  });
}

/**
 * The exit code when whoever reads the CLI's output stops reading (`ciphervisor vm list | head -1`): 0, and
 * nothing on stderr. Like `ls | head` it stops at once and silently; unlike a process killed by SIGPIPE (141
 * under `set -o pipefail`) it exits 0, because whether the pipe breaks at all depends on the size of the output
 * (up to the pipe's 64 KiB buffer every write succeeds and the command ends normally): a script must not fail
 * on a large fleet for what works on a small one. An operation a mutating command was following goes on on the
 * server, as after Ctrl-C.
 */
export const BROKEN_PIPE_EXIT = 0;

let pipesGuarded = false;

/**
 * Makes a closed stdout or stderr end the process quietly with `BROKEN_PIPE_EXIT` instead of an uncaught EPIPE
 * with a stack trace. Any other write error on them ends it with exit 1 and one line on stderr when it still
 * works. Installed once, by `main()` for the real process only (tests' `memoryIo` never touches the streams).
 */
export function guardBrokenPipes(): void {
  if (pipesGuarded) return;
  pipesGuarded = true;
  const onError = (stream: "stdout" | "stderr") => (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE" || e.code === "ERR_STREAM_DESTROYED") process.exit(BROKEN_PIPE_EXIT);
    if (stream === "stdout") {
      try {
        process.stderr.write(`ciphervisor: cannot write to standard output (${e.code ?? "error"}) [IO]\n`);
      } catch {
        // stderr is gone too: the exit code is all that is left.
      }
    }
    process.exit(1);
  };
  process.stdout.on("error", onError("stdout"));
  process.stderr.on("error", onError("stderr"));
}

export const processIo: CliIo = {
  out: (s) => process.stdout.write(s),
  write: (s) =>
    process.stdout.write(s) ? Promise.resolve() : new Promise((r) => process.stdout.once("drain", r)),
  err: (s) => process.stderr.write(s),
  env: process.env,
  readStdin: readProcessStdin,
  stderrIsTTY: process.stderr.isTTY === true,
  progressStream: process.stderr,
  onInterrupt(handler) {
    process.on("SIGINT", handler);
    return () => process.off("SIGINT", handler);
  },
};

export interface MemoryIoOptions {
  readonly env?: Env;
  /** What `--from-file -` reads. */
  readonly stdin?: string;
}

export interface MemoryIo extends CliIo {
  stdout: string;
  stderr: string;
  /** Simulates the user pressing Ctrl-C. */
  interrupt(): void;
}

/** Records output in memory, for tests that call `main()` in-process. The environment is empty unless given. */
export function memoryIo(options: MemoryIoOptions = {}): MemoryIo {
  const handlers = new Set<() => void>();
  const io: MemoryIo = {
    stdout: "",
    stderr: "",
    env: options.env ?? {},
    out(s: string) {
      io.stdout += s;
    },
    err(s: string) {
      io.stderr += s;
    },
    readStdin: async () => options.stdin ?? "",
    stderrIsTTY: false,
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    interrupt() {
      for (const h of [...handlers]) h();
    },
  };
  return io;
}
