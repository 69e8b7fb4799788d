/**
 * The guest owner's side of a paused launch: the `ciphervisor owner measure` command line that recomputes the
 * launch digest from the values the server reported (GET /v1/vms/{id}/launch-measurement), as `vm
 * launch-measurement` prints it. The owner's own image files stand in as placeholders — the server reports hashes,
 * never paths — and the dashboard never holds the owner's keys: the owner runs this on their machine.
 */
import type { LaunchMeasurement } from "./types.ts";

export const MEASURE_PLACEHOLDERS = {
  firmware: "FIRMWARE",
  kernel: "KERNEL",
  initrd: "INITRD",
  cmdline: "CMDLINE",
  vcpuType: "VCPU_TYPE",
} as const;

const hex = (n: number) => `0x${n.toString(16)}`;

/** The argv after `ciphervisor owner measure` (same rules as the CLI's `ownerMeasureArgs`). */
export function ownerMeasureArgs(m: LaunchMeasurement): string[] {
  const p = MEASURE_PLACEHOLDERS;
  const args = ["--firmware", p.firmware];
  if (m.images?.kernel) {
    args.push("--kernel", p.kernel);
    if (m.images.initrd) args.push("--initrd", p.initrd);
    if (m.images.cmdline) args.push("--append", p.cmdline);
  }
  args.push("--mode", m.securityMode);
  if (m.securityMode === "sev-es") {
    args.push("--vcpus", String(m.vcpus));
    if (m.cpuSignature) args.push("--vcpu-sig", hex(m.cpuSignature.value));
    else args.push("--vcpu-type", m.vcpuType ?? p.vcpuType);
    args.push("--vmm", m.vmmProfile);
  }
  return args;
}

/** The whole line to copy. */
export function ownerMeasureLine(m: LaunchMeasurement): string {
  return ["ciphervisor", "owner", "measure", ...ownerMeasureArgs(m)].join(" ");
}
