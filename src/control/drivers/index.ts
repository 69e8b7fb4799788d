/** Host drivers: the interface, the registry, and the emulated driver (in-process hypervisor hosts). */
export {
  type DriverFinding,
  type DriverHost,
  DriverRegistry,
  type HostDriver,
  type LaunchSecret,
  type PerformArgs,
} from "./driver.ts";
export {
  EmulatedDriver,
  type EmulatedHostOptions,
  type EmulatedMachine,
  type EmulatedMachineFactory,
} from "./emulated.ts";
export { createEmulatedHost, emulatedDriver } from "./emulated-hosts.ts";
