/** The error the typed firmware client throws when a command does not return SUCCESS. */
import { CiphervisorError } from "../errors.ts";
import { cmdName } from "./commands.ts";
import { formatStatus, type SevStatusName, statusName } from "./status.ts";

export class SevFirmwareError extends CiphervisorError {
  readonly status: number;
  readonly statusName: SevStatusName | "UNKNOWN";
  readonly command: string;

  constructor(command: number, status: number, hint?: string) {
    super("SEV_FIRMWARE", `${cmdName(command)} failed: ${formatStatus(status)}${hint ? ` — ${hint}` : ""}`, {
      details: { command: cmdName(command), status, statusName: statusName(status) },
    });
    this.name = "SevFirmwareError";
    this.status = status;
    this.statusName = statusName(status);
    this.command = cmdName(command);
  }
}
