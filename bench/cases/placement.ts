/**
 * Placement of 10,000 new SEV-ES VMs over 10,000 hosts (issue 12): the control plane's own placement —
 * `reserveSlot` (src/control/capacity.ts), what `vm.power-on` runs before a launch: read every host with its slot
 * usage, `choosePlacement` (src/control/placement.ts), then a transaction that locks the VM and the chosen host,
 * recounts that host's slots and marks the VM `starting` there — over a real SQLite inventory in a temp dir, the
 * hosts registered the way `serve --demo-hosts` does (`buildFleetHosts`: emulated machines added lazily, nothing
 * built). The VMs are unplaced (no host), powered off, SEV-ES. Targets: ≤ 2 s for the 10,000, and a flat per-VM
 * cost (the last chunk ≤ 1.5 × the first).
 *
 * How the 10,000 are placed: the first CHUNK VMs through `reserveSlot`, timed; then — when the first chunk
 * projects to more than FULL_BUDGET_MS for all of them — the middle ones are placed by the floor (below) instead,
 * so that the last CHUNK VMs, timed through `reserveSlot` again, face the inventory as 10,000 placements leave it;
 * otherwise every VM goes through `reserveSlot`. The floor writes the same choices the placement makes (most free
 * SEV-ES slots, then host name): the last chunk's real choices are checked against it, and the bench fails if
 * they differ. The floor's time per VM — a linear scan over the 10,000 host views in memory plus the VM row update
 * in one transaction — is the baseline.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostViews, reserveSlot } from "../../src/control/capacity.ts";
import { hostFindings } from "../../src/control/compat.ts";
import { createControlPlane } from "../../src/control/control-plane.ts";
import { buildFleetHosts } from "../../src/control/demo.ts";
import { DriverRegistry } from "../../src/control/drivers/driver.ts";
import { emulatedDriver } from "../../src/control/drivers/emulated-hosts.ts";
import type { Inventory } from "../../src/control/inventory/inventory.ts";
import { openInventory } from "../../src/control/inventory/open.ts";
import type { NewVm, Vm } from "../../src/control/inventory/types.ts";
import { choosePlacement, type HostView } from "../../src/control/placement.ts";
import type { BenchCase, BenchResult, BenchRunOptions } from "../types.ts";

/**
 * `warm`: VMs placed first and not timed (JIT); `budgetMs`: above this projected time for all VMs, the middle is
 * filled by the floor (0 under --quick, so that path is exercised too).
 */
const FULL = { hosts: 10_000, vms: 10_000, chunk: 200, warm: 10, budgetMs: 60_000 };
const QUICK = { hosts: 200, vms: 200, chunk: 20, warm: 5, budgetMs: 0 };
const spec = {
  vcpus: 2,
  memoryMiB: 2048,
  guestOs: "linux-5.19",
  firmware: "efi" as const,
  hardwareVersion: 19,
};

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Places `ids` one after another through the control plane; returns ms and the chosen host ids. */
async function place(inventory: Inventory, ids: readonly string[]): Promise<{ ms: number; hosts: string[] }> {
  const hosts: string[] = [];
  const t0 = performance.now();
  for (const id of ids) hosts.push((await reserveSlot(inventory, id, { from: ["off"] })).host.id);
  return { ms: performance.now() - t0, hosts };
}

/**
 * The floor's chooser: the same rule as `choosePlacement` for an SEV-ES VM (hosts that pass every check; the most
 * free SEV-ES slots wins, ties to the first name) by a linear scan over views kept in memory.
 */
function floorChooser(views: readonly HostView[], vm: Vm): () => string {
  const ok = [...views]
    .filter((v) => hostFindings(v.host, v.used, vm, { needSlot: false }).length === 0)
    .sort((a, b) => (a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0));
  const ids = ok.map((v) => v.host.id);
  const free = Int32Array.from(ok, (v) => v.host.esAsids - v.used.sevEs);
  return () => {
    let best = -1;
    for (let i = 0; i < free.length; i++) if (free[i]! > 0 && (best < 0 || free[i]! > free[best]!)) best = i;
    if (best < 0) throw new Error("the floor found no host with a free SEV-ES slot");
    free[best]!--;
    return ids[best]!;
  };
}

async function measure(options: BenchRunOptions): Promise<BenchResult> {
  const size = options.quick ? QUICK : FULL;
  const dir = mkdtempSync(join(tmpdir(), "cv-bench-place-"));
  const inventory = await openInventory(join(dir, "inventory.db"));
  const cp = createControlPlane({
    inventory,
    drivers: new DriverRegistry([emulatedDriver()]),
    worker: "bench",
  });
  try {
    const t0 = performance.now();
    await buildFleetHosts(cp, size.hosts);
    const registerMs = performance.now() - t0;
    const rows: NewVm[] = Array.from({ length: size.vms }, (_, i) => ({
      name: `es-${String(i).padStart(6, "0")}`,
      spec,
      securityMode: "sev-es",
      policy: 0x7,
      hostId: null,
    }));
    await inventory.vms.createMany(rows);
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Vm[]; nextCursor: string | null } = await inventory.vms.list(
        { namePrefix: "es-" },
        { limit: 5000, cursor },
      );
      ids.push(...page.items.map((v) => v.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    if (ids.length !== size.vms) throw new Error(`expected ${size.vms} VMs, listed ${ids.length}`);
    await place(inventory, ids.slice(0, size.warm));
    const first = ids.slice(size.warm, size.warm + size.chunk);
    const middle = ids.slice(size.warm + size.chunk, ids.length - size.chunk);
    const last = ids.slice(ids.length - size.chunk);

    const a = await place(inventory, first);
    const firstPerVm = a.ms / first.length;
    const projected = firstPerVm * size.vms;
    const fullyReal = projected <= size.budgetMs;
    let middleMs = 0;
    let floorPerVm = Number.NaN;
    let floorHosts: (() => string) | undefined;
    const sample = (await inventory.vms.get(ids[0]!))!;
    if (fullyReal) {
      middleMs = (await place(inventory, middle)).ms;
    }
    // The floor: always timed over the middle (placing it when the budget says so, else on a throw-away
    // transaction so the real placements stay the control plane's).
    {
      const tf = performance.now();
      const choose = floorChooser(await hostViews(inventory), sample);
      const write = async () =>
        inventory.transaction(async (tx) => {
          for (const id of middle) await tx.vms.update(id, { hostId: choose(), powerState: "starting" });
          if (fullyReal) throw new RollbackFloor();
        });
      try {
        await write();
      } catch (e) {
        if (!(e instanceof RollbackFloor)) throw e;
      }
      floorPerVm = (performance.now() - tf) / Math.max(1, middle.length);
      if (!fullyReal) floorHosts = choose;
    }
    const b = await place(inventory, last);
    const lastPerVm = b.ms / last.length;
    if (floorHosts) {
      const predicted = last.map(() => floorHosts!());
      const differ = predicted.findIndex((h, i) => h !== b.hosts[i]);
      if (differ >= 0)
        throw new Error(
          `the floor's choice differs from reserveSlot's at VM ${differ} of the last chunk: the filled middle is not what placement would have written`,
        );
    }
    const totalMs = fullyReal
      ? (a.ms + middleMs + b.ms) * (size.vms / (size.vms - size.warm))
      : ((firstPerVm + lastPerVm) / 2) * size.vms;
    const placed = await inventory.vms.count({ powerState: "starting" });
    if (placed !== size.vms) throw new Error(`${placed} of ${size.vms} VMs hold a slot`);

    // What one placement spends its time on, measured on the full inventory.
    const viewsMs: number[] = [];
    const chooseMs: number[] = [];
    const probe = await inventory.vms.get(last[0]!);
    for (let i = 0; i < 5; i++) {
      const tv = performance.now();
      const views = await hostViews(inventory);
      viewsMs.push(performance.now() - tv);
      const tc = performance.now();
      choosePlacement(probe!, views);
      chooseMs.push(performance.now() - tc);
    }
    const n = size.vms.toLocaleString("en-US");
    return {
      metrics: [
        {
          name: `place ${n} SEV-ES VMs over ${size.hosts.toLocaleString("en-US")} hosts${fullyReal ? "" : " (projected from the two chunks)"}`,
          value: totalMs,
          unit: "ms",
          baseline: floorPerVm * size.vms,
          baselineName: "floor: in-memory choice + VM row update, same choices",
        },
        {
          name: `per VM, first ${size.chunk}`,
          value: firstPerVm,
          unit: "ms",
          baseline: floorPerVm,
          baselineName: "floor per VM",
        },
        {
          name: `per VM, last ${size.chunk}`,
          value: lastPerVm,
          unit: "ms",
          baseline: firstPerVm,
          baselineName: `per VM, first ${size.chunk}`,
        },
        { name: "last ÷ first chunk, per VM", value: lastPerVm / firstPerVm, unit: "×" },
        { name: "of one placement: hostViews (every host + usage)", value: median(viewsMs), unit: "ms" },
        { name: "of one placement: choosePlacement over the views", value: median(chooseMs), unit: "ms" },
        { name: "register the hosts (buildFleetHosts, lazy)", value: registerMs, unit: "ms" },
      ],
      targets: [
        {
          metric: `place ${n} SEV-ES VMs over ${size.hosts.toLocaleString("en-US")} hosts${fullyReal ? "" : " (projected from the two chunks)"}`,
          max: 2000,
          source: "issue 12: placement of 10,000 new SEV-ES VMs over 10,000 hosts ≤ 2 s",
        },
        { metric: "last ÷ first chunk, per VM", max: 1.5, source: "issue 12: flat per-VM cost" },
      ],
      notes: `reserveSlot per VM (what power-on runs before a launch), real SQLite inventory; the first ${size.warm} placed untimed (warm-up), then chunks of ${size.chunk}; ${fullyReal ? "every VM placed through reserveSlot" : `the middle ${middle.length} placed by the floor (the last chunk's ${size.chunk} real choices match it), total projected from the chunks' mean`}`,
    };
  } finally {
    await cp.stop(0);
    await inventory.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rolls back the floor's transaction when the control plane placed the middle itself. */
class RollbackFloor extends Error {}

export const cases: BenchCase[] = [
  {
    name: "placement-10k-sev-es",
    description:
      "reserveSlot for 10,000 unplaced SEV-ES VMs over 10,000 emulated hosts (real SQLite inventory), per-VM cost first vs last chunk",
    run: measure,
  },
];
