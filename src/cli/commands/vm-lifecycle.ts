/**
 * `vm create`, `vm migrate`, `vm snapshot`, `vm clone`: one VM each, in the shapes scripts use —
 * `vm create NAME --host HOST --guest-os OS [--vcpus N --memory MiB] [--sev-es on | --sev-snp on]`,
 * `vm migrate NAME [--to HOST] --live|--cold` (live = vMotion, refused for SEV/SEV-ES VMs by the operation table).
 * Each takes `--what-if`: the server's dry run of the same request (its checks and plan), printed; nothing changes.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { collect, parseChoice, parseIntFlag, parseLabels, parsePolicy } from "../args.ts";
import { findHost, findVm } from "../client/lookup.ts";
import type { ApiCreateVm, ApiVmSpec } from "../client/types.ts";
import { dryRun } from "../dry-run.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type MutatingFlags, modeFor, mutatingOptions } from "../options.ts";
import { json, type OutputMode } from "../output/format.ts";
import { printPlan } from "../output/what-if.ts";
import { runOperation } from "../run-operation.ts";
import { createModeOf, securityOptions } from "../security-flags.ts";
import { type SnpLaunchFlags, snpLaunchOptions, snpOf } from "../snp-launch-flags.ts";

const GUEST_OS_HELP = "guest OS profile (docs/guest-os-profiles.md), e.g. linux-5.19, ubuntu-22.04, rhel-9";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

interface CreateFlags extends MutatingFlags, SnpLaunchFlags {
  host?: string;
  guestOs: string;
  vcpus: string;
  memory: string;
  sevSnp?: string;
  sevEs?: string;
  sev?: string;
  policy?: string;
  firmware: string;
  hardwareVersion: string;
  label?: string[];
  firmwareImage?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
}

/** The catalog images a create names (`image upload`); the server checks they exist and suit the mode. */
function bootOf(flags: CreateFlags): ApiVmSpec["boot"] {
  if (flags.kernel === undefined && (flags.initrd !== undefined || flags.append !== undefined)) {
    throw new CiphervisorError(
      "USAGE",
      "--initrd and --append are measured only with --kernel (QEMU's kernel-hashes table)",
    );
  }
  const boot = {
    ...(flags.firmwareImage === undefined ? {} : { firmwareImage: flags.firmwareImage }),
    ...(flags.kernel === undefined ? {} : { kernel: flags.kernel }),
    ...(flags.initrd === undefined ? {} : { initrd: flags.initrd }),
    ...(flags.append === undefined ? {} : { cmdline: flags.append }),
  };
  return Object.keys(boot).length > 0 ? boot : undefined;
}

/** Sends `path` as a dry run, or for real; the real answer is printed by `onDone`. */
async function perform(
  io: CliIo,
  flags: MutatingFlags,
  command: string,
  path: string,
  body: unknown,
  onDone: (r: Awaited<ReturnType<typeof runOperation>>) => void,
): Promise<void> {
  const api = apiFor(io, flags);
  if (flags.whatIf) {
    printPlan(io, modeFor(flags), command, await dryRun(api, path, { body }));
    return;
  }
  onDone(await runOperation(api, path, { body }));
}

function done(io: CliIo, mode: OutputMode, doc: unknown, line: string): void {
  io.out(mode === "json" ? json(doc) : `${line}\n`);
}

function registerCreate(vm: Command, io: CliIo): void {
  const create = mutatingOptions(
    apiCommand(
      securityOptions(
        vm
          .command("create")
          .argument("<name>", "the new VM's name")
          .description("create a VM (powered off)")
          .option("--host <host>", "register it on this host")
          .requiredOption("--guest-os <os>", GUEST_OS_HELP)
          .option("--vcpus <n>", "virtual CPUs", "2")
          .option("--memory <MiB>", "memory in MiB", "64"),
      )
        .option(
          "--policy <policy>",
          "guest policy: SEV/SEV-ES 0x5 or flags such as NODBG,NOKS,ES; SEV-SNP a number such as 0x30000",
        )
        .option("--firmware <efi|bios>", "firmware", "efi")
        .option("--hardware-version <n>", "virtual hardware version", "19")
        .option(
          "--firmware-image <image>",
          "boot this firmware image of the catalog (a real OVMF) instead of the built-in UEFI",
        )
        .option(
          "--kernel <image>",
          "measured direct boot of this kernel image of the catalog (QEMU kernel-hashes table)",
        )
        .option("--initrd <image>", "direct boot: this initrd image (needs --kernel)")
        .option("--append <cmdline>", "direct boot: the kernel command line (needs --kernel)")
        .option("--label <key=value>", "a label (repeatable)", collect),
    ),
  );
  snpLaunchOptions(create).action(async (name: string, flags: CreateFlags) => {
    const mode = modeFor(flags);
    if (!NAME.test(name)) throw new CiphervisorError("INVALID_INPUT", `'${name}' is not a VM name`);
    const securityMode = createModeOf(flags);
    const spec: ApiVmSpec = {
      vcpus: parseIntFlag(flags.vcpus, "--vcpus", 1, 64),
      memoryMiB: parseIntFlag(flags.memory, "--memory", 16, 1024 * 1024),
      // The server knows the guest OS profiles (and says which exist when this one does not).
      guestOs: flags.guestOs,
      firmware: parseChoice(flags.firmware, "--firmware", ["efi", "bios"] as const),
      hardwareVersion: parseIntFlag(flags.hardwareVersion, "--hardware-version", 4, 99),
    };
    const boot = bootOf(flags);
    if (boot) spec.boot = boot;
    const snp = snpOf(flags);
    if (snp) spec.snp = snp;
    const policy = flags.policy === undefined ? undefined : parsePolicy(flags.policy);
    const labels = parseLabels(flags.label ?? []);
    const host = flags.host === undefined ? undefined : await findHost(apiFor(io, flags), flags.host);
    const body: ApiCreateVm = {
      name,
      spec,
      securityMode,
      ...(policy === undefined ? {} : { policy }),
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      ...(host ? { hostId: host.id } : {}),
    };
    await perform(io, flags, `vm create ${name}`, "/v1/vms", body, (r) => {
      const id = r.vm?.id ?? r.results[0]?.target ?? "";
      done(io, mode, r, `created VM ${name} (${id}, ${securityMode}) [operation ${r.operation.id}]`);
    });
  });
}

function registerMigrate(vm: Command, io: CliIo): void {
  mutatingOptions(
    apiCommand(
      vm
        .command("migrate")
        .argument("<name>", "VM name or id")
        .description("move a VM: --live (vMotion; ordinary VMs only) or --cold (powered off, any mode)")
        .option("--to <host>", "target host (default: the best compatible host)")
        .option("--live", "live migration (vMotion)")
        .option("--cold", "cold migration of a powered-off VM"),
    ),
  ).action(
    async (nameOrId: string, flags: MutatingFlags & { to?: string; live?: boolean; cold?: boolean }) => {
      const mode = modeFor(flags);
      if (flags.live === flags.cold)
        throw new CiphervisorError("USAGE", "give exactly one of --live and --cold");
      const how = flags.live ? "live" : "cold";
      const api = apiFor(io, flags);
      const v = await findVm(api, nameOrId);
      const target = flags.to === undefined ? undefined : await findHost(api, flags.to);
      const body = { mode: how, ...(target ? { targetHostId: target.id } : {}) };
      await perform(io, flags, `vm migrate ${v.name} --${how}`, `/v1/vms/${v.id}/migrate`, body, (r) => {
        const to = (r.results[0]?.details?.to as string | undefined) ?? target?.name ?? "?";
        done(io, mode, r, `migrated VM ${v.name} (${how}) to ${to} [operation ${r.operation.id}]`);
      });
    },
  );
}

function registerSnapshot(vm: Command, io: CliIo): void {
  mutatingOptions(
    apiCommand(
      vm
        .command("snapshot")
        .argument("<name>", "VM name or id")
        .argument("[snapshot]", "snapshot name (default: <vm>-<time>)")
        .description("take a disk snapshot (--memory: with guest memory; refused for SEV/SEV-ES VMs)")
        .option("--memory", "include guest memory"),
    ),
  ).action(
    async (nameOrId: string, snapshot: string | undefined, flags: MutatingFlags & { memory?: boolean }) => {
      const mode = modeFor(flags);
      if (snapshot !== undefined && !NAME.test(snapshot)) {
        throw new CiphervisorError("INVALID_INPUT", `'${snapshot}' is not a snapshot name`);
      }
      const api = apiFor(io, flags);
      const v = await findVm(api, nameOrId);
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
      const snap = snapshot ?? `${v.name.slice(0, 46)}-${stamp}`;
      const memory = flags.memory === true;
      const body = { name: snap, memory };
      await perform(io, flags, `vm snapshot ${v.name}`, `/v1/vms/${v.id}/snapshots`, body, (r) =>
        done(
          io,
          mode,
          r,
          `took ${memory ? "memory" : "disk"} snapshot ${snap} of VM ${v.name} [operation ${r.operation.id}]`,
        ),
      );
    },
  );
}

function registerClone(vm: Command, io: CliIo): void {
  mutatingOptions(
    apiCommand(
      vm
        .command("clone")
        .argument("<name>", "VM name or id")
        .argument("<new-name>", "the clone's name")
        .description("clone a VM (cold: the parent powered off; hot clones are refused for SEV/SEV-ES VMs)"),
    ),
  ).action(async (nameOrId: string, newName: string, flags: MutatingFlags) => {
    const mode = modeFor(flags);
    if (!NAME.test(newName)) throw new CiphervisorError("INVALID_INPUT", `'${newName}' is not a VM name`);
    const api = apiFor(io, flags);
    const v = await findVm(api, nameOrId);
    await perform(
      io,
      flags,
      `vm clone ${v.name} ${newName}`,
      `/v1/vms/${v.id}/clone`,
      { name: newName },
      (r) => done(io, mode, r, `cloned VM ${v.name} to ${newName} [operation ${r.operation.id}]`),
    );
  });
}

export function registerVmLifecycle(vm: Command, io: CliIo): void {
  registerCreate(vm, io);
  registerMigrate(vm, io);
  registerSnapshot(vm, io);
  registerClone(vm, io);
}
