/** Registers every noun of the CLI. One line per command file. */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";
import { registerDemo } from "./demo.ts";
import { registerFirmware } from "./firmware.ts";
import { registerOwner } from "./owner.ts";
import { registerServe } from "./serve.ts";
import { registerSev } from "./sev.ts";

export function registerCommands(program: Command, io: CliIo): void {
  registerDemo(program, io);
  registerFirmware(program, io);
  registerOwner(program, io);
  registerServe(program, io);
  registerSev(program, io);
}
