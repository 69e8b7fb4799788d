/**
 * The flags the API commands share, declared once: connection (`--server`, `--token`, `--token-file`, `--context`,
 * `--timeout`), output (`--json`, `-o`, `--quiet`), choosing VMs (`--all`, `--selector`, `--from-file`) and the
 * safety pair of every mutating command (`--what-if`, `--yes`).
 */
import { type Command, Option } from "commander";
import { CiphervisorError } from "../errors.ts";
import { type ConnectionFlags, connect } from "./client/connection.ts";
import type { ApiClient } from "./client/http.ts";
import type { CliIo } from "./io.ts";
import { type OutputFlags, type OutputMode, outputMode } from "./output/format.ts";
import { type Progress, progress, progressEnabled } from "./output/progress.ts";
import type { TargetFlags } from "./selectors.ts";

export type CommonFlags = ConnectionFlags & OutputFlags;
export type MutatingFlags = CommonFlags & { readonly whatIf?: boolean; readonly yes?: boolean };

/** Adds the connection and output flags. */
export function apiCommand(cmd: Command, output: { name?: boolean } = {}): Command {
  cmd
    .addOption(new Option("--server <url>", "API server (env CIPHERVISOR_SERVER; default: a local serve)"))
    .addOption(new Option("--token <token>", "API token (env CIPHERVISOR_TOKEN); prefer --token-file"))
    .addOption(new Option("--token-file <file>", "read the API token from a file"))
    .addOption(new Option("--context <name>", "a context of the config file (env CIPHERVISOR_CONTEXT)"))
    .addOption(
      new Option("--timeout <duration>", "per-request timeout, e.g. 30s or 500ms").default(undefined, "30s"),
    )
    .option("--json", "one JSON document on stdout")
    .addOption(
      new Option(
        "-o, --output <format>",
        `output: table, wide, json${output.name ? ", name (one per line)" : ""}`,
      ),
    )
    .option("-q, --quiet", "no progress and no notes on stderr");
  return cmd;
}

/** Adds the ways of choosing VMs. */
export function targetOptions(cmd: Command): Command {
  return cmd
    .option("--all", "every VM")
    .option("--selector <k=v,…>", "VMs matching os=, host=, mode=, power=, cluster=, name=, label.KEY=")
    .option(
      "--from-file <file>",
      "VM names, one a line ('-' reads standard input, e.g. from 'vm list -o name')",
    );
}

/** Adds --what-if and --yes. */
export function mutatingOptions(cmd: Command, yesHelp = "confirm a change that needs it"): Command {
  return cmd
    .option("--what-if", "show what would happen, per VM, and change nothing")
    .option("--yes", yesHelp);
}

/** The API client for a command's flags. */
export function apiFor(io: CliIo, flags: ConnectionFlags): ApiClient {
  return connect(flags, io.env ?? process.env);
}

/** The output mode, refusing `-o name` where a command has no names to print. */
export function modeFor(flags: OutputFlags, allowName = false): OutputMode {
  const m = outputMode(flags);
  if (m === "name" && !allowName)
    throw new CiphervisorError("INVALID_INPUT", "-o name is not available here");
  return m;
}

/** A progress bar for this command (silent unless stderr is a terminal and no --json/--quiet). */
export function progressFor(io: CliIo, flags: OutputFlags): Promise<Progress> {
  return progress(io, progressEnabled(io, flags));
}

export type { TargetFlags };
