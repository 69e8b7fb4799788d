/** `owner measure`, `owner session`, `owner verify-measurement`, `owner secret build`. */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";

export function registerOwnerLaunchCommands(owner: Command, io: CliIo): void {
  void owner;
  void io;
}
