/**
 * Migration, as the operation table allows it: live migration (vMotion) for ordinary running VMs only — SEV and
 * SEV-ES VMs are refused with the table's code and reason — and cold migration of powered-off VMs of any mode,
 * whose next power-on is a fresh launch on the new host. The target is checked like any placement (compatibility,
 * maintenance; a cold move needs no free slot because a powered-off VM holds none).
 */
import { CiphervisorError } from "../../errors.ts";
import { assertAllowed } from "../../hypervisor/operation-rules.ts";
import { hostViews } from "../capacity.ts";
import type { Host, Vm } from "../inventory/types.ts";
import { choosePlacement, noValidHost } from "../placement.ts";
import { type ControlContext, commitItem, connect, getHost, optionalParam, param } from "./context.ts";
import { isLaunched, singleVm } from "./power.ts";

export const MIGRATION_MODES = ["live", "cold"] as const;
export type MigrationMode = (typeof MIGRATION_MODES)[number];

/** Refuses what the table refuses (409 with its code), and wrong power states. */
export function checkMigrate(vm: Vm, mode: MigrationMode): void {
  assertAllowed(vm.name, vm.securityMode, mode === "live" ? "live-migrate" : "cold-migrate");
  if (mode === "live" && vm.powerState !== "running") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}; live migration needs a running VM`,
      {
        details: { vm: vm.id, powerState: vm.powerState },
      },
    );
  }
  if (mode === "cold" && vm.powerState !== "off") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}; power it off to cold-migrate it (its next power-on launches afresh)`,
      { details: { vm: vm.id, powerState: vm.powerState } },
    );
  }
}

/** The host a migration goes to: the requested one if it qualifies, else the best other host. */
export async function migrationTarget(
  c: ControlContext,
  vm: Vm,
  mode: MigrationMode,
  targetHostId?: string,
): Promise<Host> {
  if (targetHostId !== undefined) await getHost(c.inventory, targetHostId);
  const decision = choosePlacement(vm, await hostViews(c.inventory), {
    exclude: vm.hostId === null ? [] : [vm.hostId],
    ...(targetHostId === undefined ? {} : { only: [targetHostId] }),
    // A running VM keeps using its slot across a live move; only ordinary VMs move live, and they have none.
    needSlot: false,
  });
  if (!decision.chosen) throw noValidHost(vm, decision.verdicts, `${mode}-migrate`);
  return decision.chosen.host;
}

/** `vm.migrate`. */
export function migrateRunner(c: ControlContext) {
  return singleVm(c, "vm.migrate", async (vm, op) => {
    const mode = param(op, "mode") as MigrationMode;
    checkMigrate(vm, mode);
    const target = await migrationTarget(c, vm, mode, optionalParam(op, "targetHostId"));
    const dst = await connect(c, target);
    const from = vm.hostId === null ? undefined : await getHost(c.inventory, vm.hostId);
    if (from) {
      const src = await connect(c, from);
      const st = await src.status(vm.id);
      if (mode === "live") {
        if (!st || !isLaunched(st.power)) {
          throw new CiphervisorError("CONFLICT", `VM '${vm.name}' is not running on host ${from.name}`);
        }
        await src.liveMigrate(vm.id, dst);
      } else if (st) {
        await src.coldMigrate(vm.id, dst);
      }
    }
    const details = { mode, fromHostId: vm.hostId, toHostId: target.id, to: target.name };
    await commitItem(c, op, { action: "vm.migrate", target: vm.id, details, result: details }, (tx) =>
      tx.vms.update(vm.id, { hostId: target.id }),
    );
  });
}
