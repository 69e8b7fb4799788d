/** The vocabulary of the operations engine: runners, their context, and a logger shape pino satisfies. */
import type { FinishOptions, Operation, OperationError } from "../inventory/types.ts";

/** The logging the control plane needs; a pino logger fits. Objects logged must never contain secrets. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};

/** What a runner gets for one claimed operation. */
export interface RunContext {
  /** The operation as claimed (`attempts` > 1 when this is a takeover of a dead worker's claim). */
  readonly op: Operation;
  /** This worker's name. */
  readonly worker: string;
  /** Aborted when the node shuts down or the lease was lost; runners check it between batches. */
  readonly signal: AbortSignal;
  /** Targets that already have a recorded result (a resumed operation skips them). */
  recordedTargets(): Promise<Set<string>>;
  /** Wakes anybody streaming this operation (call after recording results). */
  progress(): void;
}

/** How a runner wants its operation finished; by default the status follows from the item counts. */
export interface RunResult {
  readonly status?: FinishOptions["status"];
  readonly error?: OperationError | null;
}

/** Carries out one kind of operation. Must be idempotent: a taken-over operation runs again from the start. */
export type Runner = (ctx: RunContext) => Promise<RunResult | undefined>;
