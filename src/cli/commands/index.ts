/** Registers every noun of the CLI. One line per command file. */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";

export function registerCommands(program: Command, io: CliIo): void {
  void program;
  void io;
}
