/**
 * Ctrl-C while the CLI follows an operation. The work is the server's: an interrupt only stops the CLI from
 * following it (the caller then says how to reattach, `ciphervisor operation watch ID`, and exits 130). Nothing
 * the CLI started is cancelled or left half done by an interrupt.
 */
import type { CliIo } from "./io.ts";

export interface Interrupt {
  /** Aborted on the first interrupt: stop following. */
  readonly stop: AbortSignal;
  /** True once the user asked to stop. */
  readonly requested: boolean;
  dispose(): void;
}

/** Listens for interrupts while a command follows an operation. */
export function watchInterrupt(io: CliIo): Interrupt {
  const stop = new AbortController();
  const off = io.onInterrupt?.(() => stop.abort());
  return {
    stop: stop.signal,
    get requested() {
      return stop.signal.aborted;
    },
    dispose() {
      off?.();
    },
  };
}
