/** Registers every noun of the CLI. One line per command file. */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";
import { registerAudit } from "./audit.ts";
import { registerCompletion } from "./completion.ts";
import { registerConfig } from "./config.ts";
import { registerDemo } from "./demo.ts";
import { registerFirmware } from "./firmware.ts";
import { registerHost } from "./host.ts";
import { registerOperation } from "./operation.ts";
import { registerOwner } from "./owner.ts";
import { registerServe } from "./serve.ts";
import { registerSev } from "./sev.ts";
import { registerToken } from "./token.ts";
import { registerVm } from "./vm.ts";

export function registerCommands(program: Command, io: CliIo): void {
  registerDemo(program, io);
  registerFirmware(program, io);
  registerOwner(program, io);
  registerServe(program, io);
  registerSev(program, io);
  registerVm(program, io);
  registerHost(program, io);
  registerOperation(program, io);
  registerAudit(program, io);
  registerToken(program, io);
  registerConfig(program, io);
  registerCompletion(program, io);
}
