/** Shared test scaffolding for the hypervisor tests (not part of the library API). */
import { createHash } from "node:crypto";
import type { Host } from "./host.ts";
import type { LaunchSpec } from "./types.ts";

export function vmSpec(name: string, patch: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    name,
    vcpus: 1,
    memoryMiB: 64,
    firmware: { kind: "efi" },
    hardwareVersion: 19,
    guestOs: "linux-5.19",
    devices: [],
    security: "none",
    ...patch,
  };
}

/** SHA-256 over every guest page as stored in DRAM (what the hypervisor can see), in GPA order. */
export function memoryHash(host: Host, vm: string): string {
  const view = host.view(vm);
  if (!view) return "powered-off";
  const h = createHash("sha256");
  for (const [gpa, e] of view.guest.npt.entries()) {
    h.update(String(gpa));
    h.update(view.readPhysical(e.hpa, 4096));
  }
  return h.digest("hex");
}
