/**
 * `ciphervisor vm …`: VMs on the control plane's REST API — list, get, create, set (SEV / SEV-ES for one VM or ten
 * thousand), start, stop, restart, migrate, snapshot, clone, delete.
 */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";
import { registerVmAttest } from "./vm-attest.ts";
import { registerVmAttestationReport } from "./vm-attest-report.ts";
import { registerVmEach } from "./vm-each.ts";
import { registerVmLifecycle } from "./vm-lifecycle.ts";
import { registerVmRead } from "./vm-read.ts";
import { registerVmSet } from "./vm-set.ts";

export function registerVm(program: Command, io: CliIo): void {
  const vm = program
    .command("vm")
    .description("virtual machines: list, create, turn SEV-ES on, power, migrate, …");
  registerVmRead(vm, io);
  registerVmLifecycle(vm, io);
  registerVmSet(vm, io);
  registerVmEach(vm, io);
  registerVmAttest(vm, io);
  registerVmAttestationReport(vm, io);
}
