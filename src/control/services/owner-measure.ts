/**
 * The `ciphervisor owner measure` arguments that recompute a paused VM's launch digest from what the host reported
 * alone (docs/sev-interface.md §8.1, §12.2): built once here, reported by `GET /v1/vms/{id}/launch-measurement`,
 * and printed as they are by the CLI and the dashboard. The owner's own copies of the images stand in as
 * placeholders — the server reports hashes, never paths — and the placeholders are plain words, so the line needs
 * no shell quoting.
 */
import type { LaunchMeasurementInfo } from "./attestation.ts";

/** Placeholders for the owner's own files: what the owner replaces with their paths. */
export const MEASURE_PLACEHOLDERS = {
  firmware: "FIRMWARE",
  kernel: "KERNEL",
  initrd: "INITRD",
  cmdline: "CMDLINE",
  vcpuType: "VCPU_TYPE",
} as const;

type Inputs = Pick<
  LaunchMeasurementInfo,
  "images" | "securityMode" | "vcpus" | "cpuSignature" | "vcpuType" | "vmmProfile"
>;

/** The argv after `ciphervisor owner measure`. */
export function ownerMeasureArgs(m: Inputs): string[] {
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
    if (m.cpuSignature) args.push("--vcpu-sig", `0x${m.cpuSignature.value.toString(16)}`);
    else args.push("--vcpu-type", m.vcpuType ?? p.vcpuType);
    args.push("--vmm", m.vmmProfile);
  }
  return args;
}
