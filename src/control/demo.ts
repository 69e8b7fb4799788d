/**
 * Ready-made emulated datacenters. `buildDemo` is the small one `serve --demo` shows: a Naples host (SEV only),
 * two Rome hosts — one whose BIOS leaves a small SEV-ES pool (min_sev_asid 5: four SEV-ES guests) — and a Milan
 * host whose QEMU uses KVM_SEV_INIT2 (VMM profile `qemu`; the others are `qemu-legacy`), with VMs of mixed guest OS and modes, some running (SEV-ES and ordinary among them), powered on through
 * the control plane like any request. `buildFleet` is the benchmark-sized one: Rome and Milan hosts and powered-off
 * Linux VMs spread over them, inserted in bulk.
 */
import { CiphervisorError } from "../errors.ts";
import { allHosts } from "./capacity.ts";
import type { ControlPlane, OperationKind } from "./control-plane.ts";
import type { Actor, NewVm, SecurityMode, VmSpec } from "./inventory/types.ts";
import type { JsonObject } from "./json.ts";
import { registerEmulatedHosts, registerHost } from "./services/hosts.ts";

/** The control plane itself, as the actor of what the demo builds. */
export const DEMO_ACTOR: Actor = { id: null, name: "ciphervisor-demo" };

const linux: VmSpec = {
  vcpus: 2,
  memoryMiB: 64,
  guestOs: "linux-5.19",
  firmware: "efi",
  hardwareVersion: 19,
};

interface DemoVm {
  readonly name: string;
  readonly spec: VmSpec;
  readonly securityMode: SecurityMode;
  readonly labels: Record<string, string>;
  readonly on: boolean;
  /** The host it is registered on (power-on prefers it), so rome-1 drains both ways. */
  readonly host?: string;
}

const DEMO_VMS: readonly DemoVm[] = [
  {
    name: "web-1",
    host: "rome-1",
    spec: linux,
    securityMode: "none",
    labels: { app: "web", env: "prod" },
    on: true,
  },
  {
    name: "web-2",
    host: "milan-1",
    spec: linux,
    securityMode: "none",
    labels: { app: "web", env: "prod" },
    on: true,
  },
  {
    name: "db-1",
    host: "rome-1",
    spec: linux,
    securityMode: "sev-es",
    labels: { app: "db", env: "prod" },
    on: true,
  },
  {
    name: "db-2",
    host: "rome-2",
    spec: linux,
    securityMode: "sev-es",
    labels: { app: "db", env: "prod" },
    on: true,
  },
  {
    name: "legacy-1",
    host: "naples-1",
    spec: { ...linux, guestOs: "linux-4.16" },
    securityMode: "sev",
    labels: { app: "legacy", env: "prod" },
    on: true,
  },
  {
    name: "win-1",
    host: "rome-2",
    spec: { ...linux, guestOs: "windows-server-2022", memoryMiB: 128 },
    securityMode: "none",
    labels: { app: "ad", env: "prod" },
    on: true,
  },
  {
    name: "vault-1",
    host: "milan-1",
    spec: linux,
    securityMode: "sev-es",
    labels: { app: "vault", env: "prod" },
    on: false,
  },
  {
    name: "batch-1",
    spec: { ...linux, firmware: "bios", hardwareVersion: 14 },
    securityMode: "none",
    labels: { app: "batch", env: "dev" },
    on: false,
  },
  {
    name: "test-1",
    host: "rome-1",
    spec: linux,
    securityMode: "none",
    labels: { app: "web", env: "dev" },
    on: false,
  },
];

/** Runs one operation to its end and fails loudly if it did not succeed (a demo that half-builds is a bug). */
async function run(
  cp: ControlPlane,
  kind: OperationKind,
  params: JsonObject,
  target: string,
): Promise<string | undefined> {
  const { operation } = await cp.submit({ kind, actor: DEMO_ACTOR, params, target });
  const done = await cp.engine.waitFor(operation.id, 60_000);
  if (done.status !== "succeeded") {
    const items = await cp.context.inventory.operations.items(operation.id);
    const why = items.items.find((i) => i.outcome === "failed")?.reason ?? done.error?.message ?? done.status;
    throw new CiphervisorError("INTERNAL", `building the demo failed at ${kind} ${target}: ${why}`);
  }
  const items = await cp.context.inventory.operations.items(operation.id);
  return items.items[0]?.target;
}

/**
 * Builds the small demo datacenter through the control plane (its engine must be running). Idempotent: a data
 * directory that already has hosts is left as it is.
 */
export async function buildDemo(cp: ControlPlane): Promise<{ hosts: number; vms: number }> {
  const inv = cp.context.inventory;
  if ((await inv.hosts.list({}, { limit: 1 })).items.length > 0) return { hosts: 0, vms: 0 };
  const c = cp.context;
  await registerHost(c, DEMO_ACTOR, { name: "naples-1", emulated: { generation: "naples" } });
  await registerHost(c, DEMO_ACTOR, { name: "rome-1", emulated: { generation: "rome" } });
  await registerHost(c, DEMO_ACTOR, {
    name: "rome-2",
    emulated: { generation: "rome", minSevAsid: 5 },
  });
  // One host of each VMM profile (docs/sev-interface.md §8.5): milan-1's QEMU uses KVM_SEV_INIT2, the others
  // QEMU's default legacy init.
  await registerHost(c, DEMO_ACTOR, {
    name: "milan-1",
    emulated: { generation: "milan", vmmProfile: "qemu" },
  });
  for (const vm of DEMO_VMS) {
    const id = await run(
      cp,
      "vm.create",
      {
        name: vm.name,
        spec: vm.spec,
        securityMode: vm.securityMode,
        policy: vm.securityMode === "sev-es" ? 0x7 : vm.securityMode === "sev" ? 0x3 : 0,
        labels: vm.labels,
        clusterId: null,
        hostId: vm.host === undefined ? null : ((await inv.hosts.getByName(vm.host))?.id ?? null),
      },
      vm.name,
    );
    if (vm.on && id !== undefined) await run(cp, "vm.power-on", { vmId: id }, id);
  }
  return { hosts: 4, vms: DEMO_VMS.length };
}

/** Hosts per registration transaction of a fleet: big enough to amortize the commit, small enough to stream. */
const HOSTS_PER_BATCH = 1000;

/**
 * Registers the hosts of an emulated fleet (`hosts`: Rome and Milan alternating) on the control plane's emulated
 * driver; no VMs. Hosts already registered (a restart) are kept. Returns their inventory ids.
 */
export async function buildFleetHosts(cp: ControlPlane, hosts: number): Promise<string[]> {
  const byName = new Map((await allHosts(cp.context.inventory)).map((h) => [h.name, h.id]));
  const names = Array.from({ length: hosts }, (_, i) => {
    const generation = i % 2 === 0 ? ("rome" as const) : ("milan" as const);
    return { name: `${generation}-${String(i + 1).padStart(4, "0")}`, generation };
  });
  const missing = names.filter((n) => !byName.has(n.name));
  for (let i = 0; i < missing.length; i += HOSTS_PER_BATCH) {
    const batch = missing.slice(i, i + HOSTS_PER_BATCH).map((n) => ({ ...n, seed: n.name }));
    for (const h of await registerEmulatedHosts(cp.context, DEMO_ACTOR, batch)) byName.set(h.name, h.id);
  }
  return names.map((n) => byName.get(n.name) ?? "");
}

/**
 * A benchmark fleet: `hosts` emulated hosts and `vms` powered-off Linux VMs (`vm-000001`…) placed round-robin,
 * inserted in bulk (one multi-row insert per chunk) with one audit record for the batch.
 */
export async function buildFleet(
  cp: ControlPlane,
  hosts: number,
  vms: number,
): Promise<{ hosts: number; vms: number }> {
  if (!Number.isSafeInteger(hosts) || hosts < 1) {
    throw new CiphervisorError("INVALID_INPUT", "--demo-hosts must be at least 1", {
      details: { field: "demo-hosts" },
    });
  }
  if (!Number.isSafeInteger(vms) || vms < 0) {
    throw new CiphervisorError("INVALID_INPUT", "--demo-vms must be 0 or more", {
      details: { field: "demo-vms" },
    });
  }
  const inv = cp.context.inventory;
  const hostIds = await buildFleetHosts(cp, hosts);
  if ((await inv.vms.count({ namePrefix: "vm-" })) > 0) return { hosts, vms: 0 };
  const width = Math.max(6, String(vms).length);
  const rows: NewVm[] = Array.from({ length: vms }, (_, i) => ({
    name: `vm-${String(i + 1).padStart(width, "0")}`,
    spec: linux,
    hostId: hostIds[i % hostIds.length] ?? null,
    labels: { fleet: "bench", shard: String(i % 10) },
  }));
  await inv.transaction(async (tx) => {
    await tx.vms.createMany(rows);
    await tx.audit.append({
      actor: DEMO_ACTOR,
      action: "vm.create-many",
      target: "*",
      outcome: "ok",
      details: { count: vms, namePrefix: "vm-", hosts },
    });
  });
  return { hosts, vms };
}
