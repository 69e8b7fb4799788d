/**
 * `vm list` and `vm get`: reading VMs, as a table, JSON, or one name a line for `--from-file -`; `vm console`: what
 * the guest wrote to its serial port, with every control character but the line break made visible.
 */
import type { Command } from "commander";
import { findVm, listHosts } from "../client/lookup.ts";
import type { ApiHost, ApiVm, ApiVmConsole } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import {
  apiCommand,
  apiFor,
  type CommonFlags,
  modeFor,
  type TargetFlags,
  targetOptions,
} from "../options.ts";
import { json } from "../output/format.ts";
import { fields, visible } from "../output/table.ts";
import { hex, vmTable } from "../output/vm-table.ts";
import { resolveTargets, targetSpec } from "../selectors.ts";

function hostNames(hosts: readonly ApiHost[]): (id: string | null) => string {
  const byId = new Map(hosts.map((h) => [h.id, h.name]));
  return (id) => (id === null ? "-" : (byId.get(id) ?? id));
}

/** A VM as the CLI prints it in JSON: the API object plus its host's name. */
function withHost(vm: ApiVm, name: (id: string | null) => string): ApiVm & { host: string | null } {
  return { ...vm, host: vm.hostId === null ? null : name(vm.hostId) };
}

export function registerVmRead(vm: Command, io: CliIo): void {
  apiCommand(
    targetOptions(
      vm
        .command("list")
        .argument("[names...]", "VM names (default: every VM)")
        .description("list VMs: names, --selector, --from-file, or all"),
    ),
    { name: true },
  ).action(async (names: string[], flags: CommonFlags & TargetFlags) => {
    const mode = modeFor(flags, true);
    const api = apiFor(io, flags);
    const spec =
      names.length === 0 && flags.all !== true && flags.selector === undefined && flags.fromFile === undefined
        ? ({ kind: "all" } as const)
        : await targetSpec(io, names, flags);
    const [targets, hosts] = await Promise.all([
      resolveTargets(api, spec, true),
      mode === "name" ? [] : listHosts(api),
    ]);
    const vms = targets.vms ?? [];
    const name = hostNames(hosts);
    if (mode === "name") io.out(vms.map((v) => `${v.name}\n`).join(""));
    else if (mode === "json") io.out(json(vms.map((v) => withHost(v, name))));
    else io.out(vmTable(vms, name, mode === "wide"));
  });

  apiCommand(vm.command("get").argument("<name>", "VM name or id").description("show one VM")).action(
    async (nameOrId: string, flags: CommonFlags) => {
      const mode = modeFor(flags);
      const api = apiFor(io, flags);
      const [v, hosts] = await Promise.all([findVm(api, nameOrId), listHosts(api)]);
      const name = hostNames(hosts);
      if (mode === "json") {
        io.out(json(withHost(v, name)));
        return;
      }
      io.out(
        fields([
          ["name", v.name],
          ["id", v.id],
          ["host", name(v.hostId)],
          ["power", v.powerState],
          ["mode", v.securityMode],
          ["policy", v.securityMode === "none" ? "-" : hex(v.policy)],
          ["attestation", v.attestationState],
          ["live-migratable", v.liveMigratable.status ? "yes" : `no (${v.liveMigratable.reason ?? ""})`],
          ["guest OS", v.spec.guestOs],
          ["vCPUs", v.spec.vcpus],
          ["memory", `${v.spec.memoryMiB} MiB`],
          ["firmware", `${v.spec.firmware}, hardware version ${v.spec.hardwareVersion}`],
          [
            "labels",
            Object.entries(v.labels)
              .map(([k, x]) => `${k}=${x}`)
              .join(",") || "-",
          ],
          ["updated", v.updatedAt],
        ]),
      );
    },
  );

  apiCommand(
    vm
      .command("console")
      .argument("<name>", "VM name or id")
      .description(
        "print the guest's serial console (an efi_secret guest shows each injected secret's SHA-256)",
      ),
  ).action(async (nameOrId: string, flags: CommonFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const v = await findVm(api, nameOrId);
    const c = await api.get<ApiVmConsole>(`/v1/vms/${v.id}/console`);
    if (mode === "json") {
      io.out(json(c));
      return;
    }
    // The guest chose these bytes: a terminal gets its lines, never its escape sequences.
    const lines = c.console.split("\n").map(visible);
    if (c.dropped > 0 && flags.quiet !== true) io.err(`(${c.dropped} earlier bytes dropped by the host)\n`);
    io.out(lines.join("\n"));
  });
}
