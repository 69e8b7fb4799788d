/**
 * Dry runs of the requests that are not about VMs or hosts: issuing and revoking tokens, cancelling a queued
 * operation, and the guest owner's steps of an attested launch (session, secret, finish). A token's dry run says
 * what would be issued — never a secret, because none is made.
 */
import { CiphervisorError } from "../../errors.ts";
import type { Operation, TokenRecord } from "../inventory/types.ts";
import { parseRoles } from "../rbac.ts";
import { checkSessionTarget, launchPolicy, pausedForAttestation } from "../services/attestation.ts";
import { reportTarget } from "../services/attestation-report.ts";
import type { ControlContext } from "../services/context.ts";
import { getVm } from "../services/context.ts";
import { type CreateTokenRequest, checkTokenRequest } from "../services/tokens.ts";
import { evaluate, type RequestPlan, single } from "./evaluate.ts";

export async function planCreateToken(req: CreateTokenRequest): Promise<RequestPlan> {
  checkTokenRequest(req);
  const roles = parseRoles(req.roles);
  const e = await evaluate({ target: req.name, name: req.name, kind: "token" }, () => ({
    outcome: "change",
    action: `issue token with ${roles.join(", ")}`,
    details: { roles: [...roles], expiresAt: req.expiresAt ?? null },
  }));
  return single("token.create", e);
}

export async function planRevokeToken(c: ControlContext, id: string): Promise<RequestPlan> {
  const token: TokenRecord | undefined = await c.inventory.tokens.get(id);
  if (!token) throw new CiphervisorError("NOT_FOUND", `token ${id} not found`);
  const e = await evaluate({ target: token.id, name: token.name, kind: "token" }, () =>
    token.revokedAt === null
      ? { outcome: "change", action: "revoke" }
      : { outcome: "unchanged", reason: `revoked at ${token.revokedAt}` },
  );
  return single("token.revoke", e);
}

/** CONFLICT unless the operation is still queued. */
export function checkCancel(op: Operation): void {
  if (op.status !== "pending") {
    throw new CiphervisorError(
      "CONFLICT",
      `operation ${op.id} is ${op.status}; only a queued operation can be cancelled`,
      {
        details: { operation: op.id },
      },
    );
  }
}

export async function planCancel(c: ControlContext, id: string): Promise<RequestPlan> {
  const op = await c.inventory.operations.get(id);
  if (!op) throw new CiphervisorError("NOT_FOUND", `operation ${id} not found`);
  const e = await evaluate({ target: op.id, name: op.kind, kind: "operation" }, () => {
    checkCancel(op);
    return { outcome: "change", action: "cancel" };
  });
  return single("operation.cancel", e);
}

export async function planLaunchSession(c: ControlContext, vmId: string): Promise<RequestPlan> {
  const vm = await getVm(c.inventory, vmId);
  const e = await evaluate(
    { target: vm.id, name: vm.name, kind: "vm", hostId: vm.hostId, powerState: vm.powerState },
    () => {
      checkSessionTarget(vm);
      return {
        outcome: "change",
        action: `set the launch session (policy 0x${launchPolicy(vm).toString(16)}); the next power-on pauses for attestation`,
      };
    },
  );
  return single("vm.launch-session.set", e);
}

/** LAUNCH_SECRET (with `secret`) or LAUNCH_FINISH: the VM must be paused after LAUNCH_MEASURE. */
export async function planFinishLaunch(
  c: ControlContext,
  vmId: string,
  secret: boolean,
): Promise<RequestPlan> {
  const vm = await getVm(c.inventory, vmId);
  const e = await evaluate(
    { target: vm.id, name: vm.name, kind: "vm", hostId: vm.hostId, powerState: vm.powerState },
    async () => {
      const { host } = await pausedForAttestation(c, vm.id);
      return {
        outcome: "change",
        action: secret
          ? "inject the secret (LAUNCH_SECRET; the firmware checks its MAC then) and finish the launch"
          : "finish the launch (LAUNCH_FINISH)",
        hostId: host.id,
        host: host.name,
      };
    },
  );
  return single(secret ? "vm.launch-secret.inject" : "vm.launch-finish", e);
}

/** `POST /v1/vms/{id}/attestation-report?dryRun=true`: whom the report would be asked of; nothing changes either way. */
export async function planAttestationReport(c: ControlContext, vmId: string): Promise<RequestPlan> {
  const vm = await getVm(c.inventory, vmId);
  const e = await evaluate(
    { target: vm.id, name: vm.name, kind: "vm", hostId: vm.hostId, powerState: vm.powerState },
    async () => {
      const { host } = await reportTarget(c, vm.id);
      return {
        outcome: "unchanged",
        action:
          "ask the guest for a signed report (MSG_REPORT_REQ through SNP_GUEST_REQUEST); nothing changes",
        hostId: host.id,
        host: host.name,
      };
    },
  );
  return single("vm.attestation-report.read", e);
}
