/**
 * `vm set … --sev-snp on|off | --sev-es on|off | --sev on|off | --policy P [--restart --parallel N]`: turn SEV,
 * SEV-ES or SEV-SNP on or off, or
 * change the guest policy, for one VM or ten thousand (docs/architecture.md, "Turn SEV-ES on for 10,000 VMs").
 *
 * The CLI decides nothing: the change is ONE `vms:bulk-update` operation on the server, which checks each VM (power
 * state, host CPU generation and ES pool, guest OS, firmware, hardware version, the caller's permission for that
 * VM's change) and changes it completely, with its audit record, or leaves it untouched with a failed result and a
 * reason; VMs already as asked are `unchanged`. Like PowerCLI the change applies to powered-off VMs; `--restart`
 * makes running VMs part of the same operation — powered off, changed and started again, `--parallel` at a time,
 * only as many per host as its pool has free key slots (the server admits them; the others stay running).
 *
 * `--what-if` prints the server's plan (`?dryRun=true`: the real runner in a rolled-back transaction). Turning
 * protection off and `--all` need `--yes`. Ctrl-C stops following; the operation goes on on the server.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseIntFlag, parsePolicy } from "../args.ts";
import { chunks, runBulk } from "../bulk-operation.ts";
import type { ApiBulkSet, ApiSelector } from "../client/types.ts";
import { dryRun } from "../dry-run.ts";
import type { CliIo } from "../io.ts";
import {
  apiCommand,
  apiFor,
  type MutatingFlags,
  modeFor,
  mutatingOptions,
  progressFor,
  type TargetFlags,
  targetOptions,
} from "../options.ts";
import { json } from "../output/format.ts";
import { hex } from "../output/vm-table.ts";
import { mergePlans, printPlan } from "../output/what-if.ts";
import { anyOff, type SecurityFlags, securityOptions, setModeOf } from "../security-flags.ts";
import { resolveTargets, targetSpec } from "../selectors.ts";
import { requireYes } from "./vm-each.ts";

type SetFlags = MutatingFlags &
  TargetFlags &
  SecurityFlags & { policy?: string; restart?: boolean; parallel: string };

/** What `--sev-snp`, `--sev-es`, `--sev` and `--policy` ask for. */
export function bulkSetOf(flags: SecurityFlags & { policy?: string }): ApiBulkSet {
  const securityMode = setModeOf(flags);
  const policy = flags.policy === undefined ? undefined : parsePolicy(flags.policy);
  if (securityMode === undefined && policy === undefined) {
    throw new CiphervisorError(
      "USAGE",
      "say what to set: --sev-snp on|off, --sev-es on|off, --sev on|off and/or --policy P",
    );
  }
  return {
    ...(securityMode === undefined ? {} : { securityMode }),
    ...(policy === undefined ? {} : { policy }),
  };
}

function describeSet(set: ApiBulkSet): string {
  const parts: string[] = [];
  if (set.securityMode !== undefined)
    parts.push(set.securityMode === "none" ? "protection off" : set.securityMode);
  if (set.policy !== undefined) parts.push(`policy ${hex(set.policy)}`);
  return parts.join(", ");
}

export function registerVmSet(vm: Command, io: CliIo): void {
  mutatingOptions(
    apiCommand(
      targetOptions(
        securityOptions(
          vm
            .command("set")
            .argument("[names...]", "VM names or ids")
            .description(
              "turn SEV / SEV-ES / SEV-SNP on or off, or change the guest policy (powered-off VMs; --restart for running ones)",
            ),
        )
          .option(
            "--policy <policy>",
            "guest policy: SEV/SEV-ES 0x5 or flags such as NODBG,NOKS,ES; SEV-SNP a number such as 0x30000",
          )
          .option(
            "--restart",
            "also change running VMs: power off, change, start again (within key-slot capacity), on the server",
          )
          .option("--parallel <n>", "VMs restarted at a time", "4"),
      ),
      { name: true },
    ),
    "confirm turning protection off, or acting on --all",
  ).action(async (names: string[], flags: SetFlags) => {
    const mode = modeFor(flags, true);
    const set = bulkSetOf(flags);
    const parallel = parseIntFlag(flags.parallel, "--parallel", 1, 64);
    const spec = await targetSpec(io, names, flags);
    const api = apiFor(io, flags);
    const targets = await resolveTargets(api, spec, false);
    if (targets.vms !== undefined && targets.vms.length === 0) {
      if (flags.quiet !== true) io.err("ciphervisor: no VMs match; nothing to change\n");
      if (mode === "json")
        io.out(
          json(
            flags.whatIf ? { whatIf: true, items: [], capacity: [] } : { ok: 0, failed: [], operation: null },
          ),
        );
      return;
    }
    const restart = flags.restart === true ? { restart: true, parallel } : {};
    const body = (selector: ApiSelector) => ({ selector, set, ...restart });
    if (flags.whatIf) {
      const plans = await Promise.all(
        chunks(targets.selector).map((s) => dryRun(api, "/v1/vms:bulk-update", { body: body(s) })),
      );
      printPlan(
        io,
        mode,
        `vm set ${describeSet(set)}${flags.restart ? " --restart" : ""}`,
        mergePlans(plans),
      );
      return;
    }
    const weakening = set.securityMode === "none" || anyOff(flags);
    requireYes(
      flags.yes,
      weakening || spec.kind === "all",
      weakening
        ? `turning protection off (${describeSet(set)}) for ${targets.description} exposes their memory${set.securityMode === "none" ? "" : " or registers"} to the host`
        : `changing every VM (${describeSet(set)})`,
    );
    await runBulk(
      io,
      api,
      {
        path: "/v1/vms:bulk-update",
        bodies: chunks(targets.selector).map(body),
        ...(targets.vms ? { vms: targets.vms } : {}),
        targets: targets.vms?.length ?? Number.POSITIVE_INFINITY,
        label: "vm set",
        verb: "changed",
      },
      mode,
      await progressFor(io, flags),
      flags.quiet === true,
    );
  });
}
