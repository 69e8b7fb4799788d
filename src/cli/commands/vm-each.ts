/**
 * `vm start|stop|restart|delete NAME…|--all|--selector …|--from-file …`: ONE `vms:bulk-power` operation on the
 * server, which judges every VM in id order over the hosts' key slots (a later VM sees the slots earlier ones
 * take), records the ones already as asked as unchanged, refuses the others with their stable code, and carries
 * out the rest `--parallel` at a time. The CLI only renders the plan and the results.
 *
 * Safety: `--all` always needs `--yes`; stopping, restarting or deleting more than one named VM needs it too.
 * `--what-if` prints the server's plan (per VM what would happen and where, and the capacity impact per host and
 * pool). Ctrl-C stops following; the operation goes on on the server.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseIntFlag } from "../args.ts";
import { chunks, runBulk } from "../bulk-operation.ts";
import type { ApiBulkPowerAction, ApiSelector } from "../client/types.ts";
import { dryRun } from "../dry-run.ts";
import { ExitCode } from "../exit-codes.ts";
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
import { mergePlans, printPlan } from "../output/what-if.ts";
import { resolveTargets, type TargetSpec, targetSpec } from "../selectors.ts";

export interface Verb {
  readonly name: "start" | "stop" | "restart" | "delete";
  readonly description: string;
  readonly past: string;
  /** The `vms:bulk-power` action. */
  readonly action: ApiBulkPowerAction;
  /** `all`: only --all needs --yes; `many`: any selection but one named VM does. */
  readonly confirm: "all" | "many";
}

const VERBS: readonly Verb[] = [
  {
    name: "start",
    description: "power VMs on (placement takes a key slot in the VM's pool)",
    past: "started",
    action: "power-on",
    confirm: "all",
  },
  {
    name: "stop",
    description: "power VMs off (their key slots return to the pools)",
    past: "stopped",
    action: "power-off",
    confirm: "many",
  },
  {
    name: "restart",
    description: "restart running VMs (SEV-ES: a full relaunch with a new measurement)",
    past: "restarted",
    action: "restart",
    confirm: "many",
  },
  {
    name: "delete",
    description: "delete powered-off VMs",
    past: "deleted",
    action: "delete",
    confirm: "many",
  },
];

type EachFlags = MutatingFlags & TargetFlags & { parallel: string };

/** CONFIRMATION_REQUIRED (exit 2) unless --yes was given where the verb needs it. */
export function requireYes(yes: boolean | undefined, needed: boolean, what: string): void {
  if (needed && yes !== true) {
    throw new CiphervisorError(
      "CONFIRMATION_REQUIRED",
      `${what}; add --yes to confirm (or --what-if to see what it would do)`,
    );
  }
}

function register(vm: Command, io: CliIo, verb: Verb): void {
  mutatingOptions(
    apiCommand(
      targetOptions(
        vm
          .command(verb.name)
          .argument("[names...]", "VM names or ids")
          .description(verb.description)
          .option("--parallel <n>", "VMs at a time", "8"),
      ),
      { name: true },
    ),
    verb.confirm === "all" ? "confirm --all" : "confirm acting on more than one VM",
  ).action(async (names: string[], flags: EachFlags) => {
    const mode = modeFor(flags, true);
    const parallel = parseIntFlag(flags.parallel, "--parallel", 1, 64);
    const spec: TargetSpec = await targetSpec(io, names, flags);
    const api = apiFor(io, flags);
    const targets = await resolveTargets(api, spec, false);
    const body = (selector: ApiSelector) => ({ selector, action: verb.action, parallel });
    if (targets.vms !== undefined && targets.vms.length === 0) {
      if (flags.quiet !== true) io.err(`ciphervisor: no VMs match; nothing to ${verb.name}\n`);
      if (mode === "json") io.out(json({ ok: 0, failed: [], operation: null }));
      io.exitCode = ExitCode.OK;
      return;
    }
    if (flags.whatIf) {
      const plans = await Promise.all(
        chunks(targets.selector).map((s) => dryRun(api, "/v1/vms:bulk-power", { body: body(s) })),
      );
      printPlan(io, mode, `vm ${verb.name}`, mergePlans(plans));
      return;
    }
    const many = spec.kind !== "names" || (targets.vms?.length ?? 2) > 1;
    requireYes(
      flags.yes,
      spec.kind === "all" || (verb.confirm === "many" && many),
      `${verb.name} ${spec.kind === "all" ? "every VM" : targets.description}`,
    );
    await runBulk(
      io,
      api,
      {
        path: "/v1/vms:bulk-power",
        bodies: chunks(targets.selector).map(body),
        ...(targets.vms ? { vms: targets.vms } : {}),
        targets: targets.vms?.length ?? Number.POSITIVE_INFINITY,
        label: verb.name,
        verb: verb.past,
      },
      mode,
      await progressFor(io, flags),
      flags.quiet === true,
    );
  });
}

export function registerVmEach(vm: Command, io: CliIo): void {
  for (const verb of VERBS) register(vm, io, verb);
}
