/**
 * `--what-if` of `vm create|migrate|snapshot|clone`: the server's own pre-queue checks (spec and configuration,
 * the operation table, power state, placement) run on what the API returned, plus the token's permissions from
 * `/v1/me` and name clashes. Reads only.
 */
import { hostFindings } from "../../control/compat.ts";
import { choosePlacement, noValidHost } from "../../control/placement.ts";
import { checkMigrate } from "../../control/services/migrate.ts";
import { checkClone, checkSnapshot, clonePermissions } from "../../control/services/snapshot-clone.ts";
import { checkCreate } from "../../control/services/vm-create.ts";
import type { ApiClient } from "../client/http.ts";
import { findVm } from "../client/lookup.ts";
import { lacking, me } from "../client/me.ts";
import type { ApiHost, ApiVm, ApiVmSpec, SecurityMode } from "../client/types.ts";
import type { WhatIfItem } from "../output/what-if.ts";
import { check, hostFromApi, viewsFromApi, vmFromApi } from "../what-if.ts";

async function exists(api: ApiClient, name: string): Promise<boolean> {
  return findVm(api, name).then(
    () => true,
    () => false,
  );
}

export interface CreateBody {
  readonly name: string;
  readonly spec: ApiVmSpec;
  readonly securityMode: SecurityMode;
  readonly policy?: number;
  readonly labels?: Record<string, string>;
}

export async function createWhatIf(
  api: ApiClient,
  body: CreateBody,
  host: ApiHost | undefined,
): Promise<WhatIfItem> {
  const name = body.name;
  let checked: ReturnType<typeof checkCreate> | undefined;
  const refused = check(name, () => {
    checked = checkCreate({ ...body, spec: body.spec as Parameters<typeof checkCreate>[0]["spec"] });
  });
  if (refused || !checked) return refused ?? { vm: name, outcome: "refused", reason: "invalid request" };
  const denied = lacking(await me(api), ["vm.create", ...checked.permissions]);
  if (denied) return { vm: name, outcome: "refused", code: "FORBIDDEN", reason: denied };
  if (await exists(api, name)) {
    return { vm: name, outcome: "refused", code: "CONFLICT", reason: `a VM named '${name}' already exists` };
  }
  if (host) {
    const shape = {
      id: "vm_check",
      name,
      spec: checked.vm.spec,
      securityMode: body.securityMode,
      policy: checked.vm.policy,
    };
    const findings = hostFindings(hostFromApi(host), { sev: 0, sevEs: 0 }, shape, { needSlot: false });
    if (findings.length > 0) {
      return {
        vm: name,
        outcome: "refused",
        code: "REQUIREMENT_FAILED",
        reason: `VM '${name}' cannot be registered on host ${host.name}: ${findings.map((f) => f.message).join("; ")}`,
      };
    }
  }
  return { vm: name, outcome: "change", action: `create (${body.securityMode})`, host: host?.name ?? null };
}

export async function migrateWhatIf(
  api: ApiClient,
  v: ApiVm,
  hosts: readonly ApiHost[],
  how: "live" | "cold",
  target: ApiHost | undefined,
): Promise<WhatIfItem> {
  const vm = vmFromApi(v);
  const denied = lacking(await me(api), ["vm.migrate"]);
  if (denied) return { vm: v.name, outcome: "refused", code: "FORBIDDEN", reason: denied };
  const refused = check(v.name, () => checkMigrate(vm, how));
  if (refused) return refused;
  const decision = choosePlacement(vm, viewsFromApi(hosts), {
    exclude: v.hostId === null ? [] : [v.hostId],
    ...(target ? { only: [target.id] } : {}),
    needSlot: false,
  });
  if (decision.chosen)
    return { vm: v.name, outcome: "change", action: `${how}-migrate`, host: decision.chosen.host.name };
  const e = noValidHost(vm, decision.verdicts, `${how}-migrate`);
  return { vm: v.name, outcome: "refused", code: e.code, reason: e.message };
}

export async function snapshotWhatIf(
  api: ApiClient,
  v: ApiVm,
  memory: boolean,
  snap: string,
): Promise<WhatIfItem> {
  const denied = lacking(await me(api), ["vm.create"]);
  if (denied) return { vm: v.name, outcome: "refused", code: "FORBIDDEN", reason: denied };
  return (
    check(v.name, () => checkSnapshot(vmFromApi(v), memory)) ?? {
      vm: v.name,
      outcome: "change",
      action: `${memory ? "memory" : "disk"} snapshot ${snap}`,
    }
  );
}

export async function cloneWhatIf(api: ApiClient, v: ApiVm, newName: string): Promise<WhatIfItem> {
  const vm = vmFromApi(v);
  const denied = lacking(await me(api), clonePermissions(vm));
  if (denied) return { vm: v.name, outcome: "refused", code: "FORBIDDEN", reason: denied };
  const refused = check(v.name, () => checkClone(vm));
  if (refused) return refused;
  if (await exists(api, newName)) {
    return {
      vm: v.name,
      outcome: "refused",
      code: "CONFLICT",
      reason: `a VM named '${newName}' already exists`,
    };
  }
  return { vm: v.name, outcome: "change", action: `clone to ${newName}` };
}
