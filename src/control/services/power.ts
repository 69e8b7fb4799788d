/**
 * Power: on, off, restart, suspend, resume. Powering on takes a key slot through placement (`reserveSlot`), then
 * defines the VM on the chosen host from the inventory's record (the source of truth) and launches it; the
 * inventory commits `running` (or `paused`, for an attested launch) with the audit record. A launch that fails
 * puts the VM back `off` in the same transaction as the failure's audit record, so no slot leaks.
 */
import { CiphervisorError } from "../../errors.ts";
import { assertAllowed } from "../../hypervisor/operation-rules.ts";
import type { VmStatus } from "../../hypervisor/types.ts";
import { type Placer, type Reservation, reserveSlot } from "../capacity.ts";
import { hypervisorSpec } from "../compat.ts";
import type { DriverHost } from "../drivers/driver.ts";
import type { Operation, PowerState, Vm } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import type { RunContext } from "../operations/types.ts";
import type { PlaceOptions } from "../placement.ts";
import { type ControlContext, commitItem, connect, getHost, getVm, param, recordFailure } from "./context.ts";
import { resolveBoot } from "./images.ts";
import { recordOff } from "./launch-session.ts";

/** Hypervisor power states in which a VM holds host resources. */
export function isLaunched(power: VmStatus["power"]): boolean {
  return power === "running" || power === "paused" || power === "suspended";
}

function conflict(vm: Vm, what: string): CiphervisorError {
  return new CiphervisorError("CONFLICT", `VM '${vm.name}' is ${vm.powerState}; ${what}`, {
    details: { vm: vm.id, powerState: vm.powerState },
  });
}

export function checkPowerOn(vm: Vm): void {
  assertAllowed(vm.name, vm.securityMode, "power-on");
  if (vm.powerState !== "off") throw conflict(vm, "only a powered-off VM can be powered on");
}

export function checkPowerOff(vm: Vm): void {
  assertAllowed(vm.name, vm.securityMode, "power-off");
  if (vm.powerState === "off") throw conflict(vm, "it is already powered off");
}

export function checkRestart(vm: Vm): void {
  assertAllowed(vm.name, vm.securityMode, "reset");
  if (vm.powerState !== "running") throw conflict(vm, "only a running VM can be restarted");
}

export function checkSuspend(vm: Vm): void {
  assertAllowed(vm.name, vm.securityMode, "suspend");
  if (vm.powerState !== "running") throw conflict(vm, "only a running VM can be suspended");
}

export function checkResume(vm: Vm): void {
  assertAllowed(vm.name, vm.securityMode, "resume");
  if (vm.powerState !== "suspended") throw conflict(vm, "only a suspended VM can be resumed");
}

/** Removes a VM's stale (powered-off) definition from a host it no longer belongs to. */
async function forgetOn(
  c: ControlContext,
  hostId: string | null,
  vmId: string,
  except: string,
): Promise<void> {
  if (hostId === null || hostId === except) return;
  const host = await c.inventory.hosts.get(hostId);
  if (!host) return;
  const h = await connect(c, host);
  const st = await h.status(vmId);
  if (st && !isLaunched(st.power)) await h.undefine(vmId);
}

/** Defines the VM afresh from the inventory (a stale definition may predate a mode change) and starts it. */
async function launch(
  c: ControlContext,
  h: DriverHost,
  vm: Vm,
): Promise<{ status: VmStatus; measured: boolean }> {
  const existing = await h.status(vm.id);
  if (existing && isLaunched(existing.power)) return { status: existing, measured: false }; // a resumed run
  // The catalog images are checked again (one may be unsuitable for a mode set since) and read before the host is
  // touched, so an unsuitable or damaged image refuses the launch with its own code.
  const boot = await resolveBoot(c, vm.spec, vm.securityMode);
  if (existing) await h.undefine(vm.id);
  await h.define({ ...hypervisorSpec(vm), ...boot });
  const r = await h.start(vm.id);
  if (r.status.power === "crashed") {
    const reason = r.status.reason ?? "the guest crashed during boot";
    await h.stop(vm.id);
    throw new CiphervisorError("GUEST_FAULT", `VM '${vm.name}' crashed while booting: ${reason}`, {
      details: { vm: vm.id },
    });
  }
  return { status: r.status, measured: r.launchMeasurement !== undefined };
}

/**
 * Launches a reserved VM on its host and commits it running, with the audit record `action`. On failure the VM
 * goes back `off` with a `failed` audit record, and the error is rethrown for the caller's item result.
 */
export async function launchReserved(
  c: ControlContext,
  op: Operation,
  reservation: Reservation,
  action: string,
  details: JsonObject = {},
): Promise<Vm> {
  const { vm, host } = reservation;
  let started: { status: VmStatus; measured: boolean };
  try {
    const h = await connect(c, host);
    await forgetOn(c, reservation.previous.hostId, vm.id, host.id);
    started = await launch(c, h, vm);
  } catch (e) {
    await recordFailure(c, op, { action, target: vm.id, details: { host: host.name, ...details } }, e, (tx) =>
      recordOff(tx, vm.id),
    );
    throw e;
  }
  const power: PowerState = started.status.power === "paused" ? "paused" : "running";
  const result: JsonObject = {
    hostId: host.id,
    host: host.name,
    powerState: power,
    ...(started.status.asid === undefined ? {} : { asid: started.status.asid }),
    ...details,
  };
  return commitItem(c, op, { action, target: vm.id, details: result, result }, (tx) =>
    tx.vms.update(vm.id, {
      powerState: power,
      ...(started.measured ? { attestationState: "measured" as const } : {}),
    }),
  );
}

/**
 * Reserves a slot for `vm` (from `from` states) and launches it; failures are recorded, then rethrown. `placer`:
 * the batch's placer (many VMs powered on at once, `capacity.ts`) instead of a read of every host for this VM.
 */
export async function startVm(
  c: ControlContext,
  op: Operation,
  vm: Vm,
  action: string,
  place: PlaceOptions & { readonly from: readonly PowerState[] },
  details: JsonObject = {},
  placer?: Placer,
): Promise<Vm> {
  let reservation: Reservation;
  try {
    reservation = await (placer ? placer.reserve(vm.id, place) : reserveSlot(c.inventory, vm.id, place));
  } catch (e) {
    await recordFailure(c, op, { action, target: vm.id, details }, e);
    throw e;
  }
  try {
    return await launchReserved(c, op, reservation, action, details);
  } catch (e) {
    // The launch failed and the VM went back off: its slot is free again for the batch's later VMs.
    placer?.returned(reservation);
    throw e;
  }
}

/** Marks an item done without a change (the VM is already where the request wants it). */
async function noChange(c: ControlContext, op: Operation, target: string, why: string): Promise<void> {
  await c.inventory.operations.recordItems(op.id, [{ target, outcome: "ok", details: { unchanged: why } }]);
}

/** Runs a single-VM operation: skips a VM already recorded (a resumed run), reports progress. */
export function singleVm(
  c: ControlContext,
  action: string,
  body: (vm: Vm, op: Operation) => Promise<void>,
): (run: RunContext) => Promise<undefined> {
  return async (run) => {
    const vmId = param(run.op, "vmId");
    if ((await run.recordedTargets()).has(vmId)) return undefined;
    let vm: Vm;
    try {
      vm = await getVm(c.inventory, vmId);
    } catch (e) {
      await recordFailure(c, run.op, { action, target: vmId }, e);
      run.progress();
      return undefined;
    }
    try {
      await body(vm, run.op);
    } catch (e) {
      // Failures that were not recorded where they happened (checks, driver errors) are recorded here.
      if (!(await run.recordedTargets()).has(vmId))
        await recordFailure(c, run.op, { action, target: vmId }, e);
    }
    run.progress();
    return undefined;
  };
}

/**
 * Powers `vm` on: a key slot through placement (`prefer`: the host to try first, default its own; `placer`: the
 * batch's, when many VMs power on at once), then the launch. Already running or paused: recorded unchanged.
 */
export async function powerOnVm(
  c: ControlContext,
  op: Operation,
  vm: Vm,
  prefer = vm.hostId,
  placer?: Placer,
): Promise<void> {
  if (vm.powerState === "running" || vm.powerState === "paused") {
    return noChange(c, op, vm.id, `already ${vm.powerState}`);
  }
  // A takeover may find its own reservation (`starting`) from the attempt that died.
  const from: PowerState[] = op.attempts > 1 ? ["off", "starting"] : ["off"];
  if (!from.includes(vm.powerState)) checkPowerOn(vm);
  await startVm(c, op, vm, "vm.power-on", { from, prefer }, {}, placer);
}

/** `vm.power-on`. */
export function powerOnRunner(c: ControlContext) {
  return singleVm(c, "vm.power-on", (vm, op) => powerOnVm(c, op, vm));
}

/** Stops the VM on its host if it runs there (a missing definition is drift, repaired by recording `off`). */
async function stopOnHost(c: ControlContext, vm: Vm): Promise<void> {
  if (vm.hostId === null) return;
  const h = await connect(c, await getHost(c.inventory, vm.hostId));
  const st = await h.status(vm.id);
  if (st && isLaunched(st.power)) await h.stop(vm.id);
}

/** Powers `vm` off (its ASID returns to its pool); already off: recorded unchanged. */
export async function powerOffVm(c: ControlContext, op: Operation, vm: Vm): Promise<void> {
  if (vm.powerState === "off") return noChange(c, op, vm.id, "already off");
  checkPowerOff(vm);
  await stopOnHost(c, vm);
  await commitItem(c, op, { action: "vm.power-off", target: vm.id, details: { hostId: vm.hostId } }, (tx) =>
    recordOff(tx, vm.id),
  );
}

/** `vm.power-off`. */
export function powerOffRunner(c: ControlContext) {
  return singleVm(c, "vm.power-off", (vm, op) => powerOffVm(c, op, vm));
}

/** Runs a table operation on the VM's host (must be defined there). */
async function onHost(
  c: ControlContext,
  vm: Vm,
  fn: (h: DriverHost) => Promise<VmStatus>,
): Promise<VmStatus> {
  if (vm.hostId === null) throw new CiphervisorError("CONFLICT", `VM '${vm.name}' is not placed on a host`);
  const h = await connect(c, await getHost(c.inventory, vm.hostId));
  if (!(await h.status(vm.id))) {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is not defined on its host; power it off and on again`,
    );
  }
  return fn(h);
}

/** Restarts `vm`: an SEV or SEV-ES VM is relaunched (a new launch and measurement), as its host requires. */
export async function restartVm(c: ControlContext, op: Operation, vm: Vm): Promise<void> {
  checkRestart(vm);
  const st = await onHost(c, vm, (h) => h.reset(vm.id));
  await commitItem(
    c,
    op,
    {
      action: "vm.restart",
      target: vm.id,
      details: { hostId: vm.hostId, relaunched: vm.securityMode !== "none" },
    },
    async () => st,
  );
}

/** `vm.restart`. */
export function restartRunner(c: ControlContext) {
  return singleVm(c, "vm.restart", (vm, op) => restartVm(c, op, vm));
}

/** `vm.suspend` (the operation table refuses it for SEV and SEV-ES VMs). */
export function suspendRunner(c: ControlContext) {
  return singleVm(c, "vm.suspend", async (vm, op) => {
    checkSuspend(vm);
    await onHost(c, vm, (h) => h.perform(vm.id, "suspend"));
    await commitItem(c, op, { action: "vm.suspend", target: vm.id }, (tx) =>
      tx.vms.update(vm.id, { powerState: "suspended" }),
    );
  });
}

/** `vm.resume`. */
export function resumeRunner(c: ControlContext) {
  return singleVm(c, "vm.resume", async (vm, op) => {
    checkResume(vm);
    await onHost(c, vm, (h) => h.perform(vm.id, "resume"));
    await commitItem(c, op, { action: "vm.resume", target: vm.id }, (tx) =>
      tx.vms.update(vm.id, { powerState: "running" }),
    );
  });
}
