/**
 * Dry runs of the host requests: register, remove, enter and exit maintenance. Entering maintenance is the drain
 * plan (`drainPlan`, the same placement the drain runs) as plan items — where each VM would go, or why it cannot
 * move — with the key slots the restarts take on their new hosts and free on this one.
 */
import { DEFAULT_HOST_VMM_PROFILE } from "../../measure/vmsa.ts";
import { EmulatedDriver } from "../drivers/emulated.ts";
import type { Host } from "../inventory/types.ts";
import type { ControlContext } from "../services/context.ts";
import {
  checkHostName,
  checkRegisterDriver,
  checkRemoveHost,
  type RegisterHostRequest,
} from "../services/hosts.ts";
import { checkEnterMaintenance, drainPlan } from "../services/maintenance.ts";
import { evaluate, type ItemBase, type RequestPlan, single } from "./evaluate.ts";
import { CapacityLedger } from "./ledger.ts";
import { type PlanItem, planOf } from "./types.ts";

function hostBase(host: Host): ItemBase {
  return { target: host.id, name: host.name, kind: "host", hostId: host.id, host: host.name };
}

export async function planEnterMaintenance(c: ControlContext, host: Host): Promise<RequestPlan> {
  const refused = await evaluate(hostBase(host), () => {
    checkEnterMaintenance(host);
    return { outcome: "change", action: "enter maintenance" };
  });
  if (refused.refusal) return single("host.enter-maintenance", refused);
  const ledger = await CapacityLedger.load(c.inventory);
  const items: PlanItem[] = [];
  for (const s of await drainPlan(c, host.id)) {
    const base = {
      target: s.vmId,
      name: s.vm,
      kind: "vm" as const,
      hostId: host.id,
      host: host.name,
      powerState: s.powerState,
      ...(s.needsOwner ? { details: { needsOwner: true } } : {}),
    };
    if (s.path === "nothing-to-do") {
      items.push({ ...base, outcome: "unchanged", reason: s.reason });
    } else if (s.blocked !== undefined) {
      const code = s.path === "blocked" ? "CONFLICT" : "NO_VALID_HOST";
      items.push({ ...base, outcome: "refused", code, reason: s.blocked });
    } else if (s.target) {
      ledger.register(host.id, s.securityMode, -1);
      ledger.register(s.target.hostId, s.securityMode, 1);
      ledger.release(host.id, s.securityMode);
      ledger.take(s.target.hostId, s.securityMode);
      const owner = s.needsOwner ? "; the guest owner must attest it again" : "";
      items.push({
        ...base,
        outcome: "change",
        action: s.path,
        hostId: s.target.hostId,
        host: s.target.host,
        restart: s.path === "restart-elsewhere",
        reason: `${s.reason}${owner}`,
      });
    }
  }
  return { plan: planOf("host.enter-maintenance", items, ledger.rows()) };
}

export async function planExitMaintenance(host: Host): Promise<RequestPlan> {
  const e = await evaluate(hostBase(host), () =>
    host.maintenance === "none"
      ? { outcome: "unchanged", reason: "not in maintenance mode" }
      : { outcome: "change", action: "exit maintenance" },
  );
  return single("host.exit-maintenance", e);
}

export async function planRegisterHost(c: ControlContext, req: RegisterHostRequest): Promise<RequestPlan> {
  checkRegisterDriver(c, req);
  const kind = req.driver ?? "emulated";
  const address = req.address ?? req.name;
  const e = await evaluate({ target: req.name, name: req.name, kind: "host" }, async () => {
    await checkHostName(c, req.name);
    const driver = c.drivers.get(kind);
    const building = req.emulated !== undefined && driver instanceof EmulatedDriver && !driver.has(address);
    if (building && req.emulated) {
      return {
        outcome: "change",
        action: `register (emulated ${req.emulated.generation}, built now)`,
        details: {
          driver: kind,
          address,
          cpuGeneration: req.emulated.generation,
          vmmProfile: req.emulated.vmmProfile ?? DEFAULT_HOST_VMM_PROFILE,
        },
      };
    }
    // The host exists for its driver: read what it reports, as the registration will (a read, no change).
    const caps = await (await driver.connect(address)).capabilities();
    return {
      outcome: "change",
      action:
        caps.generation === "unknown"
          ? `register (${kind}, unknown CPU generation, no SEV: ordinary VMs only)`
          : `register (${kind} ${caps.generation})`,
      details: {
        driver: kind,
        address,
        cpuGeneration: caps.generation,
        sevState: caps.sevState,
        vmmProfile: caps.vmmProfile,
        sevAsids: caps.pools.sev.size,
        esAsids: caps.pools.sevEs.size + caps.ciphertextHidingAsids,
        snpAsids: caps.ciphertextHidingAsids,
      },
    };
  });
  return single("host.register", e);
}

export async function planRemoveHost(c: ControlContext, host: Host): Promise<RequestPlan> {
  const e = await evaluate(hostBase(host), async () => {
    await checkRemoveHost(c, host);
    return { outcome: "change", action: "remove" };
  });
  return single("host.remove", e);
}
