/**
 * The command line: one commander program, one file per noun under commands/. Every failure ends as one line on
 * stderr (`ciphervisor: <message> [CODE]`) and a documented exit code, never a stack trace — usage mistakes that
 * commander catches included. The line is printed through `visible()`: a message quoting a server's text or the
 * user's own argument cannot put an escape sequence on the terminal.
 */
import { Command, CommanderError } from "commander";
// The package's own version (inlined by the build), so `--version` cannot drift from package.json.
import pkg from "../../package.json" with { type: "json" };
import { CiphervisorError } from "../errors.ts";
import { shownCode } from "./client/remote-error.ts";
import { registerCommands } from "./commands/index.ts";
import { ExitCode, exitCodeFor } from "./exit-codes.ts";
import type { CliIo } from "./io.ts";
import { guardBrokenPipes, processIo } from "./io.ts";
import { errorLine } from "./output/format.ts";

/** commander's "error: unknown option '--x'" → our one-line shape. */
function usageLine(text: string): string {
  const first = text.split("\n").find((l) => l.trim() !== "") ?? "usage error";
  return errorLine(first.replace(/^error:\s*/, "").trim(), "USAGE");
}

/** The program, with the nouns `argv` uses loaded (every noun when `argv` is omitted). */
export async function buildProgram(io: CliIo, argv?: readonly string[]): Promise<Command> {
  const program = new Command("ciphervisor")
    .description(
      "Confidential VMs on AMD SEV and SEV-ES: emulated EPYC fleet, control plane, guest-owner toolkit",
    )
    .version(pkg.version)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      // Commander's own usage errors become the same one-line shape as every other error.
      outputError: (s, write) => write(usageLine(s)),
    })
    .showHelpAfterError(false)
    .showSuggestionAfterError(false);
  await registerCommands(program, io, argv);
  return program;
}

/** Runs the CLI on `argv` (without the node and script paths) and returns the exit code. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  if (io === processIo) guardBrokenPipes();
  try {
    const program = await buildProgram(io, argv);
    await program.parseAsync(argv, { from: "user" });
    return io.exitCode ?? ExitCode.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0)
        return ExitCode.OK;
      // A bare noun (`ciphervisor vm`) prints its help and exits with commander's "help" code: usage.
      return ExitCode.USAGE;
    }
    if (e instanceof CiphervisorError) {
      io.err(errorLine(e.message, shownCode(e)));
      return exitCodeFor(e.code);
    }
    const msg = e instanceof Error ? e.message : String(e);
    io.err(errorLine(`internal error: ${msg}`, "INTERNAL"));
    return ExitCode.ERROR;
  }
}
