/** `owner verify-chain` and `owner verify-report`. */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";

export function registerOwnerChainCommands(owner: Command, io: CliIo): void {
  void owner;
  void io;
}
