/**
 * `vms:bulk-update`: turn SEV or SEV-ES on or off, or change the guest policy, for every VM a selector matches —
 * one VM or 10,000 (docs/architecture.md §3.1, "Turn SEV-ES on for 10,000 VMs"). The selector is resolved page by page in id
 * order; each page is one transaction that locks its VMs, checks each one (power state, the host's CPU
 * generation and ES pool, guest OS, EFI, hardware version, devices, and the actor's permission for *this* VM's
 * change), writes the changes, the per-VM results and the audit records together. A VM is either fully changed
 * with its audit record, or untouched with a failed result naming the check. VMs already as asked are `unchanged`
 * (an ok result), never failed. A resumed run skips VMs that already have a result.
 *
 * With `restart`, running VMs are part of the same operation (PowerCLI's `Set-VM` applies to powered-off VMs; a
 * restart is what an administrator does by hand around it): each one that would change is admitted only while its
 * host's pool has a slot it is sure to find again (`CapacityLedger.admit`), then powered off, changed and powered
 * on again, at most `parallel` at a time (`bulk-restart.ts`). A VM that is not admitted stays running untouched
 * with ASID_POOL_EXHAUSTED. The restart of a VM is marked in the inventory by the power state `stopping`, which
 * nothing else writes, so a resumed run finishes the restarts a dead worker began.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { CiphervisorError } from "../../errors.ts";
import { policyAllowsDebug } from "../../hypervisor/operation-rules.ts";
import type { AuditEntry } from "../audit/record.ts";
import { modeChangeFindings, modeName } from "../compat.ts";
import type { InventoryScope } from "../inventory/inventory.ts";
import {
  type OperationItemResult,
  POWER_STATES,
  type PowerState,
  SECURITY_MODES,
  type SecurityMode,
  type Vm,
  type VmFilter,
  type VmUpdate,
} from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import { mapLimit } from "../operations/limit.ts";
import type { RunContext } from "../operations/types.ts";
import { CapacityLedger } from "../plan/ledger.ts";
import { can, type Permission } from "../rbac.ts";
import { classifyChange, resolvePolicy, validatePolicy } from "../security-change.ts";
import type { ControlContext } from "./context.ts";
import { withoutSession } from "./launch-session.ts";

/** Which VMs a bulk request applies to. At least one criterion, or `all: true` for the whole fleet. */
export interface VmSelector {
  readonly all?: boolean;
  readonly ids?: readonly string[];
  readonly namePrefix?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly hostId?: string | null;
  readonly clusterId?: string;
  readonly powerState?: PowerState;
  readonly securityMode?: SecurityMode;
}

/** What to set: a mode, a policy, or both. */
export interface BulkSet {
  readonly securityMode?: SecurityMode;
  readonly policy?: number;
}

const CRITERIA = [
  "ids",
  "namePrefix",
  "labels",
  "hostId",
  "clusterId",
  "powerState",
  "securityMode",
] as const;

/** The inventory filter for a selector; INVALID_INPUT for an empty one (a fleet-wide change must say `all`). */
export function selectorFilter(s: VmSelector): VmFilter {
  const named = CRITERIA.filter((k) => s[k] !== undefined);
  if (named.length === 0 && s.all !== true) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      "selector: name at least one criterion (ids, namePrefix, labels, hostId, clusterId, powerState, securityMode), or set all: true for every VM",
      { details: { field: "selector" } },
    );
  }
  if (s.powerState !== undefined && !POWER_STATES.includes(s.powerState)) {
    throw new CiphervisorError("INVALID_INPUT", "selector.powerState is not a power state", {
      details: { field: "selector.powerState" },
    });
  }
  if (s.securityMode !== undefined && !SECURITY_MODES.includes(s.securityMode)) {
    throw new CiphervisorError("INVALID_INPUT", "selector.securityMode is not a security mode", {
      details: { field: "selector.securityMode" },
    });
  }
  return {
    ...(s.ids === undefined ? {} : { ids: s.ids }),
    ...(s.namePrefix === undefined ? {} : { namePrefix: s.namePrefix }),
    ...(s.labels === undefined ? {} : { labels: s.labels }),
    ...(s.hostId === undefined ? {} : { hostId: s.hostId }),
    ...(s.clusterId === undefined ? {} : { clusterId: s.clusterId }),
    ...(s.powerState === undefined ? {} : { powerState: s.powerState }),
    ...(s.securityMode === undefined ? {} : { securityMode: s.securityMode }),
  };
}

/** Every VM the selector matches now, in id order (all pages). */
export async function selectedVms(scope: Pick<InventoryScope, "vms">, selector: VmSelector): Promise<Vm[]> {
  const filter = selectorFilter(selector);
  const out: Vm[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Vm[]; nextCursor: string | null } = await scope.vms.list(filter, {
      limit: 5000,
      cursor,
    });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

/** What a bulk request needs before anything is resolved: all of `all`, and at least one of `anyOf`. */
export interface RequestPermissions {
  readonly all: Permission[];
  readonly anyOf: Permission[];
}

/**
 * The permissions the request needs whatever it matches (each VM's change is checked again on its own). Setting
 * a mode may turn protection on for one VM and weaken it for another, so the caller must be able to make at least
 * one of the changes it can cause; turning protection off is only ever a downgrade; and a policy that allows debug
 * (NODBG clear; SNP: DEBUG set) always needs its own permission.
 */
export function requestPermissionNeeds(set: BulkSet): RequestPermissions {
  if (set.securityMode === undefined && set.policy === undefined) {
    throw new CiphervisorError("INVALID_INPUT", "set: give securityMode, policy, or both", {
      details: { field: "set" },
    });
  }
  if (set.securityMode === "none" && set.policy !== undefined && set.policy !== 0) {
    throw new CiphervisorError("INVALID_INPUT", "set.policy: an ordinary VM has no guest policy", {
      details: { field: "set.policy" },
    });
  }
  if (set.policy !== undefined && set.securityMode !== undefined)
    validatePolicy(set.securityMode, set.policy, "set.policy");
  const all: Permission[] = [];
  let anyOf: Permission[];
  if (set.securityMode === "none") anyOf = ["vm.security.downgrade"];
  else if (set.securityMode === "sev")
    anyOf = ["vm.security.enable", "vm.security.downgrade", "vm.security.policy"];
  else if (set.securityMode === "sev-es") anyOf = ["vm.security.enable", "vm.security.policy"];
  else if (set.securityMode === "sev-snp") anyOf = ["vm.security.enable", "vm.security.policy"];
  else anyOf = ["vm.security.policy", "vm.security.downgrade"];
  // Without a mode the policy keeps each VM's format; the per-VM classification judges SNP policies exactly.
  if (
    set.policy !== undefined &&
    set.securityMode !== "none" &&
    policyAllowsDebug(set.securityMode ?? "sev", set.policy)
  ) {
    all.push("vm.debug.allow");
  }
  return { all, anyOf };
}

/**
 * Validates `set` and returns the permissions every such request needs (`requestPermissionNeeds(set).all`); the
 * route also requires one of `anyOf`.
 */
export function requestPermissions(set: BulkSet): Permission[] {
  return requestPermissionNeeds(set).all;
}

/** How running VMs are treated: left alone (refused POWER_STATE), or restarted `parallel` at a time. */
export interface RestartOptions {
  readonly restart?: boolean;
  /** Restarts at once (1..64; default 4). */
  readonly parallel?: number;
}

export const DEFAULT_RESTART_PARALLEL = 4;
export const MAX_RESTART_PARALLEL = 64;

/** Operation params of a bulk update. The roles are those of the requester, checked per VM while running. */
export function bulkParams(
  selector: VmSelector,
  set: BulkSet,
  roles: readonly string[],
  options: RestartOptions = {},
): JsonObject {
  const parallel = options.parallel ?? DEFAULT_RESTART_PARALLEL;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > MAX_RESTART_PARALLEL) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `parallel must be an integer from 1 to ${MAX_RESTART_PARALLEL}`,
      {
        details: { field: "parallel" },
      },
    );
  }
  return {
    selector: JSON.parse(JSON.stringify(selector)) as JsonObject,
    set: JSON.parse(JSON.stringify(set)) as JsonObject,
    roles: [...roles],
    ...(options.restart === true ? { restart: true, parallel } : {}),
  };
}

/** One VM's verdict: its result, or the change to write with its audit record (and the result). */
export interface Decision {
  readonly result: OperationItemResult;
  readonly update?: VmUpdate;
  readonly audit?: AuditEntry;
  readonly before: { readonly securityMode: SecurityMode; readonly policy: number };
  readonly after?: { readonly securityMode: SecurityMode; readonly policy: number };
}

/**
 * The verdict on one VM. `power` is the power state the checks assume: the VM's own, or `off` for a running VM
 * that a restart would power off first.
 */
export function decide(
  op: RunContext["op"],
  vm: Vm,
  set: BulkSet,
  roles: readonly string[],
  ledger: CapacityLedger,
  power: Vm["powerState"] = vm.powerState,
): Decision {
  const actor = op.actor;
  const mode = set.securityMode ?? vm.securityMode;
  // Every object of a verdict is built with its keys in sorted order: the audit chain and the item results store
  // them as canonical JSON, which is then JSON.stringify's own output (json.ts), written once per VM.
  const before = { policy: vm.policy, securityMode: vm.securityMode };
  const fail = (code: string, reason: string, details: JsonObject = {}): Decision => ({
    before,
    result: { target: vm.id, outcome: "failed", code, reason, details },
    audit: {
      actor,
      action: "vm.bulk-update",
      target: vm.id,
      outcome: code === "FORBIDDEN" ? "denied" : "failed",
      details: { code, operationId: op.id, reason },
    },
  });
  if (set.securityMode === undefined && mode === "none") {
    return fail("INVALID_INPUT", `VM '${vm.name}' is an ordinary VM and has no guest policy to change`);
  }
  const from = { mode: vm.securityMode, policy: vm.policy };
  const to = { mode, policy: resolvePolicy(from, mode, set.policy) };
  try {
    validatePolicy(to.mode, to.policy);
  } catch (e) {
    return fail("INVALID_INPUT", `VM '${vm.name}': ${(e as Error).message}`);
  }
  const change = classifyChange(from, to);
  if (change.unchanged) {
    return { before, result: { target: vm.id, outcome: "ok", details: { unchanged: true } } };
  }
  const missing = change.permissions.filter((p) => !can(roles, p));
  if (missing.length > 0) {
    return fail(
      "FORBIDDEN",
      `changing VM '${vm.name}' from ${from.mode} (0x${from.policy.toString(16)}) to ${to.mode} (0x${to.policy.toString(16)}) needs ${missing.map((p) => `'${p}'`).join(", ")}`,
      { permissions: missing },
    );
  }
  const findings = modeChangeFindings(
    { ...vm, securityMode: to.mode, policy: to.policy },
    power,
    ledger.host(vm.hostId),
  );
  if (findings.length > 0) {
    const first = findings[0];
    return fail(first?.code ?? "REQUIREMENT_FAILED", findings.map((f) => f.message).join("; "), {
      findings: findings.map((f) => ({ code: f.code, message: f.message })),
    });
  }
  const after = { policy: to.policy, securityMode: to.mode };
  const diff = { after, before };
  // A stored launch session carries the old policy's MAC: it could only fail at LAUNCH_START, so it goes with the
  // change and the VM is no longer waiting for an attested launch.
  const dropSession = vm.spec.launchSession !== undefined || vm.attestationState === "session-set";
  const patch: VmUpdate["patch"] = dropSession
    ? { securityMode: to.mode, policy: to.policy, spec: withoutSession(vm.spec), attestationState: "none" }
    : { securityMode: to.mode, policy: to.policy };
  return {
    before,
    after,
    result: { target: vm.id, outcome: "ok", details: dropSession ? { ...diff, sessionCleared: true } : diff },
    update: { id: vm.id, patch },
    audit: {
      actor,
      action: change.action,
      target: vm.id,
      outcome: "ok",
      details: {
        ...diff,
        operationId: op.id,
        ...(dropSession ? { sessionCleared: true } : {}),
        ...(change.weakened.length > 0 ? { weakened: [...change.weakened] } : {}),
      },
    },
  };
}

/** A running VM admitted for a restart: the verdict taken as if it were powered off. */
export interface AdmittedRestart {
  readonly vm: Vm;
  readonly decision: Decision;
}

/**
 * Carries out admitted restarts. The operation's runner uses the one in `bulk-restart.ts` (through the host
 * drivers); a dry run uses one that only records what would happen.
 */
export type Restarter = (run: RunContext, admitted: AdmittedRestart) => Promise<void>;

/** States a resumed run finds a restart in: marked (`stopping`) or reserved again (`starting`). */
const RESTART_STATES: readonly Vm["powerState"][] = ["stopping", "starting"];

interface BatchOptions {
  readonly set: BulkSet;
  readonly roles: readonly string[];
  readonly ledger: CapacityLedger;
  readonly restart: boolean;
  /** The selector's power state: a resumed restart run lists without it (its restarts left that state). */
  readonly powerState: Vm["powerState"] | undefined;
}

function refuse(
  op: RunContext["op"],
  vm: Vm,
  d: Decision,
  code: string,
  reason: string,
  details: JsonObject,
): Decision {
  return {
    before: d.before,
    result: { target: vm.id, outcome: "failed", code, reason, details },
    audit: {
      actor: op.actor,
      action: "vm.bulk-update",
      target: vm.id,
      outcome: code === "FORBIDDEN" ? "denied" : "failed",
      details: { operationId: op.id, code, reason },
    },
  };
}

/** The verdict on one VM of a page, and whether it is to be restarted. */
function judge(
  run: RunContext,
  vm: Vm,
  o: BatchOptions,
): { decision: Decision; restart: boolean } | undefined {
  const op = run.op;
  const resumed = RESTART_STATES.includes(vm.powerState);
  if (o.powerState !== undefined && vm.powerState !== o.powerState && !resumed) return undefined;
  const candidate = o.restart && (vm.powerState === "running" || resumed);
  const d = decide(op, vm, o.set, o.roles, o.ledger, candidate ? "off" : vm.powerState);
  if (!candidate) return { decision: d, restart: false };
  // A resumed restart goes on whether or not its change was already written (it is then `unchanged`).
  if (resumed && d.result.outcome === "ok") return { decision: d, restart: true };
  if (resumed || !d.update || !d.after) return { decision: d, restart: false };
  if (!can(o.roles, "vm.power")) {
    return {
      decision: refuse(
        op,
        vm,
        d,
        "FORBIDDEN",
        `restarting VM '${vm.name}' to change it needs the 'vm.power' permission; it stays running unchanged`,
        { permissions: ["vm.power"] },
      ),
      restart: false,
    };
  }
  const admitted =
    vm.hostId === null
      ? { ok: true as const }
      : o.ledger.admit(vm.hostId, vm.securityMode, d.after.securityMode);
  if (!admitted.ok) {
    const host = o.ledger.host(vm.hostId);
    const pool = d.after.securityMode === "sev-es" ? "sev-es" : "sev";
    return {
      decision: refuse(
        op,
        vm,
        d,
        "ASID_POOL_EXHAUSTED",
        `host ${host?.name ?? vm.hostId} has no free ${modeName(d.after.securityMode)} key slot for VM '${vm.name}' (${admitted.held} of ${admitted.size} taken once the earlier restarts are done); it stays running unchanged`,
        { pool, size: admitted.size, used: admitted.held },
      ),
      restart: false,
    };
  }
  return { decision: d, restart: true };
}

/**
 * One page, read and locked by the caller's transaction: judge, write the changes of powered-off VMs with their
 * results and audit records. Returns the running VMs admitted for a restart (carried out after the commit).
 */
async function applyBatch(
  tx: InventoryScope,
  run: RunContext,
  vms: readonly Vm[],
  o: BatchOptions,
): Promise<AdmittedRestart[]> {
  const decisions: Decision[] = [];
  const restarts: AdmittedRestart[] = [];
  for (const vm of vms) {
    const j = judge(run, vm, o);
    if (!j) continue;
    if (j.restart) restarts.push({ vm, decision: j.decision });
    else {
      decisions.push(j.decision);
      if (j.decision.update && j.decision.after) {
        o.ledger.register(vm.hostId, vm.securityMode, -1);
        o.ledger.register(vm.hostId, j.decision.after.securityMode, 1);
      }
    }
  }
  const updates = decisions.flatMap((d) => (d.update ? [d.update] : []));
  if (updates.length > 0) await tx.vms.updateMany(updates);
  const results = decisions.map((d) => d.result);
  if (results.length > 0) await tx.operations.recordItems(run.op.id, results);
  const audit = decisions.flatMap((d) => (d.audit ? [d.audit] : []));
  if (audit.length > 0) await tx.audit.append(audit);
  return restarts;
}

/**
 * `vm.bulk-update`. `restarter` carries out the restarts (`bulk-restart.ts` in a real run); `observe` receives the
 * run's capacity ledger (a dry run reports its rows).
 */
export function bulkUpdateRunner(
  c: ControlContext,
  restarter?: Restarter,
  observe?: (ledger: CapacityLedger) => void,
) {
  return async (run: RunContext): Promise<undefined> => {
    const p = run.op.params;
    const selector = p.selector as VmSelector;
    const set = p.set as BulkSet;
    const roles = (p.roles as string[] | undefined) ?? [];
    const restart = p.restart === true;
    const parallel = typeof p.parallel === "number" ? p.parallel : DEFAULT_RESTART_PARALLEL;
    if (restart && !restarter) throw new CiphervisorError("INTERNAL", "a bulk restart needs a restarter");
    const filter = selectorFilter(selector);
    const resumed = run.op.attempts > 1;
    const recorded = resumed ? await run.recordedTargets() : new Set<string>();
    if (!resumed || run.op.total === 0) {
      await c.inventory.operations.setTotal(run.op.id, await c.inventory.vms.count(filter));
      run.progress();
    }
    const ledger = await CapacityLedger.load(c.inventory);
    observe?.(ledger);
    // A resumed restart run lists without the power-state criterion: the VMs it was restarting have left it.
    const { powerState, ...rest } = filter;
    const listed = restart && resumed ? rest : filter;
    const options: BatchOptions = {
      set,
      roles,
      ledger,
      restart,
      powerState: restart && resumed ? powerState : undefined,
    };
    let cursor: string | null = null;
    do {
      // On SQLite every query resolves synchronously, so without this the whole run is one unbroken chain of
      // microtasks: no socket is written or read until it ends (the 202 answer, every SSE frame, the lease
      // renewal timer). One turn of the event loop before each batch lets the streams woken by the last
      // `progress()` send it, and lets new requests in, before the next batch starts.
      await nextTurn();
      if (run.signal.aborted)
        throw new CiphervisorError("INTERRUPTED", "the bulk update was interrupted; it resumes");
      // The page is read, locked, checked and written in one transaction: what is judged is what is changed.
      const from = cursor;
      const { restarts, next } = await c.inventory.transaction(async (tx) => {
        const page = await tx.vms.lockPage(listed, { limit: c.batchSize, cursor: from });
        const vms = page.items.filter((v) => !recorded.has(v.id));
        return {
          restarts: vms.length > 0 ? await applyBatch(tx, run, vms, options) : [],
          next: page.nextCursor,
        };
      });
      run.progress();
      if (restarts.length > 0 && restarter) {
        await mapLimit(
          restarts,
          parallel,
          async (r) => {
            await restarter(run, r);
            run.progress();
          },
          run.signal,
        );
        if (run.signal.aborted)
          throw new CiphervisorError("INTERRUPTED", "the bulk update was interrupted; it resumes");
      }
      cursor = next;
    } while (cursor !== null);
    return undefined;
  };
}
