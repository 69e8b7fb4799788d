/**
 * The owner's launch session (`spec.launchSession`) is one-shot and bound to the VM's policy by its policy MAC:
 * once the VM is off again, its launch failed, or its policy changed, the stored session can only fail (or be
 * replayed), so it is dropped in the same transaction as that change.
 */
import type { InventoryScope } from "../inventory/inventory.ts";
import type { Vm, VmPatch, VmSpec } from "../inventory/types.ts";

/** `spec` without its launch session (the same object when it has none). */
export function withoutSession(spec: VmSpec): VmSpec {
  if (spec.launchSession === undefined) return spec;
  const { launchSession: _dropped, ...rest } = spec;
  return rest;
}

/**
 * Records the VM off with no attestation state and drops its launch session. The spec is read under the row lock
 * inside `tx`, so a spec change committed since the caller read the VM is kept.
 */
export async function recordOff(tx: InventoryScope, vmId: string): Promise<Vm> {
  const [vm] = await tx.vms.lockMany([vmId]);
  const patch: VmPatch = { powerState: "off", attestationState: "none" };
  if (vm?.spec.launchSession === undefined) return tx.vms.update(vmId, patch);
  return tx.vms.update(vmId, { ...patch, spec: withoutSession(vm.spec) });
}
