/**
 * Response bodies, built field by field from the inventory's objects. Together with the response schemas (whose
 * serializer drops undeclared fields) this is the second guarantee that nothing unintended — a token hash, a
 * driver internal — reaches a client.
 */
import type { AuditRecord } from "../control/audit/record.ts";
import type { Operation, OperationItem, TokenRecord, Vm } from "../control/inventory/types.ts";
import type { Resumption } from "../control/operations/liveness.ts";
import type { HostReport } from "../control/services/hosts.ts";
import { liveMigratable } from "../hypervisor/operation-rules.ts";

export function vmView(vm: Vm) {
  return {
    id: vm.id,
    name: vm.name,
    clusterId: vm.clusterId,
    hostId: vm.hostId,
    spec: vm.spec,
    powerState: vm.powerState,
    securityMode: vm.securityMode,
    policy: vm.policy,
    attestationState: vm.attestationState,
    liveMigratable: liveMigratable(vm.securityMode),
    labels: vm.labels,
    createdAt: vm.createdAt,
    updatedAt: vm.updatedAt,
    version: vm.version,
  };
}

export function hostView(r: HostReport) {
  const h = r.host;
  return {
    id: h.id,
    name: h.name,
    clusterId: h.clusterId,
    driver: h.driver,
    address: h.address,
    cpuGeneration: h.cpuGeneration,
    sevState: h.sevState,
    esMode: h.esMode,
    vmmProfile: h.vmmProfile,
    maintenance: h.maintenance,
    connection: h.connection,
    firmware: h.firmware,
    pools: r.pools,
    activeVms: r.activeVms,
    createdAt: h.createdAt,
    updatedAt: h.updatedAt,
    version: h.version,
  };
}

/**
 * An operation as the API shows it. With a `resuming` reading (the engine's `resumption`), a running operation whose
 * node is gone shows `resuming` and when it will be taken over, instead of a `running` that makes no progress.
 */
export function operationView(op: Operation, resuming?: Resumption) {
  const self = `/v1/operations/${op.id}`;
  return {
    id: op.id,
    kind: op.kind,
    status: resuming ? ("resuming" as const) : op.status,
    ...(resuming ? { takeoverAt: resuming.takeoverAt, resumeReason: resuming.reason } : {}),
    actor: { id: op.actor.id, name: op.actor.name },
    params: op.params,
    progress: { done: op.done, total: op.total, ok: op.okCount, failed: op.failedCount },
    error: op.error,
    attempts: op.attempts,
    createdAt: op.createdAt,
    startedAt: op.startedAt,
    finishedAt: op.finishedAt,
    links: { self, items: `${self}/items`, events: `${self}/events` },
  };
}

export function itemView(i: OperationItem) {
  return {
    target: i.target,
    outcome: i.outcome,
    code: i.code,
    reason: i.reason,
    details: i.details,
    recordedAt: i.recordedAt,
  };
}

export function tokenView(t: TokenRecord) {
  return {
    id: t.id,
    name: t.name,
    roles: [...t.roles],
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    expiresAt: t.expiresAt,
    revokedAt: t.revokedAt,
    lastUsedAt: t.lastUsedAt,
  };
}

export function auditView(r: AuditRecord) {
  return {
    seq: r.seq,
    time: r.time,
    actor: { id: r.actor.id, name: r.actor.name },
    action: r.action,
    target: r.target,
    outcome: r.outcome,
    details: r.details,
    prevHash: r.prevHash,
    hash: r.hash,
  };
}
