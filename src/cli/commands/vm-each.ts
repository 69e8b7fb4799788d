/**
 * `vm start|stop|restart|delete NAME…|--all|--selector …|--from-file …`: one request per VM, at most `--parallel`
 * at a time (never one promise per VM), each VM's result recorded — started, already as asked, or failed with its
 * stable code. VMs already in the asked-for state are left alone, so re-running a command changes nothing new.
 *
 * Safety: `--all` always needs `--yes`; stopping, restarting or deleting more than one named VM needs it too.
 * `--what-if` reports, per VM, what would happen and where (placement over the hosts' key slots), and the
 * capacity impact per host and pool. Ctrl-C stops starting new VMs, lets the ones in flight finish, prints the
 * summary and exits 130.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseIntFlag } from "../args.ts";
import type { ApiClient } from "../client/http.ts";
import type { ApiVm } from "../client/types.ts";
import { ExitCode } from "../exit-codes.ts";
import { watchInterrupt } from "../interrupt.ts";
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
import { type BulkFailure, failureOf, finishBulk } from "../output/bulk.ts";
import { json } from "../output/format.ts";
import { runOperation } from "../run-operation.ts";
import { resolveTargets, type TargetSpec, targetSpec } from "../selectors.ts";

export interface Verb {
  readonly name: "start" | "stop" | "restart" | "delete";
  readonly description: string;
  readonly past: string;
  readonly method: "POST" | "DELETE";
  readonly path: (id: string) => string;
  readonly permission: string;
  /** Already as asked: nothing to do. */
  readonly unchanged: (vm: ApiVm) => boolean;
  /** `all`: only --all needs --yes; `many`: any selection but one named VM does. */
  readonly confirm: "all" | "many";
}

const VERBS: readonly Verb[] = [
  {
    name: "start",
    description: "power VMs on (placement takes a key slot in the VM's pool)",
    past: "started",
    method: "POST",
    path: (id) => `/v1/vms/${id}/power-on`,
    permission: "vm.power",
    unchanged: (vm) => vm.powerState === "running" || vm.powerState === "paused",
    confirm: "all",
  },
  {
    name: "stop",
    description: "power VMs off (their key slots return to the pools)",
    past: "stopped",
    method: "POST",
    path: (id) => `/v1/vms/${id}/power-off`,
    permission: "vm.power",
    unchanged: (vm) => vm.powerState === "off",
    confirm: "many",
  },
  {
    name: "restart",
    description: "restart running VMs (SEV-ES: a full relaunch with a new measurement)",
    past: "restarted",
    method: "POST",
    path: (id) => `/v1/vms/${id}/restart`,
    permission: "vm.power",
    unchanged: () => false,
    confirm: "many",
  },
  {
    name: "delete",
    description: "delete powered-off VMs",
    past: "deleted",
    method: "DELETE",
    path: (id) => `/v1/vms/${id}`,
    permission: "vm.delete",
    unchanged: () => false,
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

async function runEach(
  io: CliIo,
  api: ApiClient,
  verb: Verb,
  vms: readonly ApiVm[],
  flags: EachFlags,
): Promise<void> {
  const parallel = parseIntFlag(flags.parallel, "--parallel", 1, 64);
  const mode = modeFor(flags, true);
  const todo = vms.filter((v) => !verb.unchanged(v));
  const unchanged = vms.length - todo.length;
  const interrupt = watchInterrupt(io, `VM ${verb.name}s`, flags.quiet === true || mode === "json");
  const bar = progressFor(io, flags);
  const failed: BulkFailure[] = [];
  const operations: string[] = [];
  let ok = 0;
  let started = 0;
  let next = 0;
  bar.start(todo.length, `${verb.name}`);
  const worker = async (): Promise<void> => {
    while (!interrupt.stop.aborted) {
      const i = next++;
      const v = todo[i];
      if (!v) return;
      started++;
      try {
        const r = await runOperation(api, verb.path(v.id), { method: verb.method, signal: interrupt.abort });
        operations.push(r.operation.id);
        ok++;
      } catch (e) {
        failed.push(failureOf(v.name, e));
      }
      bar.update(ok + failed.length, { ok, failed: failed.length });
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, Math.max(1, todo.length)) }, worker));
  } finally {
    bar.stop();
    interrupt.dispose();
  }
  finishBulk(
    io,
    mode,
    {
      ok: ok + unchanged,
      changed: ok,
      unchanged,
      failed,
      operation: null,
      operations,
      ...(interrupt.requested ? { interrupted: true, notStarted: todo.length - started } : {}),
    },
    verb.past,
    vms.length,
  );
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
    modeFor(flags, true);
    const spec: TargetSpec = await targetSpec(io, names, flags);
    const api = apiFor(io, flags);
    const targets = await resolveTargets(api, spec, true);
    const vms = targets.vms ?? [];
    if (flags.whatIf) {
      // Loaded only here: the checks pull in the control plane's placement and operation-table modules.
      const { eachWhatIf } = await import("./vm-each-what-if.ts");
      await eachWhatIf(io, api, verb, vms, modeFor(flags, true));
      return;
    }
    const many = spec.kind !== "names" || vms.length > 1;
    requireYes(
      flags.yes,
      spec.kind === "all" || (verb.confirm === "many" && many),
      `${verb.name} ${spec.kind === "all" ? "every VM" : targets.description}`,
    );
    if (vms.length === 0) {
      if (flags.quiet !== true) io.err(`ciphervisor: no VMs match; nothing to ${verb.name}\n`);
      if (modeFor(flags, true) === "json") io.out(json({ ok: 0, failed: [], operation: null }));
      io.exitCode = ExitCode.OK;
      return;
    }
    await runEach(io, api, verb, vms, flags);
  });
}

export function registerVmEach(vm: Command, io: CliIo): void {
  for (const verb of VERBS) register(vm, io, verb);
}
