/** How VMs and hosts look in tables. */
import type { ApiHost, ApiVm } from "../client/types.ts";
import { type Column, table } from "./table.ts";

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** VM rows; `hostName` maps host ids to names. */
export function vmTable(
  vms: readonly ApiVm[],
  hostName: (id: string | null) => string,
  wide: boolean,
): string {
  const cols: Column<ApiVm>[] = [
    { header: "NAME", value: (v) => v.name },
    { header: "HOST", value: (v) => hostName(v.hostId) },
    { header: "POWER", value: (v) => v.powerState },
    { header: "MODE", value: (v) => v.securityMode },
    { header: "POLICY", value: (v) => (v.securityMode === "none" ? "-" : hex(v.policy)) },
    { header: "OS", value: (v) => v.spec.guestOs },
  ];
  if (wide) {
    cols.unshift({ header: "ID", value: (v) => v.id });
    cols.push(
      { header: "VCPUS", value: (v) => v.spec.vcpus, right: true },
      { header: "MEMORY", value: (v) => `${v.spec.memoryMiB}Mi`, right: true },
      { header: "FIRMWARE", value: (v) => `${v.spec.firmware}/hw${v.spec.hardwareVersion}` },
      { header: "LIVE-MIGRATE", value: (v) => (v.liveMigratable.status ? "yes" : "no") },
      {
        header: "LABELS",
        value: (v) =>
          Object.entries(v.labels)
            .map(([k, x]) => `${k}=${x}`)
            .join(","),
      },
    );
  }
  return table(cols, vms);
}

/** Host rows with their ASID pools. */
export function hostTable(hosts: readonly ApiHost[], wide: boolean): string {
  const pool = (p: ApiHost["pools"]["sev"]) => (p.size === 0 ? "0" : `${p.used}/${p.size}`);
  const cols: Column<ApiHost>[] = [
    { header: "NAME", value: (h) => h.name },
    { header: "CPU", value: (h) => h.cpuGeneration },
    { header: "SEV", value: (h) => h.sevState },
    { header: "ES-POOL", value: (h) => pool(h.pools.sevEs), right: true },
    { header: "SEV-POOL", value: (h) => pool(h.pools.sev), right: true },
    { header: "VMS-ON", value: (h) => h.activeVms, right: true },
    { header: "MAINTENANCE", value: (h) => h.maintenance },
  ];
  if (wide) {
    cols.unshift({ header: "ID", value: (h) => h.id });
    cols.push(
      { header: "DRIVER", value: (h) => h.driver },
      { header: "ADDRESS", value: (h) => h.address },
      { header: "ES-MODE", value: (h) => h.esMode },
      { header: "VMM", value: (h) => h.vmmProfile },
      { header: "CONNECTION", value: (h) => h.connection },
    );
  }
  return table(cols, hosts);
}
