/**
 * Progress bars with counts and ETA on stderr — only when stderr is a terminal, and never with `--json` or
 * `--quiet`, so piped and scripted output carries no progress noise. Without a terminal every call is a no-op.
 */
import type { SingleBar } from "cli-progress";
import type { CliIo } from "../io.ts";

export interface Progress {
  start(total: number, label: string): void;
  update(done: number, counts?: { ok: number; failed: number }, total?: number): void;
  stop(): void;
}

const silent: Progress = { start() {}, update() {}, stop() {} };

/** Whether a command may draw progress. */
export function progressEnabled(
  io: CliIo,
  flags: { json?: boolean; quiet?: boolean; output?: string },
): boolean {
  return (
    io.stderrIsTTY === true &&
    io.progressStream !== undefined &&
    !flags.json &&
    !flags.quiet &&
    flags.output !== "json"
  );
}

/**
 * A progress bar, or a silent stand-in when progress is off. cli-progress is loaded only for a bar: a scripted run
 * (`--json`, a pipe) does not pay its ~8 ms of module loading.
 */
export async function progress(io: CliIo, enabled: boolean): Promise<Progress> {
  const stream = io.progressStream;
  if (!enabled || stream === undefined) return silent;
  const { SingleBar } = await import("cli-progress");
  let bar: SingleBar | undefined;
  let total = 0;
  return {
    start(n, label) {
      total = n;
      bar = new SingleBar({
        stream,
        format: `${label} [{bar}] {percentage}% | {value}/{total} | ok {ok} failed {failed} | ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
        fps: 10,
        etaBuffer: 50,
      });
      bar.start(n, 0, { ok: 0, failed: 0 });
    },
    update(done, counts, newTotal) {
      if (!bar) return;
      if (newTotal !== undefined && newTotal !== total) {
        total = newTotal;
        bar.setTotal(newTotal);
      }
      bar.update(done, counts ?? {});
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
