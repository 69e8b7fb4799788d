/**
 * Maintenance mode (docs/product-behaviour.md §6). Entering it first marks the host `entering`, so placement stops
 * choosing it, then drains it: ordinary running VMs live-migrate to another compatible host; SEV and SEV-ES VMs,
 * which cannot be live-migrated, are shut down and restarted on a compatible host with a free slot in their pool
 * (what vSphere with Tanzu does for its VMs) — a new launch with a new measurement, so a VM whose guest owner
 * attests it is reported as needing its owner again. Powered-off VMs stay registered. The operation reports each
 * VM's path; when no host has a free slot, exactly those VMs fail (NO_VALID_HOST, with a reason per host), stay
 * running where they are, and the host stays `entering`. Exiting returns the host to service.
 */
import { CiphervisorError, isCiphervisorError } from "../../errors.ts";
import { liveMigratable } from "../../hypervisor/operation-rules.ts";
import { hostViews, reserveSlot } from "../capacity.ts";
import { modeName, poolOf } from "../compat.ts";
import type { Host, Vm } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import { mapLimit } from "../operations/limit.ts";
import type { RunContext } from "../operations/types.ts";
import { choosePlacement, type HostView, noValidHost } from "../placement.ts";
import { type ControlContext, commitItem, connect, getHost, param, recordFailure } from "./context.ts";
import { migrationTarget } from "./migrate.ts";
import { isLaunched, launchReserved } from "./power.ts";

/** How a drain moves one VM; `blocked` VMs (suspended, or in a power transition) need a person first. */
export type DrainPath = "live-migrate" | "restart-elsewhere" | "nothing-to-do" | "blocked";

/** One VM of a drain plan or drain result. */
export interface DrainPlanStep {
  readonly vmId: string;
  readonly vm: string;
  readonly securityMode: Vm["securityMode"];
  readonly powerState: Vm["powerState"];
  readonly path: DrainPath;
  readonly reason: string;
  /** The pool an encrypted VM needs on its new host. */
  readonly pool?: "sev" | "sev-es";
  /** Where it would go now, or why nowhere. */
  readonly target?: { readonly hostId: string; readonly host: string };
  readonly blocked?: string;
  /** True when the guest owner must attest (and inject secrets) again after the restart. */
  readonly needsOwner?: boolean;
}

const MOVING = ["running", "paused"];
/** States in which a VM still holds the host: the drain is not complete while one remains. */
const HOLDING = ["running", "paused", "suspended", "starting", "stopping"];

/** The path the operation table dictates for `vm` (live migration where allowed, else restart elsewhere). */
export function drainPath(vm: Vm): { path: DrainPath; reason: string } {
  if (vm.powerState === "off")
    return { path: "nothing-to-do", reason: "powered off: stays registered on the host" };
  if (!MOVING.includes(vm.powerState)) {
    return {
      path: "blocked",
      reason:
        vm.powerState === "suspended"
          ? "suspended: resume or power it off before the host can be drained"
          : `${vm.powerState}: in a power transition; retry once it settles`,
    };
  }
  if (liveMigratable(vm.securityMode).status && vm.powerState === "running") {
    return { path: "live-migrate", reason: "ordinary VM: live migration (vMotion)" };
  }
  return {
    path: "restart-elsewhere",
    reason: `${modeName(vm.securityMode)} VMs cannot be live-migrated: shut down and restarted on a host with a free ${modeName(vm.securityMode)} ASID`,
  };
}

async function vmsOn(c: ControlContext, hostId: string): Promise<Vm[]> {
  const out: Vm[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Vm[]; nextCursor: string | null } = await c.inventory.vms.list(
      { hostId },
      { limit: 5000, cursor },
    );
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

/**
 * What entering maintenance would do now: each VM's path and target, with the slots the earlier VMs of the plan
 * take counted, so "whether the remaining hosts have capacity in each pool" is answered per VM.
 */
export async function drainPlan(c: ControlContext, hostId: string): Promise<DrainPlanStep[]> {
  const host = await getHost(c.inventory, hostId);
  const views = new Map<string, HostView>((await hostViews(c.inventory)).map((v) => [v.host.id, v]));
  const out: DrainPlanStep[] = [];
  for (const vm of await vmsOn(c, host.id)) {
    const { path, reason } = drainPath(vm);
    const pool = poolOf(vm.securityMode);
    const base = {
      vmId: vm.id,
      vm: vm.name,
      securityMode: vm.securityMode,
      powerState: vm.powerState,
      path,
      reason,
      ...(pool === undefined
        ? {}
        : { pool: vm.securityMode === "sev-es" ? ("sev-es" as const) : ("sev" as const) }),
      ...(path === "restart-elsewhere" && vm.spec.attestation === true ? { needsOwner: true } : {}),
    };
    if (path === "nothing-to-do" || path === "blocked") {
      out.push(path === "blocked" ? { ...base, blocked: reason } : base);
      continue;
    }
    const decision = choosePlacement(vm, [...views.values()], {
      exclude: [host.id],
      needSlot: path === "restart-elsewhere",
    });
    const chosen = decision.chosen;
    if (!chosen) {
      out.push({ ...base, blocked: noValidHost(vm, decision.verdicts, "move").message });
      continue;
    }
    if (pool !== undefined) {
      // The plan's own restarts fill the pools too.
      views.set(chosen.host.id, { ...chosen, used: { ...chosen.used, [pool]: chosen.used[pool] + 1 } });
    }
    out.push({ ...base, target: { hostId: chosen.host.id, host: chosen.host.name } });
  }
  return out;
}

/** Live-migrates one ordinary VM off `source`. */
async function liveMove(c: ControlContext, run: RunContext, source: Host, vm: Vm): Promise<void> {
  const target = await migrationTarget(c, vm, "live");
  const src = await connect(c, source);
  await src.liveMigrate(vm.id, await connect(c, target));
  const details = { path: "live-migrate", from: source.name, toHostId: target.id, to: target.name };
  await commitItem(c, run.op, { action: "vm.migrate", target: vm.id, details, result: details }, (tx) =>
    tx.vms.update(vm.id, { hostId: target.id }),
  );
}

/**
 * Restarts one encrypted VM elsewhere: reserve a slot on another host first (so a full fleet leaves the VM running
 * where it is), then power it off here (its ASID returns to the pool through DF_FLUSH) and launch it there.
 */
async function restartElsewhere(c: ControlContext, run: RunContext, source: Host, vm: Vm): Promise<void> {
  const needsOwner = vm.spec.attestation === true;
  const details: JsonObject = {
    path: "restart-elsewhere",
    from: source.name,
    ...(needsOwner ? { needsOwner } : {}),
  };
  const reservation = await reserveSlot(c.inventory, vm.id, {
    from: ["running", "paused"],
    exclude: [source.id],
  });
  try {
    const src = await connect(c, source);
    const st = await src.status(vm.id);
    if (st && isLaunched(st.power)) await src.stop(vm.id);
  } catch (e) {
    // Could not stop it here: give the slot back and leave the VM as it was.
    await recordFailure(c, run.op, { action: "vm.migrate", target: vm.id, details }, e, (tx) =>
      tx.vms.update(vm.id, { hostId: source.id, powerState: vm.powerState }),
    );
    throw e;
  }
  await launchReserved(c, run.op, reservation, "vm.migrate", {
    ...details,
    toHostId: reservation.host.id,
    to: reservation.host.name,
  });
}

async function drainOne(c: ControlContext, run: RunContext, source: Host, vm: Vm): Promise<void> {
  const { path, reason } = drainPath(vm);
  try {
    if (path === "nothing-to-do") {
      await c.inventory.operations.recordItems(run.op.id, [
        { target: vm.id, outcome: "ok", details: { path, unchanged: reason } },
      ]);
    } else if (path === "blocked") {
      throw new CiphervisorError("CONFLICT", `VM '${vm.name}' is ${reason}`, {
        details: { vm: vm.id, powerState: vm.powerState },
      });
    } else if (path === "live-migrate") {
      await liveMove(c, run, source, vm);
    } else {
      await restartElsewhere(c, run, source, vm);
    }
  } catch (e) {
    if (!(await run.recordedTargets()).has(vm.id)) {
      await recordFailure(c, run.op, { action: "vm.migrate", target: vm.id, details: { path } }, e);
    }
    if (!isCiphervisorError(e)) throw e;
  }
  run.progress();
}

async function setMaintenance(
  c: ControlContext,
  run: RunContext,
  host: Host,
  state: Host["maintenance"],
  action: string,
  details: JsonObject = {},
): Promise<Host> {
  return c.inventory.transaction(async (tx) => {
    const updated = await tx.hosts.update(host.id, { maintenance: state });
    await tx.audit.append({
      actor: run.op.actor,
      action,
      target: host.id,
      outcome: "ok",
      details: { operationId: run.op.id, host: host.name, maintenance: state, ...details },
    });
    return updated;
  });
}

/**
 * After a takeover: a VM the dead attempt had already reserved elsewhere (`starting` on its new host) but not yet
 * stopped here is still launched on this host. Finish its move rather than leave it running on a host that the
 * inventory no longer lists it on.
 */
async function resumeInterruptedMoves(c: ControlContext, run: RunContext, source: Host): Promise<void> {
  const src = await connect(c, source);
  const recorded = await run.recordedTargets();
  for (const st of await src.list()) {
    if (!isLaunched(st.power) || recorded.has(st.name)) continue;
    const vm = await c.inventory.vms.get(st.name);
    if (!vm || vm.hostId === null || vm.hostId === source.id || vm.powerState !== "starting") continue;
    const details: JsonObject = { path: "restart-elsewhere", from: source.name, resumed: true };
    try {
      const target = await getHost(c.inventory, vm.hostId);
      await src.stop(vm.id);
      await launchReserved(
        c,
        run.op,
        { vm, host: target, previous: { hostId: source.id, powerState: "running" } },
        "vm.migrate",
        { ...details, toHostId: target.id, to: target.name },
      );
    } catch (e) {
      if (!(await run.recordedTargets()).has(vm.id)) {
        await recordFailure(c, run.op, { action: "vm.migrate", target: vm.id, details }, e);
      }
    }
  }
}

/** CONFLICT when the host is already in maintenance mode (entering again resumes a drain that did not finish). */
export function checkEnterMaintenance(host: Host): void {
  if (host.maintenance === "in-maintenance") {
    throw new CiphervisorError("CONFLICT", `host ${host.name} is already in maintenance mode`, {
      details: { host: host.id },
    });
  }
}

/** `host.enter-maintenance`. */
export function enterMaintenanceRunner(c: ControlContext) {
  return async (run: RunContext) => {
    let host = await getHost(c.inventory, param(run.op, "hostId"));
    if (host.maintenance === "none")
      host = await setMaintenance(c, run, host, "entering", "host.maintenance.enter");
    if (run.op.attempts > 1) await resumeInterruptedMoves(c, run, host);
    // Everything still on the host is (re)tried: VMs moved by an earlier attempt are no longer here, and a VM
    // that failed then (no free slot) gets another chance; its new result replaces the old one.
    const todo = await vmsOn(c, host.id);
    const targets = new Set([...(await run.recordedTargets()), ...todo.map((v) => v.id)]);
    await c.inventory.operations.setTotal(run.op.id, targets.size);
    run.progress();
    await mapLimit(todo, c.parallelism, (vm) => drainOne(c, run, host, vm), run.signal);
    if (run.signal.aborted)
      throw new CiphervisorError("INTERRUPTED", "the drain was interrupted; it resumes");
    const left = (await vmsOn(c, host.id)).filter((v) => HOLDING.includes(v.powerState));
    if (left.length > 0) {
      return {
        error: {
          code: "MAINTENANCE_INCOMPLETE",
          message: `host ${host.name} stays in 'entering' maintenance: ${left.length} VM(s) could not move (${left
            .map((v) => v.name)
            .join(", ")})`,
        },
      };
    }
    await setMaintenance(c, run, host, "in-maintenance", "host.maintenance.entered", { moved: todo.length });
    return undefined;
  };
}

/** `host.exit-maintenance`: back in service, a placement candidate again. */
export function exitMaintenanceRunner(c: ControlContext) {
  return async (run: RunContext) => {
    const host = await getHost(c.inventory, param(run.op, "hostId"));
    if ((await run.recordedTargets()).has(host.id)) return undefined;
    if (host.maintenance === "none") {
      await c.inventory.operations.recordItems(run.op.id, [
        { target: host.id, outcome: "ok", details: { unchanged: "not in maintenance" } },
      ]);
      return undefined;
    }
    await c.inventory.transaction(async (tx) => {
      await tx.hosts.update(host.id, { maintenance: "none" });
      await tx.operations.recordItems(run.op.id, [
        { target: host.id, outcome: "ok", details: { maintenance: "none" } },
      ]);
      await tx.audit.append({
        actor: run.op.actor,
        action: "host.maintenance.exit",
        target: host.id,
        outcome: "ok",
        details: { operationId: run.op.id, host: host.name },
      });
    });
    run.progress();
    return undefined;
  };
}
