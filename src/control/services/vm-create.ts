/**
 * Creating and deleting VMs. A request is checked completely before it is queued — the spec as the hypervisor
 * validates it, the policy against the mode, the VM's configuration against its mode (guest OS, EFI, hardware
 * version, devices), and the permissions an encrypted or debuggable VM needs — so the operation itself only
 * writes.
 */
import { CiphervisorError } from "../../errors.ts";
import { validateVmSpec } from "../../hypervisor/vm-spec.ts";
import { configFindings, hostFindings, hypervisorSpec, NO_POOL_USE } from "../compat.ts";
import type { NewVm, Operation, SecurityMode, Vm, VmSpec } from "../inventory/types.ts";
import type { JsonObject } from "../json.ts";
import type { RunContext } from "../operations/types.ts";
import type { Permission } from "../rbac.ts";
import { classifyChange, resolvePolicy, validatePolicy } from "../security-change.ts";
import { type ControlContext, commitItem, connect, getHost, getVm, param, recordFailure } from "./context.ts";
import { checkBoot } from "./images.ts";

export interface CreateVmRequest {
  readonly name: string;
  readonly spec: VmSpec;
  readonly securityMode?: SecurityMode;
  readonly policy?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly clusterId?: string | null;
  /** Register the VM on this host (like creating it on a host in vCenter); power-on prefers it. */
  readonly hostId?: string | null;
}

/** The VM a create request describes, with its policy resolved and every check passed. */
export interface CheckedCreate {
  readonly vm: NewVm & { readonly securityMode: SecurityMode; readonly policy: number };
  /** Permissions the request needs beyond `vm.create`. */
  readonly permissions: readonly Permission[];
}

/**
 * Validates a create request: INVALID_INPUT naming the field, REQUIREMENT_FAILED listing each failed check.
 */
export function checkCreate(req: CreateVmRequest): CheckedCreate {
  const mode = req.securityMode ?? "none";
  const policy = resolvePolicy({ mode: "none", policy: 0 }, mode, req.policy);
  validatePolicy(mode, policy);
  const shape = { id: "vm_check", name: req.name, spec: req.spec, securityMode: mode, policy };
  if (req.spec.snp !== undefined && mode !== "sev-snp") {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `spec.snp: SEV-SNP launch options need security mode sev-snp, not ${mode}`,
      {
        details: { field: "spec.snp" },
      },
    );
  }
  try {
    validateVmSpec(hypervisorSpec(shape));
  } catch (e) {
    // The hypervisor names its own fields ("vcpus"); the API's are under "spec".
    if (e instanceof CiphervisorError && typeof e.details?.field === "string") {
      throw new CiphervisorError("INVALID_INPUT", `spec.${e.message}`, {
        details: { field: `spec.${e.details.field}` },
      });
    }
    throw e;
  }
  const findings = configFindings(shape);
  if (findings.length > 0) {
    throw new CiphervisorError(
      "REQUIREMENT_FAILED",
      `VM '${req.name}' cannot be ${mode === "none" ? "created" : `created as ${mode.toUpperCase()}`}: ${findings.map((f) => f.message).join("; ")}`,
      { details: { findings: findings.map((f) => ({ code: f.code, message: f.message })) } },
    );
  }
  const change = classifyChange({ mode: "none", policy: 0 }, { mode, policy });
  return {
    vm: {
      name: req.name,
      spec: req.spec,
      securityMode: mode,
      policy,
      labels: req.labels ?? {},
      clusterId: req.clusterId ?? null,
      hostId: req.hostId ?? null,
    },
    permissions: change.permissions,
  };
}

/** Operation params for a create. */
export function createParams(checked: CheckedCreate): JsonObject {
  const v = checked.vm;
  return {
    name: v.name,
    spec: v.spec,
    securityMode: v.securityMode,
    policy: v.policy,
    labels: { ...v.labels },
    clusterId: v.clusterId ?? null,
    hostId: v.hostId ?? null,
  };
}

/**
 * The catalog images the VM boots must exist and suit its mode (`checkBoot`); a requested registration host must
 * exist and accept the VM's mode (CPU generation, ES pool, not in maintenance); a powered-off VM needs no free
 * slot yet.
 */
export async function checkCreateHost(c: ControlContext, checked: CheckedCreate): Promise<void> {
  await checkBoot(c.inventory, checked.vm.spec, checked.vm.securityMode);
  const hostId = checked.vm.hostId;
  if (hostId === undefined || hostId === null) return;
  const host = await getHost(c.inventory, hostId);
  const shape = {
    id: "vm_check",
    name: checked.vm.name,
    spec: checked.vm.spec,
    securityMode: checked.vm.securityMode,
    policy: checked.vm.policy,
  };
  const findings = hostFindings(host, NO_POOL_USE, shape, { needSlot: false });
  if (findings.length > 0) {
    throw new CiphervisorError(
      "REQUIREMENT_FAILED",
      `VM '${checked.vm.name}' cannot be registered on host ${host.name}: ${findings.map((f) => f.message).join("; ")}`,
      { details: { findings: findings.map((f) => ({ code: f.code, message: f.message })) } },
    );
  }
}

/** `vm.create`: inserts the VM (powered off, unplaced) with its audit record. */
export async function runCreate(c: ControlContext, run: RunContext): Promise<undefined> {
  const op = run.op;
  if ((await run.recordedTargets()).size > 0) return undefined; // resumed after the commit
  const p = op.params;
  const name = param(op, "name");
  try {
    const checked = checkCreate({
      name,
      spec: p.spec as VmSpec,
      securityMode: p.securityMode as SecurityMode,
      policy: p.policy as number,
      labels: p.labels as Record<string, string>,
      clusterId: (p.clusterId as string | null) ?? null,
      hostId: (p.hostId as string | null) ?? null,
    });
    await checkCreateHost(c, checked);
    await c.inventory.transaction(async (tx) => {
      const vm = await tx.vms.create(checked.vm);
      await tx.operations.recordItems(op.id, [
        { target: vm.id, outcome: "ok", details: { vmId: vm.id, name } },
      ]);
      await tx.audit.append({
        actor: op.actor,
        action: "vm.create",
        target: vm.id,
        outcome: "ok",
        details: { operationId: op.id, name, securityMode: vm.securityMode, policy: vm.policy },
      });
    });
  } catch (e) {
    await recordFailure(c, op, { action: "vm.create", target: name }, e);
  }
  run.progress();
  return undefined;
}

/** A delete needs the VM powered off (like vSphere's "Delete from Disk"). */
export function checkDelete(vm: Vm): void {
  if (vm.powerState !== "off") {
    throw new CiphervisorError(
      "CONFLICT",
      `VM '${vm.name}' is ${vm.powerState}; power it off before deleting it`,
      {
        details: { vm: vm.id, powerState: vm.powerState },
      },
    );
  }
}

/** Deletes `vm`: removes the host's definition (if any), then the inventory row with its audit record. */
export async function deleteVm(c: ControlContext, op: Operation, vm: Vm): Promise<void> {
  checkDelete(vm);
  if (vm.hostId !== null) {
    const h = await connect(c, await getHost(c.inventory, vm.hostId));
    if (await h.status(vm.id)) await h.undefine(vm.id);
  }
  await commitItem(
    c,
    op,
    { action: "vm.delete", target: vm.id, details: { name: vm.name, securityMode: vm.securityMode } },
    (tx) => tx.vms.delete(vm.id),
  );
}

/** `vm.delete`. */
export async function runDelete(c: ControlContext, run: RunContext): Promise<undefined> {
  const op = run.op;
  const vmId = param(op, "vmId");
  if ((await run.recordedTargets()).has(vmId)) return undefined;
  try {
    await deleteVm(c, op, await getVm(c.inventory, vmId));
  } catch (e) {
    await recordFailure(c, op, { action: "vm.delete", target: vmId }, e);
  }
  run.progress();
  return undefined;
}
