/**
 * One admitted restart of a bulk update (`bulk-update.ts`): power the running VM off, change it, power it on
 * again — as one item of the bulk operation, with its audit records.
 *
 * 1. Mark it `stopping` (the mark a resumed run recognises), if it still runs as admitted.
 * 2. Stop it on its host; its ASID goes back through DEACTIVATE, DF_FLUSH and DECOMMISSION.
 * 3. Write the change with its audit record (the VM stays `stopping`, so its slot stays counted).
 * 4. Reserve a slot again — its own host preferred — and launch; the item records where it runs.
 *
 * A VM that cannot be stopped keeps running unchanged (failed item). A change that cannot be written is reported,
 * and the VM is still started again: a restart never leaves a VM off because of the change. A VM that cannot start
 * again is recorded off, with the reason.
 */
import { CiphervisorError, isCiphervisorError } from "../../errors.ts";
import { reserveSlot } from "../capacity.ts";
import type { JsonObject } from "../json.ts";
import type { RunContext } from "../operations/types.ts";
import type { AdmittedRestart, Restarter } from "./bulk-update.ts";
import { type ControlContext, connect, getHost, recordFailure } from "./context.ts";
import { recordOff } from "./launch-session.ts";
import { isLaunched, launchReserved } from "./power.ts";

const ACTION = "vm.bulk-update.restart";

/** Marks the VM `stopping` unless something else moved it since it was admitted. */
async function mark(c: ControlContext, a: AdmittedRestart): Promise<"marked" | "resumed" | "moved"> {
  return c.inventory.transaction(async (tx) => {
    const [vm] = await tx.vms.lockMany([a.vm.id]);
    if (!vm) return "moved";
    if (vm.powerState === "stopping" || vm.powerState === "starting") return "resumed";
    if (vm.powerState !== "running" || vm.hostId !== a.vm.hostId) return "moved";
    await tx.vms.update(vm.id, { powerState: "stopping" });
    return "marked";
  });
}

/** The restarter of a real bulk update: through the host drivers. */
export function bulkRestarter(c: ControlContext): Restarter {
  return async (run: RunContext, a: AdmittedRestart): Promise<void> => {
    const { vm, decision } = a;
    const item = (details: JsonObject = {}) => ({ action: ACTION, target: vm.id, details });
    const state = await mark(c, a);
    if (state === "moved") {
      const current = await c.inventory.vms.get(vm.id);
      await recordFailure(
        c,
        run.op,
        item(),
        new CiphervisorError(
          "CONFLICT",
          `VM '${vm.name}' changed while the bulk update ran (now ${current?.powerState ?? "deleted"}); it was left as it is`,
          { details: { vm: vm.id } },
        ),
      );
      return;
    }
    // 2. Stop it where it runs.
    if (vm.hostId !== null) {
      try {
        const h = await connect(c, await getHost(c.inventory, vm.hostId));
        const st = await h.status(vm.id);
        if (st && isLaunched(st.power)) await h.stop(vm.id);
      } catch (e) {
        // Still running unchanged: put the power state back.
        await recordFailure(c, run.op, item(), e, (tx) =>
          tx.vms.update(vm.id, { powerState: vm.powerState }),
        );
        return;
      }
    }
    // 3. The change, with its audit record; the VM stays marked.
    let changeFailure: unknown;
    if (decision.update && decision.audit) {
      const { update, audit } = decision;
      try {
        await c.inventory.transaction(async (tx) => {
          await tx.vms.lockMany([vm.id]);
          await tx.vms.update(vm.id, update.patch);
          await tx.audit.append(audit);
        });
      } catch (e) {
        changeFailure = e;
      }
    }
    // 4. Start it again.
    const details: JsonObject = {
      before: decision.before,
      ...(decision.after && changeFailure === undefined ? { after: decision.after } : {}),
      restarted: true,
    };
    let reservation: Awaited<ReturnType<typeof reserveSlot>>;
    try {
      reservation = await reserveSlot(c.inventory, vm.id, {
        from: ["stopping", "starting"],
        prefer: vm.hostId,
      });
    } catch (e) {
      await recordFailure(c, run.op, item(details), e, (tx) => recordOff(tx, vm.id));
      return;
    }
    try {
      await launchReserved(c, run.op, reservation, ACTION, details);
    } catch (e) {
      if (!isCiphervisorError(e)) throw e;
      return; // recorded off, with the reason, by launchReserved
    }
    if (changeFailure !== undefined) {
      // Running again, unchanged: the item is the change's failure.
      const r = await recordFailure(c, run.op, item({ restartedUnchanged: true }), changeFailure);
      c.log.warn({ op: run.op.id, vm: vm.id, code: r.code }, "bulk update: restarted a VM unchanged");
    }
  };
}
