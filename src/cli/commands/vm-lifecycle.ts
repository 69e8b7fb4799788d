/**
 * `vm create`, `vm migrate`, `vm snapshot`, `vm clone`: one VM each, in the shapes scripts use —
 * `vm create NAME --host HOST --guest-os OS [--vcpus N --memory MiB] [--sev-es on]`,
 * `vm migrate NAME [--to HOST] --live|--cold` (live = vMotion, refused for SEV/SEV-ES VMs by the operation table).
 * Each takes `--what-if`, which reads and checks and changes nothing.
 */
import type { Command } from "commander";
import { hostFindings } from "../../control/compat.ts";
import { choosePlacement, noValidHost } from "../../control/placement.ts";
import { checkMigrate, type MigrationMode } from "../../control/services/migrate.ts";
import { checkClone, checkSnapshot, clonePermissions } from "../../control/services/snapshot-clone.ts";
import { checkCreate } from "../../control/services/vm-create.ts";
import { CiphervisorError } from "../../errors.ts";
import { collect, parseChoice, parseIntFlag, parseLabels, parseOnOff, parsePolicy } from "../args.ts";
import { findHost, findVm, listHosts } from "../client/lookup.ts";
import { lacking, me } from "../client/me.ts";
import type { ApiVmSpec, SecurityMode } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type MutatingFlags, modeFor, mutatingOptions } from "../options.ts";
import { json, type OutputMode } from "../output/format.ts";
import { printWhatIf, type WhatIfItem } from "../output/what-if.ts";
import { runOperation } from "../run-operation.ts";
import { check, hostFromApi, viewsFromApi, vmFromApi } from "../what-if.ts";

const GUEST_OS_HELP = "guest OS profile, e.g. linux-5.19, windows-server-2022";

interface CreateFlags extends MutatingFlags {
  host?: string;
  guestOs: string;
  vcpus: string;
  memory: string;
  sevEs?: string;
  sev?: string;
  policy?: string;
  firmware: string;
  hardwareVersion: string;
  label?: string[];
}

function securityModeOf(flags: { sevEs?: string; sev?: string }): SecurityMode {
  const es = flags.sevEs === undefined ? undefined : parseOnOff(flags.sevEs, "--sev-es");
  const sev = flags.sev === undefined ? undefined : parseOnOff(flags.sev, "--sev");
  if (es === true && sev === true)
    throw new CiphervisorError("USAGE", "give --sev-es on or --sev on, not both");
  return es === true ? "sev-es" : sev === true ? "sev" : "none";
}

/** Prints the outcome of a one-VM what-if. */
function whatIfOne(io: CliIo, mode: OutputMode, command: string, item: WhatIfItem): void {
  printWhatIf(io, mode, { command, items: [item], capacity: [] });
}

function done(io: CliIo, mode: OutputMode, doc: unknown, line: string): void {
  io.out(mode === "json" ? json(doc) : `${line}\n`);
}

export function registerVmLifecycle(vm: Command, io: CliIo): void {
  mutatingOptions(
    apiCommand(
      vm
        .command("create")
        .argument("<name>", "the new VM's name")
        .description("create a VM (powered off)")
        .option("--host <host>", "register it on this host")
        .requiredOption("--guest-os <os>", GUEST_OS_HELP)
        .option("--vcpus <n>", "virtual CPUs", "2")
        .option("--memory <MiB>", "memory in MiB", "64")
        .option("--sev-es <on|off>", "create it with SEV-ES (memory and register encryption)")
        .option("--sev <on|off>", "create it with SEV (memory encryption)")
        .option("--policy <policy>", "SEV guest policy: 0x5, or flags such as NODBG,NOKS,ES")
        .option("--firmware <efi|bios>", "firmware", "efi")
        .option("--hardware-version <n>", "virtual hardware version", "19")
        .option("--label <key=value>", "a label (repeatable)", collect),
    ),
  ).action(async (name: string, flags: CreateFlags) => {
    const mode = modeFor(flags);
    const securityMode = securityModeOf(flags);
    const spec: ApiVmSpec = {
      vcpus: parseIntFlag(flags.vcpus, "--vcpus", 1, 64),
      memoryMiB: parseIntFlag(flags.memory, "--memory", 16, 1024 * 1024),
      guestOs: flags.guestOs,
      firmware: parseChoice(flags.firmware, "--firmware", ["efi", "bios"] as const),
      hardwareVersion: parseIntFlag(flags.hardwareVersion, "--hardware-version", 4, 99),
    };
    const policy = flags.policy === undefined ? undefined : parsePolicy(flags.policy);
    const labels = parseLabels(flags.label ?? []);
    const api = apiFor(io, flags);
    const host = flags.host === undefined ? undefined : await findHost(api, flags.host);
    const body = {
      name,
      spec,
      securityMode,
      ...(policy === undefined ? {} : { policy }),
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      ...(host ? { hostId: host.id } : {}),
    };
    if (flags.whatIf) {
      const verdict = await (async (): Promise<WhatIfItem> => {
        let checked: ReturnType<typeof checkCreate> | undefined;
        const refused = check(name, () => {
          checked = checkCreate({ ...body, spec: spec as never });
        });
        if (refused || !checked)
          return refused ?? { vm: name, outcome: "refused", reason: "invalid request" };
        const who = await me(api);
        const denied = lacking(who, ["vm.create", ...checked.permissions]);
        if (denied) return { vm: name, outcome: "refused", code: "FORBIDDEN", reason: denied };
        const exists = await findVm(api, name).then(
          () => true,
          () => false,
        );
        if (exists)
          return {
            vm: name,
            outcome: "refused",
            code: "CONFLICT",
            reason: `a VM named '${name}' already exists`,
          };
        if (host) {
          const shape = {
            id: "vm_check",
            name,
            spec: checked.vm.spec,
            securityMode,
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
        return { vm: name, outcome: "change", action: `create (${securityMode})`, host: host?.name ?? null };
      })();
      whatIfOne(io, mode, `vm create ${name}`, verdict);
      return;
    }
    const r = await runOperation(api, "/v1/vms", { body });
    const id = r.vm?.id ?? r.results[0]?.target ?? "";
    done(
      io,
      mode,
      { ...r, vm: r.vm },
      `created VM ${name} (${id}, ${securityMode}) [operation ${r.operation.id}]`,
    );
  });

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
      const how: MigrationMode = flags.live ? "live" : "cold";
      const api = apiFor(io, flags);
      const [v, hosts] = await Promise.all([findVm(api, nameOrId), listHosts(api)]);
      const target = flags.to === undefined ? undefined : await findHost(api, flags.to, hosts);
      if (flags.whatIf) {
        const vmi = vmFromApi(v);
        const who = await me(api);
        const denied = lacking(who, ["vm.migrate"]);
        let item: WhatIfItem | undefined = denied
          ? { vm: v.name, outcome: "refused", code: "FORBIDDEN", reason: denied }
          : check(v.name, () => checkMigrate(vmi, how));
        if (!item) {
          const decision = choosePlacement(vmi, viewsFromApi(hosts), {
            exclude: v.hostId === null ? [] : [v.hostId],
            ...(target ? { only: [target.id] } : {}),
            needSlot: false,
          });
          item = decision.chosen
            ? { vm: v.name, outcome: "change", action: `${how}-migrate`, host: decision.chosen.host.name }
            : (check(v.name, () => {
                throw noValidHost(vmi, decision.verdicts, `${how}-migrate`);
              }) as WhatIfItem);
        }
        whatIfOne(io, mode, `vm migrate ${v.name} --${how}`, item);
        return;
      }
      const r = await runOperation(api, `/v1/vms/${v.id}/migrate`, {
        body: { mode: how, ...(target ? { targetHostId: target.id } : {}) },
      });
      const to = (r.results[0]?.details?.to as string | undefined) ?? target?.name ?? "?";
      done(io, mode, r, `migrated VM ${v.name} (${how}) to ${to} [operation ${r.operation.id}]`);
    },
  );

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
      const api = apiFor(io, flags);
      const v = await findVm(api, nameOrId);
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
      const snap = snapshot ?? `${v.name.slice(0, 46)}-${stamp}`;
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(snap)) {
        throw new CiphervisorError("INVALID_INPUT", `'${snap}' is not a snapshot name`);
      }
      const memory = flags.memory === true;
      if (flags.whatIf) {
        const who = await me(api);
        const denied = lacking(who, ["vm.create"]);
        const item: WhatIfItem = denied
          ? { vm: v.name, outcome: "refused", code: "FORBIDDEN", reason: denied }
          : (check(v.name, () => checkSnapshot(vmFromApi(v), memory)) ?? {
              vm: v.name,
              outcome: "change",
              action: `${memory ? "memory" : "disk"} snapshot ${snap}`,
            });
        whatIfOne(io, mode, `vm snapshot ${v.name}`, item);
        return;
      }
      const r = await runOperation(api, `/v1/vms/${v.id}/snapshots`, { body: { name: snap, memory } });
      done(
        io,
        mode,
        r,
        `took ${memory ? "memory" : "disk"} snapshot ${snap} of VM ${v.name} [operation ${r.operation.id}]`,
      );
    },
  );

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
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(newName)) {
      throw new CiphervisorError("INVALID_INPUT", `'${newName}' is not a VM name`);
    }
    const api = apiFor(io, flags);
    const v = await findVm(api, nameOrId);
    if (flags.whatIf) {
      const vmi = vmFromApi(v);
      const who = await me(api);
      const denied = lacking(who, clonePermissions(vmi));
      const exists = await findVm(api, newName).then(
        () => true,
        () => false,
      );
      const item: WhatIfItem = denied
        ? { vm: v.name, outcome: "refused", code: "FORBIDDEN", reason: denied }
        : (check(v.name, () => checkClone(vmi)) ??
          (exists
            ? {
                vm: v.name,
                outcome: "refused",
                code: "CONFLICT",
                reason: `a VM named '${newName}' already exists`,
              }
            : { vm: v.name, outcome: "change", action: `clone to ${newName}` }));
      whatIfOne(io, mode, `vm clone ${v.name} ${newName}`, item);
      return;
    }
    const r = await runOperation(api, `/v1/vms/${v.id}/clone`, { body: { name: newName } });
    done(io, mode, r, `cloned VM ${v.name} to ${newName} [operation ${r.operation.id}]`);
  });
}
