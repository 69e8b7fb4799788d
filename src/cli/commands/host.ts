/**
 * `ciphervisor host …`: hosts and their SEV / SEV-ES key-slot (ASID) pools — list, get, add, and maintenance
 * (`enter` drains the host: ordinary VMs live-migrate, encrypted VMs are restarted on a host with a free slot in
 * their pool; `--what-if` shows that plan, per VM, and changes nothing).
 */

import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseChoice, parseIntFlag } from "../args.ts";
import { findHost, listAll, listHosts } from "../client/lookup.ts";
import { lacking, me } from "../client/me.ts";
import { follow, isFinal, summary } from "../client/operations.ts";
import type { ApiHost, ApiVm, DrainPlan, OperationAnswer } from "../client/types.ts";
import { watchInterrupt } from "../interrupt.ts";
import type { CliIo } from "../io.ts";
import {
  apiCommand,
  apiFor,
  type CommonFlags,
  type MutatingFlags,
  modeFor,
  mutatingOptions,
  progressFor,
} from "../options.ts";
import { type BulkFailure, finishBulk } from "../output/bulk.ts";
import { json } from "../output/format.ts";
import { fields } from "../output/table.ts";
import { hostTable } from "../output/vm-table.ts";
import { printWhatIf, type WhatIfItem } from "../output/what-if.ts";
import { runOperation } from "../run-operation.ts";
import { registerHostSevInfo } from "./vm-attest-host.ts";

const GENERATIONS = ["naples", "rome", "milan", "genoa"] as const;
const DRIVERS = ["emulated", "libvirt"] as const;

function pools(h: ApiHost): string {
  const p = (x: ApiHost["pools"]["sev"]) =>
    x.size === 0 ? "none" : `${x.used}/${x.size} used (ASIDs ${x.first}..${x.last})`;
  return `SEV-ES ${p(h.pools.sevEs)}; SEV ${p(h.pools.sev)}`;
}

function registerMaintenance(host: Command, io: CliIo): void {
  const m = host.command("maintenance").description("enter or exit maintenance mode");

  mutatingOptions(
    apiCommand(
      m
        .command("enter")
        .argument("<host>", "host name or id")
        .description(
          "drain the host: ordinary VMs live-migrate, SEV/SEV-ES VMs restart on hosts with a free slot",
        ),
    ),
  ).action(async (name: string, flags: MutatingFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const h = await findHost(api, name);
    if (flags.whatIf) {
      const [plan, who] = await Promise.all([api.get<DrainPlan>(`/v1/hosts/${h.id}/drain-plan`), me(api)]);
      const denied = lacking(who, ["host.maintenance"]);
      const items: WhatIfItem[] = plan.steps.map((s) => ({
        vm: s.vm,
        outcome: denied || s.blocked ? "refused" : s.path === "nothing-to-do" ? "unchanged" : "change",
        host: s.target?.host ?? null,
        ...(s.path === "nothing-to-do" ? {} : { action: s.path }),
        ...(denied ? { code: "FORBIDDEN" } : s.blocked ? { code: "NO_VALID_HOST" } : {}),
        reason:
          denied ?? s.blocked ?? `${s.reason}${s.needsOwner ? " (the guest owner must attest again)" : ""}`,
      }));
      printWhatIf(io, mode, { command: `host maintenance enter ${h.name}`, items, capacity: [] });
      return;
    }
    const answer = await api.post<OperationAnswer>(
      `/v1/hosts/${h.id}/enter-maintenance`,
      {},
      { headers: { "idempotency-key": `cli-${randomUUID()}` } },
    );
    const interrupt = watchInterrupt(io, "drain", flags.quiet === true || mode === "json");
    const bar = progressFor(io, flags);
    bar.start(answer.operation.progress.total, `drain ${h.name}`);
    let op = answer.operation;
    try {
      if (!isFinal(op)) {
        op = await follow(api, op.id, {
          signal: interrupt.abort,
          onUpdate: (o) =>
            bar.update(o.progress.done, { ok: o.progress.ok, failed: o.progress.failed }, o.progress.total),
        });
      }
    } finally {
      bar.stop();
      interrupt.dispose();
    }
    const sum = isFinal(op) ? await summary(api, op.id) : undefined;
    const failures = sum?.failures ?? [];
    const vms = failures.length > 0 ? await listAll<ApiVm>(api, "/v1/vms") : [];
    const names = new Map(vms.map((v) => [v.id, v.name]));
    const failed: BulkFailure[] = failures.map((i) => ({
      vm: names.get(i.target) ?? i.target,
      code: i.code ?? "INTERNAL",
      message: i.reason ?? "",
    }));
    const ok = sum?.ok ?? op.progress.ok;
    finishBulk(
      io,
      mode,
      {
        ok,
        failed,
        operation: op.id,
        ...(isFinal(op) ? {} : { interrupted: true, notStarted: op.progress.total - op.progress.done }),
      },
      `drained ${h.name}:`,
      Math.max(2, op.progress.total),
    );
  });

  mutatingOptions(
    apiCommand(
      m.command("exit").argument("<host>", "host name or id").description("return the host to service"),
    ),
  ).action(async (name: string, flags: MutatingFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const h = await findHost(api, name);
    if (flags.whatIf) {
      const who = await me(api);
      const denied = lacking(who, ["host.maintenance"]);
      const item: WhatIfItem = denied
        ? { vm: "-", outcome: "refused", host: h.name, code: "FORBIDDEN", reason: denied }
        : h.maintenance === "none"
          ? { vm: "-", outcome: "unchanged", host: h.name, reason: "not in maintenance mode" }
          : { vm: "-", outcome: "change", host: h.name, action: "exit maintenance" };
      printWhatIf(io, mode, { command: `host maintenance exit ${h.name}`, items: [item], capacity: [] });
      return;
    }
    const r = await runOperation(api, `/v1/hosts/${h.id}/exit-maintenance`);
    io.out(mode === "json" ? json(r) : `host ${h.name} is back in service [operation ${r.operation.id}]\n`);
  });
}

export function registerHost(program: Command, io: CliIo): void {
  const host = program
    .command("host")
    .description("hosts and their SEV / SEV-ES key-slot pools; maintenance mode");

  apiCommand(host.command("list").description("list hosts with their ASID pools"), { name: true }).action(
    async (flags: CommonFlags) => {
      const mode = modeFor(flags, true);
      const hosts = await listHosts(apiFor(io, flags));
      if (mode === "name") io.out(hosts.map((h) => `${h.name}\n`).join(""));
      else if (mode === "json") io.out(json(hosts));
      else io.out(hostTable(hosts, mode === "wide"));
    },
  );

  apiCommand(host.command("get").argument("<host>", "host name or id").description("show one host")).action(
    async (name: string, flags: CommonFlags) => {
      const mode = modeFor(flags);
      const h = await findHost(apiFor(io, flags), name);
      if (mode === "json") {
        io.out(json(h));
        return;
      }
      io.out(
        fields([
          ["name", h.name],
          ["id", h.id],
          ["driver", `${h.driver} (${h.address})`],
          ["CPU", h.cpuGeneration],
          ["SEV state", h.sevState],
          ["ES pool serves", h.esMode],
          ["pools", pools(h)],
          ["powered-on VMs", h.activeVms],
          ["maintenance", h.maintenance],
          ["connection", h.connection],
        ]),
      );
    },
  );

  mutatingOptions(
    apiCommand(
      host
        .command("add")
        .description(
          "register a host (--driver emulated builds an emulated EPYC host; libvirt reaches a real one)",
        )
        .requiredOption("--name <name>", "the host's name")
        .option("--driver <driver>", "emulated or libvirt", "emulated")
        .option("--uri <uri>", "how the driver reaches the host (libvirt: qemu+ssh://…; emulated: its name)")
        .option("--generation <gen>", `emulated CPU generation: ${GENERATIONS.join(", ")}`)
        .option("--min-sev-asid <n>", "emulated BIOS min_sev_asid (SEV-ES ASIDs are 1..n-1)")
        .option("--seed <seed>", "emulated host seed (default: its name)"),
    ),
  ).action(
    async (
      flags: MutatingFlags & {
        name: string;
        driver: string;
        uri?: string;
        generation?: string;
        minSevAsid?: string;
        seed?: string;
      },
    ) => {
      const mode = modeFor(flags);
      const driver = parseChoice(flags.driver, "--driver", DRIVERS);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(flags.name)) {
        throw new CiphervisorError("INVALID_INPUT", `--name '${flags.name}' is not a host name`);
      }
      if (driver === "libvirt" && flags.uri === undefined)
        throw new CiphervisorError("USAGE", "--driver libvirt needs --uri");
      if (driver === "libvirt" && (flags.generation !== undefined || flags.minSevAsid !== undefined)) {
        throw new CiphervisorError(
          "USAGE",
          "--generation and --min-sev-asid are for emulated hosts; libvirt reports its own",
        );
      }
      const emulated =
        driver === "emulated" && flags.generation !== undefined
          ? {
              generation: parseChoice(flags.generation, "--generation", GENERATIONS),
              ...(flags.minSevAsid === undefined
                ? {}
                : { minSevAsid: parseIntFlag(flags.minSevAsid, "--min-sev-asid", 1, 1007) }),
              ...(flags.seed === undefined ? {} : { seed: flags.seed }),
            }
          : undefined;
      const body = {
        name: flags.name,
        driver,
        ...(flags.uri === undefined ? {} : { address: flags.uri }),
        ...(emulated ? { emulated } : {}),
      };
      const api = apiFor(io, flags);
      if (flags.whatIf) {
        const [who, hosts] = await Promise.all([me(api), listHosts(api)]);
        const denied = lacking(who, ["host.manage"]);
        const taken = hosts.some((h) => h.name === flags.name);
        const item: WhatIfItem = denied
          ? { vm: "-", outcome: "refused", host: flags.name, code: "FORBIDDEN", reason: denied }
          : taken
            ? {
                vm: "-",
                outcome: "refused",
                host: flags.name,
                code: "CONFLICT",
                reason: `a host named '${flags.name}' already exists`,
              }
            : {
                vm: "-",
                outcome: "change",
                host: flags.name,
                action: `add (${driver}${emulated ? `, ${emulated.generation}` : ""})`,
              };
        printWhatIf(io, mode, { command: `host add ${flags.name}`, items: [item], capacity: [] });
        return;
      }
      const h = await api.post<ApiHost>("/v1/hosts", body);
      io.out(mode === "json" ? json(h) : `added host ${h.name} (${h.id}): ${h.cpuGeneration}, ${pools(h)}\n`);
    },
  );

  registerMaintenance(host, io);
  registerHostSevInfo(host, io);
}
