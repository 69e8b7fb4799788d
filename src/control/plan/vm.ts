/**
 * Dry runs of the requests about one VM: power, delete, migrate, snapshot, clone, create. Each is the request's
 * own pre-queue check (the operation table, power state, placement over the hosts' key slots, name clashes) run
 * through `evaluate`, plus what the change would do to the pools. The routes run the same functions before they
 * queue a real request and answer the refusal they return, so a dry run and the real request agree by
 * construction.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Vm } from "../inventory/types.ts";
import { noValidHost } from "../placement.ts";
import type { Permission } from "../rbac.ts";
import type { ControlContext } from "../services/context.ts";
import { checkMigrate, type MigrationMode, migrationTarget } from "../services/migrate.ts";
import { checkPowerOff, checkPowerOn, checkRestart, checkResume, checkSuspend } from "../services/power.ts";
import { checkClone, checkSnapshot } from "../services/snapshot-clone.ts";
import {
  type CheckedCreate,
  type CreateVmRequest,
  checkCreate,
  checkCreateHost,
  checkDelete,
} from "../services/vm-create.ts";
import {
  type Evaluated,
  evaluate,
  type ItemBase,
  type RequestPlan,
  single,
  type Verdict,
} from "./evaluate.ts";
import { CapacityLedger } from "./ledger.ts";

/** The power requests, by route verb. */
export type PowerVerb = "power-on" | "power-off" | "restart" | "suspend" | "resume";

function vmBase(vm: Vm, ledger: CapacityLedger): ItemBase {
  return {
    target: vm.id,
    name: vm.name,
    kind: "vm",
    hostId: vm.hostId,
    host: ledger.host(vm.hostId)?.name ?? null,
    powerState: vm.powerState,
    before: { securityMode: vm.securityMode, policy: vm.policy },
  };
}

/**
 * The verdict of a power request (or a delete) on `vm`, with the slots it takes or gives back in `ledger`:
 * one check for the single-VM routes and for every VM of `vms:bulk-power`, which sees the slots the VMs before it
 * took. Throws what the real request refuses with.
 */
export function powerVerdict(verb: PowerVerb | "delete", vm: Vm, ledger: CapacityLedger): Verdict {
  switch (verb) {
    case "power-on": {
      if (vm.powerState === "running" || vm.powerState === "paused") {
        return { outcome: "unchanged", reason: `already ${vm.powerState}` };
      }
      checkPowerOn(vm);
      // `checkPowerOn` passed: the VM is off and holds no slot of its own.
      const decision = ledger.choose(vm, { prefer: vm.hostId });
      if (!decision.chosen) throw noValidHost(vm, decision.verdicts);
      const to = decision.chosen.host;
      ledger.take(to.id, vm.securityMode);
      if (to.id !== vm.hostId) {
        ledger.register(vm.hostId, vm.securityMode, -1);
        ledger.register(to.id, vm.securityMode, 1);
      }
      return { outcome: "change", action: "power-on", hostId: to.id, host: to.name };
    }
    case "power-off":
      if (vm.powerState === "off") return { outcome: "unchanged", reason: "already off" };
      checkPowerOff(vm);
      ledger.release(vm.hostId, vm.securityMode);
      return { outcome: "change", action: "power-off" };
    case "restart":
      checkRestart(vm);
      return { outcome: "change", action: vm.securityMode === "none" ? "restart" : "restart (relaunch)" };
    case "suspend":
      checkSuspend(vm);
      return { outcome: "change", action: "suspend" };
    case "resume":
      checkResume(vm);
      return { outcome: "change", action: "resume" };
    case "delete":
      checkDelete(vm);
      ledger.register(vm.hostId, vm.securityMode, -1);
      return { outcome: "change", action: "delete" };
  }
}

/** One VM's item of a power request (or delete), evaluated against `ledger`. */
export function evaluatePower(
  verb: PowerVerb | "delete",
  vm: Vm,
  ledger: CapacityLedger,
): Promise<Evaluated> {
  return evaluate(vmBase(vm, ledger), () => powerVerdict(verb, vm, ledger));
}

/** What a power request would do to `vm`. */
export async function planPower(c: ControlContext, verb: PowerVerb, vm: Vm): Promise<RequestPlan> {
  const ledger = await CapacityLedger.load(c.inventory);
  return single(`vm.${verb}`, await evaluatePower(verb, vm, ledger), ledger.rows());
}

export async function planDelete(c: ControlContext, vm: Vm): Promise<RequestPlan> {
  const ledger = await CapacityLedger.load(c.inventory);
  return single("vm.delete", await evaluatePower("delete", vm, ledger), ledger.rows());
}

export async function planMigrate(
  c: ControlContext,
  vm: Vm,
  mode: MigrationMode,
  targetHostId: string | undefined,
): Promise<RequestPlan> {
  const ledger = await CapacityLedger.load(c.inventory);
  const e = await evaluate(vmBase(vm, ledger), async () => {
    checkMigrate(vm, mode);
    const target = await migrationTarget(c, vm, mode, targetHostId);
    ledger.register(vm.hostId, vm.securityMode, -1);
    ledger.register(target.id, vm.securityMode, 1);
    return { outcome: "change", action: `${mode}-migrate`, hostId: target.id, host: target.name };
  });
  return single("vm.migrate", e, ledger.rows());
}

export async function planSnapshot(
  c: ControlContext,
  vm: Vm,
  name: string,
  memory: boolean,
): Promise<RequestPlan> {
  const ledger = await CapacityLedger.load(c.inventory);
  const e = await evaluate(vmBase(vm, ledger), () => {
    checkSnapshot(vm, memory);
    return { outcome: "change", action: `${memory ? "memory" : "disk"} snapshot ${name}` };
  });
  return single("vm.snapshot", e);
}

function nameTaken(name: string): CiphervisorError {
  return new CiphervisorError("CONFLICT", `a VM named '${name}' already exists`, {
    details: { field: "name" },
  });
}

export async function planClone(c: ControlContext, vm: Vm, name: string): Promise<RequestPlan> {
  const ledger = await CapacityLedger.load(c.inventory);
  const e = await evaluate(vmBase(vm, ledger), async () => {
    checkClone(vm);
    if (await c.inventory.vms.getByName(name)) throw nameTaken(name);
    ledger.register(vm.hostId, vm.securityMode, 1);
    return { outcome: "change", action: `clone to ${name}` };
  });
  return single("vm.clone", e, ledger.rows());
}

/**
 * What a create request would do. `authorize` is asked for the permissions the VM's mode needs once the request
 * itself is known to be valid (it throws FORBIDDEN, which is the request's answer, not a refusal).
 */
export async function planCreate(
  c: ControlContext,
  req: CreateVmRequest,
  authorize: (permissions: readonly Permission[]) => void,
): Promise<RequestPlan & { readonly checked?: CheckedCreate }> {
  const ledger = await CapacityLedger.load(c.inventory);
  const hostId = req.hostId ?? null;
  const base: ItemBase = {
    target: req.name,
    name: req.name,
    kind: "vm",
    hostId,
    host: ledger.host(hostId)?.name ?? null,
    powerState: "off",
  };
  let checked: CheckedCreate | undefined;
  const e = await evaluate(base, async () => {
    const ok = checkCreate(req);
    checked = ok;
    authorize(ok.permissions);
    await checkCreateHost(c, ok);
    if (await c.inventory.vms.getByName(req.name)) throw nameTaken(req.name);
    ledger.register(hostId, ok.vm.securityMode, 1);
    return {
      outcome: "change",
      action: `create (${ok.vm.securityMode})`,
      after: { securityMode: ok.vm.securityMode, policy: ok.vm.policy },
    };
  });
  return { ...single("vm.create", e, ledger.rows()), ...(checked ? { checked } : {}) };
}
