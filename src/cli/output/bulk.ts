import { baseCode } from "../client/remote-error.ts";
import { ExitCode, exitCodeFor } from "../exit-codes.ts";
import type { CliIo } from "../io.ts";
import { plural } from "../selectors.ts";
import { count, errorLine, json, type OutputMode } from "./format.ts";
import { table } from "./table.ts";

export interface BulkFailure {
  readonly vm: string;
  readonly code: string;
  readonly message: string;
}

export interface BulkResult {
  /** Items that ended well (changed, or already as asked). */
  readonly ok: number;
  readonly failed: BulkFailure[];
  /** The operation that carried the change, or null when each VM had its own (see `operations`). */
  readonly operation: string | null;
  readonly operations?: string[];
  /** Of `ok`: changed, and already as asked. */
  readonly changed?: number;
  readonly unchanged?: number;
  /** Interrupted: how many selected VMs were not started. */
  readonly interrupted?: boolean;
  readonly notStarted?: number;
}

/** The JSON document: the issue's shape first (`ok`, `failed`, `operation`), then the details. */
export function bulkJson(r: BulkResult): string {
  return json({
    ok: r.ok,
    failed: r.failed,
    operation: r.operation,
    ...(r.changed === undefined ? {} : { changed: r.changed }),
    ...(r.unchanged === undefined ? {} : { unchanged: r.unchanged }),
    ...(r.operations === undefined ? {} : { operations: r.operations }),
    ...(r.interrupted ? { interrupted: true, notStarted: r.notStarted ?? 0 } : {}),
  });
}

/** Prints a bulk result: the JSON document, or a summary and the failures. */
export function printBulk(io: CliIo, mode: OutputMode, r: BulkResult, verb: string): void {
  if (mode === "json") {
    io.out(bulkJson(r));
    return;
  }
  if (mode === "name") {
    // One name a line of the VMs that failed: easy to feed back (`--from-file -`) after fixing the cause.
    for (const f of r.failed) io.out(`${f.vm}\n`);
    return;
  }
  const parts = [`${verb} ${plural(r.changed ?? r.ok, "VM")}`];
  if (r.unchanged !== undefined && r.unchanged > 0) parts.push(`${count(r.unchanged)} already as asked`);
  parts.push(`${count(r.failed.length)} failed`);
  if (r.interrupted) parts.push(`${count(r.notStarted ?? 0)} not started (interrupted)`);
  const op = r.operation ?? (r.operations && r.operations.length === 1 ? r.operations[0] : undefined);
  io.out(`${parts.join(", ")}${op ? ` (operation ${op})` : ""}\n`);
  if (r.failed.length > 0) {
    io.out(
      table(
        [
          { header: "VM", value: (f: BulkFailure) => f.vm },
          { header: "CODE", value: (f: BulkFailure) => f.code },
          { header: "REASON", value: (f: BulkFailure) => f.message },
        ],
        r.failed,
      ),
    );
  }
}

/**
 * The exit code of a bulk result: 130 when interrupted, 0 when all went well, the failure's own code when the
 * one VM asked for failed, and 3 (partial) when some of several failed.
 */
export function bulkExitCode(r: BulkResult, targets: number): number {
  if (r.interrupted) return ExitCode.INTERRUPTED;
  if (r.failed.length === 0) return ExitCode.OK;
  const only = r.failed[0];
  if (targets === 1 && r.ok === 0 && only) return exitCodeFor(baseCode(only.code, 409));
  return ExitCode.PARTIAL;
}

/**
 * Prints a bulk result and sets the exit code. A command aimed at one VM that failed reads like any other
 * failure: one line `ciphervisor: <reason> [CODE]` on stderr (and the JSON document still on stdout with --json).
 */
export function finishBulk(io: CliIo, mode: OutputMode, r: BulkResult, verb: string, targets: number): void {
  const code = bulkExitCode(r, targets);
  const only = r.failed[0];
  if (targets === 1 && r.ok === 0 && only && !r.interrupted) {
    if (mode === "json") io.out(bulkJson(r));
    io.err(errorLine(only.message, only.code));
  } else {
    printBulk(io, mode, r, verb);
  }
  if (code !== ExitCode.OK) io.exitCode = code;
}
