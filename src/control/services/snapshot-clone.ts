/**
 * Snapshots and clones, through the operation table: a memory snapshot or a hot clone copies running guest memory
 * (and registers), so SEV and SEV-ES VMs are refused with the table's code; disk snapshots and cold clones work
 * for every mode. A clone is a new, powered-off VM with the parent's spec, mode and policy — and, when the parent
 * is defined on a host, defined on that host too.
 */
import { CiphervisorError } from "../../errors.ts";
import { assertAllowed, type Operation as TableOperation } from "../../hypervisor/operation-rules.ts";
import { newId } from "../ids.ts";
import type { Vm } from "../inventory/types.ts";
import type { Permission } from "../rbac.ts";
import { classifyChange } from "../security-change.ts";
import { type ControlContext, commitItem, connect, getHost, param } from "./context.ts";
import { withoutSession } from "./launch-session.ts";
import { isLaunched, singleVm } from "./power.ts";

const ON = ["running", "paused", "suspended"];

/** The table operation a snapshot request is. */
export function snapshotOperation(memory: boolean): TableOperation {
  return memory ? "memory-snapshot" : "disk-snapshot";
}

export function checkSnapshot(vm: Vm, memory: boolean): void {
  assertAllowed(vm.name, vm.securityMode, snapshotOperation(memory));
  if (memory && !ON.includes(vm.powerState)) {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}; a memory snapshot needs a running VM`,
      {
        details: { vm: vm.id, powerState: vm.powerState },
      },
    );
  }
}

/** The table operation a clone of `vm` is, given its power state. */
export function cloneOperation(vm: Vm): TableOperation {
  return ON.includes(vm.powerState) ? "hot-clone" : "cold-clone";
}

export function checkClone(vm: Vm): void {
  assertAllowed(vm.name, vm.securityMode, cloneOperation(vm));
  if (vm.powerState === "starting" || vm.powerState === "stopping") {
    throw new CiphervisorError("CONFLICT", `VM '${vm.name}' is ${vm.powerState}; retry once it settles`);
  }
}

/** A clone creates a VM of the parent's mode: the same permissions as creating one. */
export function clonePermissions(vm: Vm): Permission[] {
  return [
    "vm.create",
    ...classifyChange({ mode: "none", policy: 0 }, { mode: vm.securityMode, policy: vm.policy }).permissions,
  ];
}

/** `vm.snapshot`. */
export function snapshotRunner(c: ControlContext) {
  return singleVm(c, "vm.snapshot", async (vm, op) => {
    const memory = op.params.memory === true;
    const name = param(op, "name");
    checkSnapshot(vm, memory);
    if (vm.hostId !== null) {
      const h = await connect(c, await getHost(c.inventory, vm.hostId));
      if (await h.status(vm.id)) await h.perform(vm.id, snapshotOperation(memory), { snapshot: name });
    }
    const details = { snapshot: name, memory };
    await commitItem(
      c,
      op,
      { action: "vm.snapshot", target: vm.id, details, result: details },
      async () => undefined,
    );
  });
}

/** `vm.clone`. */
export function cloneRunner(c: ControlContext) {
  return singleVm(c, "vm.clone", async (vm, op) => {
    const name = param(op, "name");
    checkClone(vm);
    if (await c.inventory.vms.getByName(name)) {
      throw new CiphervisorError("CONFLICT", `a VM named '${name}' already exists`, {
        details: { field: "name" },
      });
    }
    const id = newId("vm", Date.now());
    let definedOn: string | null = null;
    if (vm.hostId !== null) {
      const h = await connect(c, await getHost(c.inventory, vm.hostId));
      const st = await h.status(vm.id);
      if (st) {
        await h.perform(vm.id, isLaunched(st.power) ? "hot-clone" : "cold-clone", { clone: id });
        definedOn = vm.hostId;
      }
    }
    const details = { cloneId: id, name, hostId: definedOn };
    try {
      await commitItem(c, op, { action: "vm.clone", target: vm.id, details, result: details }, (tx) =>
        tx.vms.create({
          id,
          name,
          clusterId: vm.clusterId,
          hostId: definedOn,
          // A launch session is one-shot and the parent's: the clone starts without one.
          spec: withoutSession(vm.spec),
          securityMode: vm.securityMode,
          policy: vm.policy,
          labels: vm.labels,
        }),
      );
    } catch (e) {
      if (definedOn !== null) {
        const h = await connect(c, await getHost(c.inventory, definedOn));
        await h.undefine(id).catch(() => undefined);
      }
      throw e;
    }
  });
}
