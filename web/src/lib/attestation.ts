/**
 * The guest owner's side of a paused launch: the `ciphervisor owner measure` command line that recomputes the
 * launch digest, as the server built it (`ownerMeasure` of GET /v1/vms/{id}/launch-measurement) and `vm
 * launch-measurement` prints it. The owner's own image files stand in as placeholders — the server reports hashes,
 * never paths — and the dashboard never holds the owner's keys: the owner runs this on their machine.
 */
import type { LaunchMeasurement } from "./types.ts";

/** The whole line to copy. */
export function ownerMeasureLine(m: LaunchMeasurement): string {
  return ["ciphervisor", "owner", "measure", ...m.ownerMeasure].join(" ");
}
