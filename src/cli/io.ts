/** Where the CLI writes. Tests pass a recording implementation; the binary uses the process streams. */
export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** Set by a command that succeeded only partly (exit 3) or wants another non-error exit code. */
  exitCode?: number;
}

export const processIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

/** Records output in memory, for tests that call `main()` in-process. */
export function memoryIo(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    out(s: string) {
      io.stdout += s;
    },
    err(s: string) {
      io.stderr += s;
    },
  };
  return io;
}
