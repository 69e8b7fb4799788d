/**
 * `vms:bulk-power`: power on, power off, restart or delete every VM a selector matches, as ONE operation with a
 * result per VM — what `vm start|stop|restart|delete` over many VMs asks for. The verdicts come first, in id
 * order over one capacity ledger (`control/plan/vm.ts`, the same check the single-VM routes and the dry run use):
 * a later VM sees the key slots the earlier ones take, so the operation refuses exactly the VMs its plan refused
 * (NO_VALID_HOST, the operation table's codes, power-state conflicts), records the ones already as asked as
 * unchanged, and carries out the rest `parallel` at a time, each power-on preferring the host its plan chose. The
 * power-ons reserve their slots through one `Placer` (`capacity.ts`): one read of every host for the operation.
 * The operation goes on when the client that asked for it goes away; a resumed run skips VMs with a result.
 */
import { CiphervisorError } from "../../errors.ts";
import type { AuditEntry } from "../audit/record.ts";
import { Placer } from "../capacity.ts";
import type { Operation, OperationItemResult, Vm } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import { mapLimit } from "../operations/limit.ts";
import type { RunContext } from "../operations/types.ts";
import type { Evaluated } from "../plan/evaluate.ts";
import { CapacityLedger } from "../plan/ledger.ts";
import { type Plan, planOf } from "../plan/types.ts";
import { evaluatePower } from "../plan/vm.ts";
import type { Permission } from "../rbac.ts";
import {
  DEFAULT_RESTART_PARALLEL,
  MAX_RESTART_PARALLEL,
  selectedVms,
  selectorFilter,
  type VmSelector,
} from "./bulk-update.ts";
import { type ControlContext, recordFailure } from "./context.ts";
import { powerOffVm, powerOnVm, restartVm } from "./power.ts";
import { deleteVm } from "./vm-create.ts";

export const BULK_POWER_ACTIONS = ["power-on", "power-off", "restart", "delete"] as const;
export type BulkPowerAction = (typeof BULK_POWER_ACTIONS)[number];

/** The permission an action needs (for every VM it touches). */
export function bulkPowerPermission(action: BulkPowerAction): Permission {
  return action === "delete" ? "vm.delete" : "vm.power";
}

/** Operation params of a bulk power request. */
export function bulkPowerParams(
  selector: VmSelector,
  action: BulkPowerAction,
  parallel?: number,
): JsonObject {
  selectorFilter(selector);
  if (!BULK_POWER_ACTIONS.includes(action)) {
    throw new CiphervisorError("INVALID_INPUT", `action must be one of ${BULK_POWER_ACTIONS.join(", ")}`, {
      details: { field: "action" },
    });
  }
  const p = parallel ?? DEFAULT_RESTART_PARALLEL * 2;
  if (!Number.isInteger(p) || p < 1 || p > MAX_RESTART_PARALLEL) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `parallel must be an integer from 1 to ${MAX_RESTART_PARALLEL}`,
      {
        details: { field: "parallel" },
      },
    );
  }
  return { selector: JSON.parse(JSON.stringify(selector)) as JsonObject, action, parallel: p };
}

/** The verdict on each VM, in order, over one ledger. */
async function judge(
  action: BulkPowerAction,
  vms: readonly Vm[],
  ledger: CapacityLedger,
): Promise<Evaluated[]> {
  const out: Evaluated[] = [];
  for (const vm of vms) out.push(await evaluatePower(action, vm, ledger));
  return out;
}

/** What `vms:bulk-power` would do now, per VM and per host pool. Reads only. */
export async function planBulkPower(
  c: ControlContext,
  selector: VmSelector,
  action: BulkPowerAction,
): Promise<Plan> {
  const vms = await selectedVms(c.inventory, selector);
  const ledger = await CapacityLedger.for(c.inventory, vms);
  const evaluated = await judge(action, vms, ledger);
  return planOf(
    "vm.bulk-power",
    evaluated.map((e) => e.item),
    ledger.rows(),
  );
}

const BODIES: Readonly<
  Record<
    BulkPowerAction,
    (c: ControlContext, op: Operation, vm: Vm, hostId: string | null, placer?: Placer) => Promise<void>
  >
> = {
  "power-on": (c, op, vm, hostId, placer) => powerOnVm(c, op, vm, hostId ?? vm.hostId, placer),
  "power-off": (c, op, vm) => powerOffVm(c, op, vm),
  restart: (c, op, vm) => restartVm(c, op, vm),
  delete: (c, op, vm) => deleteVm(c, op, vm),
};

/** `vm.bulk-power`. */
export function bulkPowerRunner(c: ControlContext) {
  return async (run: RunContext): Promise<undefined> => {
    const op = run.op;
    const selector = op.params.selector as VmSelector;
    const action = op.params.action as BulkPowerAction;
    const parallel = typeof op.params.parallel === "number" ? op.params.parallel : DEFAULT_RESTART_PARALLEL;
    const resumed = op.attempts > 1;
    const recorded = resumed ? await run.recordedTargets() : new Set<string>();
    const vms = (await selectedVms(c.inventory, selector)).filter((v) => !recorded.has(v.id));
    if (!resumed || op.total === 0) {
      await c.inventory.operations.setTotal(op.id, vms.length);
      run.progress();
    }
    const ledger = await CapacityLedger.for(c.inventory, vms);
    const evaluated = await judge(action, vms, ledger);
    // Refused and unchanged VMs are recorded together, with the refusals' audit records.
    const settled: OperationItemResult[] = [];
    const audit: AuditEntry[] = [];
    const todo: { vm: Vm; hostId: string | null }[] = [];
    evaluated.forEach((e, i) => {
      const vm = vms[i] as Vm;
      // A power-on a dead attempt had reserved (`starting`) is finished, not refused.
      const reserved = resumed && action === "power-on" && vm.powerState === "starting";
      if (e.item.outcome === "change" || reserved) todo.push({ vm, hostId: e.item.hostId ?? vm.hostId });
      else if (e.item.outcome === "unchanged") {
        settled.push({ target: vm.id, outcome: "ok", details: { unchanged: e.item.reason ?? true } });
      } else {
        const code = e.item.code ?? "INTERNAL";
        const reason = e.item.reason ?? "";
        settled.push({ target: vm.id, outcome: "failed", code, reason, details: e.item.details ?? null });
        audit.push({
          actor: op.actor,
          action: `vm.${action}`,
          target: vm.id,
          outcome: "failed",
          details: { operationId: op.id, code, reason },
        });
      }
    });
    if (settled.length > 0) {
      await c.inventory.transaction(async (tx) => {
        await tx.operations.recordItems(op.id, settled);
        if (audit.length > 0) await tx.audit.append(audit);
      });
      run.progress();
    }
    // Power-ons take their slots through one placer: one read of every host for the batch, not one per VM.
    const placer = action === "power-on" && todo.length > 0 ? await Placer.load(c.inventory) : undefined;
    await mapLimit(
      todo,
      parallel,
      async ({ vm, hostId }) => {
        try {
          await BODIES[action](c, op, vm, hostId, placer);
        } catch (e) {
          if (!(await run.recordedTargets()).has(vm.id))
            await recordFailure(c, op, { action: `vm.${action}`, target: vm.id }, e);
        }
        run.progress();
      },
      run.signal,
    );
    if (run.signal.aborted)
      throw new CiphervisorError("INTERRUPTED", "the bulk power change was interrupted; it resumes");
    return undefined;
  };
}
