/**
 * Ctrl-C during a long command. The first interrupt asks the command to stop *starting* work: what is in flight
 * finishes (a VM that was powered off to be changed is started again), a summary is printed, and the process exits
 * 130. A second interrupt stops waiting at once (work already handed to the server still completes there, each
 * item whole or not at all).
 */
import type { CliIo } from "./io.ts";

export interface Interrupt {
  /** Aborted on the first interrupt: start nothing new. */
  readonly stop: AbortSignal;
  /** Aborted on the second: stop waiting. */
  readonly abort: AbortSignal;
  /** True once the user asked to stop. */
  readonly requested: boolean;
  dispose(): void;
}

/** Listens for interrupts while a command runs. `what` names the work for the message on stderr. */
export function watchInterrupt(io: CliIo, what: string, quiet = false): Interrupt {
  const stop = new AbortController();
  const abort = new AbortController();
  let count = 0;
  const off = io.onInterrupt?.(() => {
    count++;
    if (count === 1) {
      if (!quiet)
        io.err(
          `ciphervisor: interrupted; finishing the ${what} in flight, then stopping (Ctrl-C again to stop waiting)\n`,
        );
      stop.abort();
    } else {
      abort.abort();
    }
  });
  return {
    stop: stop.signal,
    abort: abort.signal,
    get requested() {
      return count > 0;
    },
    dispose() {
      off?.();
    },
  };
}
