/**
 * `--what-if` of `vm start|stop|restart|delete`: per VM, the server's own pre-queue check (operation table, power
 * state) and, for start, placement over the hosts' key slots as they fill up one VM after another; then the
 * capacity impact per host and pool. Reads only.
 */
import type { Vm } from "../../control/inventory/types.ts";
import { checkPowerOff, checkPowerOn, checkRestart } from "../../control/services/power.ts";
import { checkDelete } from "../../control/services/vm-create.ts";
import type { ApiClient } from "../client/http.ts";
import { listHosts } from "../client/lookup.ts";
import { lacking, me } from "../client/me.ts";
import type { ApiVm } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import type { OutputMode } from "../output/format.ts";
import { printWhatIf, type WhatIfItem } from "../output/what-if.ts";
import { capacityRows, check, ledger, placeOn, release, type SlotLedger, vmFromApi } from "../what-if.ts";
import type { Verb } from "./vm-each.ts";

const CHECKS: Readonly<Record<Verb["name"], (vm: Vm) => void>> = {
  start: checkPowerOn,
  stop: checkPowerOff,
  restart: checkRestart,
  delete: checkDelete,
};

/** How each verb moves key slots: a start takes one, a stop gives one back. */
const SLOTS: Readonly<Record<Verb["name"], "take" | "release" | "none">> = {
  start: "take",
  stop: "release",
  restart: "none",
  delete: "none",
};

function items(verb: Verb, vms: readonly ApiVm[], l: SlotLedger, missing: string | undefined): WhatIfItem[] {
  return vms.map((v): WhatIfItem => {
    const host =
      v.hostId === null ? null : (l.views.find((x) => x.host.id === v.hostId)?.host.name ?? v.hostId);
    if (verb.unchanged(v))
      return { vm: v.name, outcome: "unchanged", host, reason: `already ${v.powerState}` };
    if (missing) return { vm: v.name, outcome: "refused", host, code: "FORBIDDEN", reason: missing };
    const vm = vmFromApi(v);
    const refused = check(v.name, () => CHECKS[verb.name](vm));
    if (refused) return { ...refused, host };
    if (SLOTS[verb.name] === "take") {
      const placed = placeOn(l, vm);
      if ("refused" in placed) return { ...placed.refused, host };
      return { vm: v.name, outcome: "change", action: verb.name, host: placed.host.name };
    }
    if (SLOTS[verb.name] === "release") release(l, vm);
    return { vm: v.name, outcome: "change", action: verb.name, host };
  });
}

export async function eachWhatIf(
  io: CliIo,
  api: ApiClient,
  verb: Verb,
  vms: readonly ApiVm[],
  mode: OutputMode,
): Promise<void> {
  const [who, hosts] = await Promise.all([me(api), listHosts(api)]);
  const l = ledger(hosts);
  printWhatIf(io, mode, {
    command: `vm ${verb.name}`,
    items: items(verb, vms, l, lacking(who, [verb.permission])),
    capacity: capacityRows(l),
  });
}
