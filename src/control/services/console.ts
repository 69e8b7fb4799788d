/**
 * A VM's serial console, as its host keeps it: what the guest wrote to COM1 (the last 64 KiB). The console is the
 * guest's public output — the hypervisor sees every byte, encrypted VM or not — so reading it needs only
 * `inventory.read`. Its use in attestation: a guest's efi_secret driver prints the SHA-256 of each injected secret
 * there, so the owner confirms the secret arrived without the platform ever holding it.
 */
import { CiphervisorError } from "../../errors.ts";
import type { PowerState } from "../inventory/types.ts";
import { type ControlContext, connect, getHost, getVm } from "./context.ts";

export interface VmConsole {
  readonly vmId: string;
  readonly vm: string;
  readonly host: string | null;
  readonly powerState: PowerState;
  /** The console's text since the VM last started ("" when it is not running on a host). */
  readonly console: string;
  /** Bytes dropped from the front to keep the host's bound. */
  readonly dropped: number;
}

export async function vmConsole(c: ControlContext, vmId: string): Promise<VmConsole> {
  const vm = await getVm(c.inventory, vmId);
  const base = { vmId: vm.id, vm: vm.name, powerState: vm.powerState };
  if (vm.hostId === null) return { ...base, host: null, console: "", dropped: 0 };
  const host = await getHost(c.inventory, vm.hostId);
  if (host.driver === "libvirt") {
    // virsh console is interactive; a libvirt guest's serial output would need a <log file=…/> the domain lacks.
    throw new CiphervisorError(
      "LIBVIRT_UNSUPPORTED",
      `the console of VM '${vm.name}' on libvirt host '${host.name}' is not collected (read it with 'virsh console')`,
      { details: { vm: vm.id, host: host.name } },
    );
  }
  const status = await (await connect(c, host)).status(vm.id);
  return {
    ...base,
    host: host.name,
    console: status?.console ?? "",
    dropped: status?.consoleDropped ?? 0,
  };
}
