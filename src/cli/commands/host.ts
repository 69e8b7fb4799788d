/**
 * `ciphervisor host …`: hosts and their SEV / SEV-ES key-slot (ASID) pools — list, get, add, and maintenance
 * (`enter` drains the host: ordinary VMs live-migrate, encrypted VMs are restarted on a host with a free slot in
 * their pool; `--what-if` shows that plan, per VM, and changes nothing).
 */

import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseChoice, parseIntFlag } from "../args.ts";
import { runBulk } from "../bulk-operation.ts";
import { findHost, listHosts } from "../client/lookup.ts";
import type { ApiHost } from "../client/types.ts";
import { dryRun } from "../dry-run.ts";
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
import { json } from "../output/format.ts";
import { fields } from "../output/table.ts";
import { hostTable } from "../output/vm-table.ts";
import { printPlan } from "../output/what-if.ts";
import { runOperation } from "../run-operation.ts";
import { registerHostSevInfo } from "./vm-attest-host.ts";

const GENERATIONS = ["naples", "rome", "milan", "genoa", "turin"] as const;
const DRIVERS = ["emulated", "libvirt"] as const;
const ES_MODES = ["sev-es", "snp"] as const;
/** The API's VMM profiles (docs/sev-interface.md §8.5); the server checks them again. */
const VMM_PROFILES = ["qemu-legacy", "qemu"] as const satisfies readonly ApiHost["vmmProfile"][];

function pools(h: ApiHost): string {
  const p = (x: ApiHost["pools"]["sev"]) =>
    x.size === 0 ? "none" : `${x.used}/${x.size} used (ASIDs ${x.first}..${x.last})`;
  const snp = h.pools.snp.size > 0 ? `SEV-SNP ${p(h.pools.snp)}; ` : "";
  return `${snp}SEV-ES ${p(h.pools.sevEs)}; SEV ${p(h.pools.sev)}`;
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
    const path = `/v1/hosts/${h.id}/enter-maintenance`;
    if (flags.whatIf) {
      printPlan(io, mode, `host maintenance enter ${h.name}`, await dryRun(api, path));
      return;
    }
    await runBulk(
      io,
      api,
      {
        path,
        bodies: [{}],
        targets: Number.POSITIVE_INFINITY,
        label: `drain ${h.name}`,
        verb: `drained ${h.name}:`,
      },
      mode,
      await progressFor(io, flags),
      flags.quiet === true,
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
      const plan = await dryRun(api, `/v1/hosts/${h.id}/exit-maintenance`);
      printPlan(io, mode, `host maintenance exit ${h.name}`, plan);
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
          ["VMM profile", h.vmmProfile],
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
        .option("--seed <seed>", "emulated host seed (default: its name)")
        .option(
          "--es-mode <mode>",
          "what the ES ASID range serves: sev-es (default) or snp — an SNP host; SEV-ES and SEV-SNP exclude each other per host (CVE-2025-48514)",
        )
        .option(
          "--ciphertext-hiding-asids <n>",
          "emulated turin: ASIDs 1..n for SEV-SNP with Ciphertext Hiding, SEV-ES keeps the rest of the ES range (Linux 6.18)",
        )
        .option(
          "--vmm-profile <profile>",
          "emulated: how its QEMU builds SEV-ES VMSAs — qemu-legacy (QEMU's default sev-guest, the default) or qemu (KVM_SEV_INIT2)",
        ),
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
        vmmProfile?: string;
        esMode?: string;
        ciphertextHidingAsids?: string;
      },
    ) => {
      const mode = modeFor(flags);
      const driver = parseChoice(flags.driver, "--driver", DRIVERS);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(flags.name)) {
        throw new CiphervisorError("INVALID_INPUT", `--name '${flags.name}' is not a host name`);
      }
      if (driver === "libvirt" && flags.uri === undefined)
        throw new CiphervisorError("USAGE", "--driver libvirt needs --uri");
      if (
        driver === "libvirt" &&
        (flags.generation !== undefined || flags.minSevAsid !== undefined || flags.vmmProfile !== undefined)
      ) {
        throw new CiphervisorError(
          "USAGE",
          "--generation, --min-sev-asid and --vmm-profile are for emulated hosts; libvirt reports its own",
        );
      }
      if (flags.vmmProfile !== undefined && flags.generation === undefined) {
        throw new CiphervisorError("USAGE", "--vmm-profile builds an emulated host: give --generation too");
      }
      const emulated =
        driver === "emulated" && flags.generation !== undefined
          ? {
              generation: parseChoice(flags.generation, "--generation", GENERATIONS),
              ...(flags.minSevAsid === undefined
                ? {}
                : { minSevAsid: parseIntFlag(flags.minSevAsid, "--min-sev-asid", 1, 1007) }),
              ...(flags.seed === undefined ? {} : { seed: flags.seed }),
              ...(flags.vmmProfile === undefined
                ? {}
                : { vmmProfile: parseChoice(flags.vmmProfile, "--vmm-profile", VMM_PROFILES) }),
              ...(flags.ciphertextHidingAsids === undefined
                ? {}
                : {
                    ciphertextHidingAsids: parseIntFlag(
                      flags.ciphertextHidingAsids,
                      "--ciphertext-hiding-asids",
                      0,
                      1006,
                    ),
                  }),
            }
          : undefined;
      if (flags.ciphertextHidingAsids !== undefined && emulated === undefined) {
        throw new CiphervisorError(
          "USAGE",
          "--ciphertext-hiding-asids builds an emulated host: give --generation too",
        );
      }
      const body = {
        name: flags.name,
        driver,
        ...(flags.uri === undefined ? {} : { address: flags.uri }),
        ...(emulated ? { emulated } : {}),
        ...(flags.esMode === undefined ? {} : { esMode: parseChoice(flags.esMode, "--es-mode", ES_MODES) }),
      };
      const api = apiFor(io, flags);
      if (flags.whatIf) {
        printPlan(io, mode, `host add ${flags.name}`, await dryRun(api, "/v1/hosts", { body }));
        return;
      }
      const h = await api.post<ApiHost>("/v1/hosts", body);
      io.out(
        mode === "json"
          ? json(h)
          : `added host ${h.name} (${h.id}): ${h.cpuGeneration}, ${pools(h)}; VMM profile ${h.vmmProfile}\n`,
      );
    },
  );

  registerMaintenance(host, io);
  registerHostSevInfo(host, io);
}
