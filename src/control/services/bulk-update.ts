/**
 * `vms:bulk-update`: turn SEV or SEV-ES on or off, or change the guest policy, for every VM a selector matches —
 * one VM or 10,000 (DESIGN.md, "Turn SEV-ES on for 10,000 VMs"). The selector is resolved page by page in id
 * order; each page is one transaction that locks its VMs, checks each one (power state, the host's CPU
 * generation and ES pool, guest OS, EFI, hardware version, devices, and the actor's permission for *this* VM's
 * change), writes the changes, the per-VM results and the audit records together. A VM is either fully changed
 * with its audit record, or untouched with a failed result naming the check. A resumed run skips VMs that already
 * have a result.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { CiphervisorError } from "../../errors.ts";
import { PolicyBit } from "../../sev/policy.ts";
import type { AuditEntry } from "../audit/record.ts";
import { allHosts } from "../capacity.ts";
import { modeChangeFindings } from "../compat.ts";
import type { InventoryScope } from "../inventory/inventory.ts";
import {
  type Host,
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
import type { RunContext } from "../operations/types.ts";
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

/** What a bulk request needs before anything is resolved: all of `all`, and at least one of `anyOf`. */
export interface RequestPermissions {
  readonly all: Permission[];
  readonly anyOf: Permission[];
}

/**
 * The permissions the request needs whatever it matches (each VM's change is checked again on its own). Setting
 * a mode may turn protection on for one VM and weaken it for another, so the caller must be able to make at least
 * one of the changes it can cause; turning protection off is only ever a downgrade; and a policy with NODBG clear
 * asks to allow debug, which always needs its own permission.
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
  else anyOf = ["vm.security.policy", "vm.security.downgrade"];
  if (set.policy !== undefined && set.securityMode !== "none" && (set.policy & PolicyBit.NODBG) === 0) {
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

/** Operation params of a bulk update. The roles are those of the requester, checked per VM while running. */
export function bulkParams(selector: VmSelector, set: BulkSet, roles: readonly string[]): JsonObject {
  return {
    selector: JSON.parse(JSON.stringify(selector)) as JsonObject,
    set: JSON.parse(JSON.stringify(set)) as JsonObject,
    roles: [...roles],
  };
}

interface Decision {
  readonly result: OperationItemResult;
  readonly update?: VmUpdate;
  readonly audit?: AuditEntry;
}

function decide(
  run: RunContext,
  vm: Vm,
  set: BulkSet,
  roles: readonly string[],
  hosts: ReadonlyMap<string, Host>,
): Decision {
  const actor = run.op.actor;
  const mode = set.securityMode ?? vm.securityMode;
  const fail = (code: string, reason: string, details: JsonObject = {}): Decision => ({
    result: { target: vm.id, outcome: "failed", code, reason, details },
    audit: {
      actor,
      action: "vm.bulk-update",
      target: vm.id,
      outcome: code === "FORBIDDEN" ? "denied" : "failed",
      details: { operationId: run.op.id, code, reason },
    },
  });
  if (set.securityMode === undefined && mode === "none") {
    return fail("INVALID_INPUT", `VM '${vm.name}' is an ordinary VM and has no guest policy to change`);
  }
  const before = { mode: vm.securityMode, policy: vm.policy };
  const after = { mode, policy: resolvePolicy(before, mode, set.policy) };
  try {
    validatePolicy(after.mode, after.policy);
  } catch (e) {
    return fail("INVALID_INPUT", `VM '${vm.name}': ${(e as Error).message}`);
  }
  const change = classifyChange(before, after);
  if (change.unchanged) return { result: { target: vm.id, outcome: "ok", details: { unchanged: true } } };
  const missing = change.permissions.filter((p) => !can(roles, p));
  if (missing.length > 0) {
    return fail(
      "FORBIDDEN",
      `changing VM '${vm.name}' from ${before.mode} (0x${before.policy.toString(16)}) to ${after.mode} (0x${after.policy.toString(16)}) needs ${missing.map((p) => `'${p}'`).join(", ")}`,
      { permissions: missing },
    );
  }
  const host = vm.hostId === null ? undefined : hosts.get(vm.hostId);
  const findings = modeChangeFindings(
    { ...vm, securityMode: after.mode, policy: after.policy },
    vm.powerState,
    host,
  );
  if (findings.length > 0) {
    const first = findings[0];
    return fail(first?.code ?? "REQUIREMENT_FAILED", findings.map((f) => f.message).join("; "), {
      findings: findings.map((f) => ({ code: f.code, message: f.message })),
    });
  }
  const diff = {
    before: { securityMode: before.mode, policy: before.policy },
    after: { securityMode: after.mode, policy: after.policy },
  };
  // A stored launch session carries the old policy's MAC: it could only fail at LAUNCH_START, so it goes with the
  // change and the VM is no longer waiting for an attested launch.
  const dropSession = vm.spec.launchSession !== undefined || vm.attestationState === "session-set";
  const patch: VmUpdate["patch"] = dropSession
    ? {
        securityMode: after.mode,
        policy: after.policy,
        spec: withoutSession(vm.spec),
        attestationState: "none",
      }
    : { securityMode: after.mode, policy: after.policy };
  return {
    result: { target: vm.id, outcome: "ok", details: dropSession ? { ...diff, sessionCleared: true } : diff },
    update: { id: vm.id, patch },
    audit: {
      actor,
      action: change.action,
      target: vm.id,
      outcome: "ok",
      details: {
        operationId: run.op.id,
        ...diff,
        ...(change.weakened.length > 0 ? { weakened: change.weakened } : {}),
        ...(dropSession ? { sessionCleared: true } : {}),
      },
    },
  };
}

/** One batch: lock, decide, write changes + results + audit records, all in one transaction. */
async function applyBatch(
  tx: InventoryScope,
  run: RunContext,
  ids: readonly string[],
  set: BulkSet,
  roles: readonly string[],
  hosts: ReadonlyMap<string, Host>,
): Promise<void> {
  const vms = await tx.vms.lockMany(ids);
  const decisions = vms.map((vm) => decide(run, vm, set, roles, hosts));
  // VMs deleted since the page was read have no row to lock: report them rather than drop them silently.
  const seen = new Set(vms.map((v) => v.id));
  const gone: OperationItemResult[] = ids
    .filter((id) => !seen.has(id))
    .map((id) => ({ target: id, outcome: "failed", code: "NOT_FOUND", reason: `VM ${id} was deleted` }));
  const updates = decisions.flatMap((d) => (d.update ? [d.update] : []));
  if (updates.length > 0) await tx.vms.updateMany(updates);
  await tx.operations.recordItems(run.op.id, [...decisions.map((d) => d.result), ...gone]);
  const audit = decisions.flatMap((d) => (d.audit ? [d.audit] : []));
  if (audit.length > 0) await tx.audit.append(audit);
}

/** `vm.bulk-update`. */
export function bulkUpdateRunner(c: ControlContext) {
  return async (run: RunContext): Promise<undefined> => {
    const p = run.op.params;
    const selector = p.selector as VmSelector;
    const set = p.set as BulkSet;
    const roles = (p.roles as string[] | undefined) ?? [];
    const filter = selectorFilter(selector);
    const recorded = run.op.attempts > 1 ? await run.recordedTargets() : new Set<string>();
    if (run.op.attempts === 1 || run.op.total === 0) {
      await c.inventory.operations.setTotal(run.op.id, await c.inventory.vms.count(filter));
      run.progress();
    }
    const hosts = new Map((await allHosts(c.inventory)).map((h) => [h.id, h]));
    let cursor: string | null = null;
    do {
      // On SQLite every query resolves synchronously, so without this the whole run is one unbroken chain of
      // microtasks: no socket is written or read until it ends (the 202 answer, every SSE frame, the lease
      // renewal timer). One turn of the event loop before each batch lets the streams woken by the last
      // `progress()` send it, and lets new requests in, before the next batch starts.
      await nextTurn();
      if (run.signal.aborted)
        throw new CiphervisorError("INTERRUPTED", "the bulk update was interrupted; it resumes");
      // Only ids here: the rows are read (and locked) once, inside the batch's transaction.
      const page: { items: string[]; nextCursor: string | null } = await c.inventory.vms.listIds(filter, {
        limit: c.batchSize,
        cursor,
      });
      const ids = page.items.filter((id) => !recorded.has(id));
      if (ids.length > 0) await c.inventory.transaction((tx) => applyBatch(tx, run, ids, set, roles, hosts));
      run.progress();
      cursor = page.nextCursor;
    } while (cursor !== null);
    return undefined;
  };
}
