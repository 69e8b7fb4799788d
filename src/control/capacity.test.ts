/**
 * Batch reservation (`reserveSlots`, `Placer`) over a real SQLite inventory: the same host for every VM as the
 * reservation rule applied one VM at a time (a reference written here from `hostViews` + `choosePlacement`, as
 * `reserveSlot` decided before the batch path), the same NO_VALID_HOST and CONFLICT refusals word for word, later
 * VMs moving on when a host fills up mid-batch, and a lost race (another writer, or another node's placer, taking
 * the chosen host's last slot between the read and the lock) re-planned onto another host without over-placing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { CPU_MODELS } from "../machine/cpu-models.ts";
import { hostViews, Placer, reserveSlot, reserveSlots } from "./capacity.ts";
import { poolOf, SLOT_STATES } from "./compat.ts";
import type { Inventory } from "./inventory/inventory.ts";
import type { HostGeneration, NewHost, NewVm, PowerState, SecurityMode, Vm } from "./inventory/types.ts";
import { choosePlacement, type HostView, noValidHost } from "./placement.ts";
import { CapacityLedger } from "./plan/ledger.ts";
import { linuxSpec, sqliteDatabase } from "./testing/control-fixture.ts";

/** A small deterministic generator (mulberry32), so each fleet can be rebuilt identically in several inventories. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n) as number;
  };
}

interface Fleet {
  readonly hosts: NewHost[];
  /** Placed VMs that fill pools (running), and the VMs to reserve, in order. */
  readonly existing: NewVm[];
  readonly batch: NewVm[];
}

const GENERATIONS: HostGeneration[] = ["naples", "rome", "milan", "genoa", "unknown"];
const MODES: SecurityMode[] = ["sev-es", "sev-es", "sev", "none"];

/** Hosts of every generation and pool size, some full, in maintenance, disconnected, SNP-mode or uninitialised. */
function fleet(seed: number, nHosts: number, nVms: number): Fleet {
  const r = rng(seed);
  const hosts: NewHost[] = [];
  const existing: NewVm[] = [];
  for (let i = 0; i < nHosts; i++) {
    const generation = GENERATIONS[r(GENERATIONS.length)] as HostGeneration;
    const model = generation === "unknown" ? undefined : CPU_MODELS[generation];
    const odd = r(12);
    const host: NewHost = {
      id: `host_${String(i).padStart(3, "0")}`,
      // Names in another order than the ids; a few pools equal, so the name decides ties.
      name: `h-${String((i * 37) % nHosts).padStart(3, "0")}`,
      cpuGeneration: generation,
      sevAsids: model ? r(5) : 0,
      esAsids: model?.sevEs ? r(5) : 0,
      maintenance: odd === 0 ? "in-maintenance" : odd === 1 ? "entering" : "none",
      connection: odd === 2 ? "disconnected" : "connected",
      esMode: odd === 3 ? "snp" : "sev-es",
      sevState: odd === 4 ? "uninitialized" : "working",
    };
    hosts.push(host);
    // Fill some pools: up to full, sometimes exactly full.
    for (const [mode, size] of [
      ["sev-es", host.esAsids],
      ["sev", host.sevAsids],
    ] as const) {
      const n = r(3) === 0 ? size : r(size + 1);
      for (let k = 0; k < n; k++) {
        existing.push(vmRow(`run-${i}-${mode}-${k}`, mode, { hostId: host.id, powerState: "running" }));
      }
    }
    if (r(3) === 0) existing.push(vmRow(`plain-${i}`, "none", { hostId: host.id, powerState: "running" }));
  }
  const batch: NewVm[] = [];
  for (let k = 0; k < nVms; k++) {
    const mode = MODES[r(MODES.length)] as SecurityMode;
    const kind = r(20);
    const spec =
      kind === 0
        ? { ...linuxSpec, firmware: "bios" as const } // no host takes it
        : kind === 1
          ? { ...linuxSpec, guestOs: "linux-4.16" } // SEV but not SEV-ES
          : linuxSpec;
    const at = hosts[r(hosts.length)] as NewHost;
    // A resumed power-on holds its own slot (`starting`); a running VM is a CONFLICT.
    const state: Partial<NewVm> =
      kind === 2
        ? { hostId: at.id, powerState: "starting" }
        : kind === 3
          ? { powerState: "running", hostId: at.id }
          : {};
    batch.push({ ...vmRow(`vm-${String(k).padStart(3, "0")}`, mode, state), spec });
  }
  return { hosts, existing, batch };
}

function vmRow(name: string, mode: SecurityMode, extra: Partial<NewVm> = {}): NewVm {
  return {
    id: `vm_${name}`,
    name,
    spec: linuxSpec,
    securityMode: mode,
    policy: mode === "sev-es" ? 0x7 : mode === "sev" ? 0x3 : 0,
    hostId: null,
    ...extra,
  };
}

async function withInventory<T>(f: Fleet, fn: (inv: Inventory) => Promise<T>): Promise<T> {
  const db = sqliteDatabase();
  const inv = await db.open();
  try {
    for (const h of f.hosts) await inv.hosts.create(h);
    if (f.existing.length > 0) await inv.vms.createMany(f.existing);
    await inv.vms.createMany(f.batch);
    return await fn(inv);
  } finally {
    await inv.close();
    await db.dispose();
  }
}

const FROM: PowerState[] = ["off", "starting"];

/** What one VM's reservation gives: the host id, or the refusal's code and message. */
type Outcome = string;

/** The rule one VM at a time, as `reserveSlot` applied it before the batch path: every host read, then chosen. */
async function reference(inv: Inventory, id: string, prefer?: string | null): Promise<Outcome> {
  const vm = (await inv.vms.get(id)) as Vm;
  if (!FROM.includes(vm.powerState)) return `CONFLICT: VM '${vm.name}' is ${vm.powerState}`;
  const pool = poolOf(vm.securityMode);
  const holds = pool !== undefined && vm.hostId !== null && SLOT_STATES.includes(vm.powerState);
  const views: HostView[] = (await hostViews(inv)).map((v) =>
    holds && pool !== undefined && v.host.id === vm.hostId
      ? { ...v, used: { ...v.used, [pool]: Math.max(0, v.used[pool] - 1) } }
      : v,
  );
  const d = choosePlacement(vm, views, { prefer: prefer ?? null });
  if (!d.chosen) return `NO_VALID_HOST: ${noValidHost(vm, d.verdicts).message}`;
  await inv.vms.update(id, { hostId: d.chosen.host.id, powerState: "starting" });
  return d.chosen.host.id;
}

async function outcome(p: Promise<{ host: { id: string } }>): Promise<Outcome> {
  try {
    return (await p).host.id;
  } catch (e) {
    if (!isCiphervisorError(e)) throw e;
    return `${e.code}: ${e.message}`;
  }
}

describe("batch reservation: the same choices as one VM at a time", () => {
  it("reserveSlots, a Placer with each VM's own host preferred, and reserveSlot equal the rule on 4 random fleets", async () => {
    for (const seed of [1, 2, 3, 4]) {
      const f = fleet(seed, 40, 90);
      const ids = f.batch.map((v) => v.id as string);
      const expected = await withInventory(f, async (inv) => {
        const out: Outcome[] = [];
        for (const id of ids) out.push(await reference(inv, id));
        return out;
      });
      const batch = await withInventory(f, async (inv) =>
        (await reserveSlots(inv, ids, { from: FROM })).map((r) =>
          r.ok ? r.reservation.host.id : `${r.error.code}: ${r.error.message}`,
        ),
      );
      assert.deepEqual(batch, expected, `seed ${seed}: reserveSlots`);
      const single = await withInventory(f, async (inv) => {
        const out: Outcome[] = [];
        for (const id of ids) out.push(await outcome(reserveSlot(inv, id, { from: FROM })));
        return out;
      });
      assert.deepEqual(single, expected, `seed ${seed}: reserveSlot`);
      // With a preferred host per VM (its registration, as power-on passes it).
      const preferred = await withInventory(f, async (inv) => {
        const out: Outcome[] = [];
        for (const v of f.batch) out.push(await reference(inv, v.id as string, v.hostId));
        return out;
      });
      const placer = await withInventory(f, async (inv) => {
        const p = await Placer.load(inv);
        const out: Outcome[] = [];
        for (const v of f.batch)
          out.push(await outcome(p.reserve(v.id as string, { from: FROM, prefer: v.hostId })));
        return out;
      });
      assert.deepEqual(placer, preferred, `seed ${seed}: Placer with prefer`);
      // The same calls made at once: they commit in groups, each VM judged in call order as if alone.
      const grouped = await withInventory(f, async (inv) => {
        const p = await Placer.load(inv);
        return Promise.all(
          f.batch.map((v) => outcome(p.reserve(v.id as string, { from: FROM, prefer: v.hostId }))),
        );
      });
      assert.deepEqual(grouped, preferred, `seed ${seed}: Placer, calls at once`);
      const placed = expected.filter((o) => o.startsWith("host_")).length;
      const refused = expected.filter((o) => o.startsWith("NO_VALID_HOST")).length;
      const conflicts = expected.filter((o) => o.startsWith("CONFLICT")).length;
      assert.ok(
        placed > 20 && refused > 5 && conflicts > 0,
        `seed ${seed}: ${placed}/${refused}/${conflicts}`,
      );
    }
  });

  it("a plan's ledger (CapacityLedger.choose) decides as choosePlacement over its views, step by step", async () => {
    for (const seed of [5, 6]) {
      const f = fleet(seed, 40, 90);
      await withInventory(f, async (inv) => {
        const ledger = await CapacityLedger.load(inv);
        let n = 0;
        for (const row of f.batch) {
          const vm = (await inv.vms.get(row.id as string)) as Vm;
          const expected = choosePlacement(vm, ledger.views(), { prefer: vm.hostId });
          const got = ledger.choose(vm, { prefer: vm.hostId });
          assert.equal(got.chosen?.host.id, expected.chosen?.host.id, `seed ${seed}, ${vm.name}`);
          if (!got.chosen) assert.deepEqual(got.verdicts, expected.verdicts);
          else {
            ledger.take(got.chosen.host.id, vm.securityMode);
            n++;
          }
          // Now and then a VM powers off or a restart changes pools: the ordered hosts follow.
          if (n % 7 === 3 && got.chosen) ledger.release(got.chosen.host.id, vm.securityMode);
          if (n % 11 === 5 && got.chosen) ledger.admit(got.chosen.host.id, vm.securityMode, "sev");
        }
        assert.ok(n > 20, `seed ${seed}: ${n} placed`);
      });
    }
  });

  it("moves later VMs on when a host fills up mid-batch, then refuses with every host's reason", async () => {
    const f: Fleet = {
      hosts: [
        { id: "host_a", name: "a", cpuGeneration: "milan", sevAsids: 10, esAsids: 3 },
        { id: "host_b", name: "b", cpuGeneration: "rome", sevAsids: 10, esAsids: 2 },
        { id: "host_n", name: "n", cpuGeneration: "naples", sevAsids: 15, esAsids: 0 },
      ],
      existing: [],
      batch: Array.from({ length: 6 }, (_, i) => vmRow(`es-${i}`, "sev-es")),
    };
    await withInventory(f, async (inv) => {
      const results = await reserveSlots(
        inv,
        f.batch.map((v) => v.id as string),
        { from: ["off"] },
      );
      // a has 3 free, b 2: a; then a=2, b=2 tie → a (name); b; a=1, b=1 → a; b.
      assert.deepEqual(
        results.slice(0, 5).map((r) => (r.ok ? r.reservation.host.name : r.error.code)),
        ["a", "a", "b", "a", "b"],
      );
      const last = results[5];
      assert.ok(last && !last.ok);
      assert.equal(last.error.code, "NO_VALID_HOST");
      const vm = (await inv.vms.get("vm_es-5")) as Vm;
      const now = noValidHost(vm, choosePlacement(vm, await hostViews(inv)).verdicts);
      assert.equal(last.error.message, now.message);
      assert.deepEqual(last.error.details, now.details);
      assert.match(last.error.message, /a: host a: all 3 SEV-ES ASIDs \(1\.\.3\) are in use/);
      assert.match(last.error.message, /b: host b: all 2 SEV-ES ASIDs/);
      assert.match(last.error.message, /n: host n is naples .*SEV-ES needs rome/);
      assert.equal(vm.powerState, "off");
      assert.equal(await inv.vms.count({ powerState: "starting" }), 5);
    });
  });

  it("re-plans a VM whose chosen host lost its last slot to another writer or another node's placer", async () => {
    const f: Fleet = {
      hosts: [
        { id: "host_a", name: "a", cpuGeneration: "milan", sevAsids: 10, esAsids: 1 },
        { id: "host_b", name: "b", cpuGeneration: "milan", sevAsids: 10, esAsids: 1 },
        { id: "host_c", name: "c", cpuGeneration: "milan", sevAsids: 10, esAsids: 1 },
      ],
      existing: [vmRow("intruder", "sev-es")],
      batch: Array.from({ length: 4 }, (_, i) => vmRow(`es-${i}`, "sev-es")),
    };
    await withInventory(f, async (inv) => {
      const mine = await Placer.load(inv);
      const theirs = await Placer.load(inv);
      // Between our read and our lock: a writer takes a's only slot.
      await inv.vms.update("vm_intruder", { hostId: "host_a", powerState: "starting" });
      const first = await mine.reserve("vm_es-0", { from: ["off"] });
      assert.equal(first.host.name, "b", "a was taken: re-planned from a fresh read of a");
      // Another node's placer read before both: it also aims at a, then b; it lands on c.
      const second = await theirs.reserve("vm_es-1", { from: ["off"] });
      assert.equal(second.host.name, "c");
      // Our ledger knows a (read afresh) and b (ours) but not c: c's recount tells it, and nothing is left.
      await assert.rejects(mine.reserve("vm_es-2", { from: ["off"] }), (e: unknown) => {
        assert.ok(isCiphervisorError(e, "NO_VALID_HOST"), String(e));
        assert.match(e.message, /a: host a: all 1 SEV-ES ASIDs .*b: host b: all 1.*c: host c: all 1/);
        return true;
      });
      const views = await hostViews(inv);
      for (const v of views) assert.equal(v.used.sevEs, 1, `${v.host.name} holds exactly one ES slot`);
      const fresh = await Placer.load(inv);
      await assert.rejects(fresh.reserve("vm_es-3", { from: ["off"] }), (e: unknown) => {
        assert.ok(isCiphervisorError(e, "NO_VALID_HOST"));
        assert.match(e.message, /a: host a: all 1 SEV-ES ASIDs .*b: host b: all 1.*c: host c: all 1/);
        return true;
      });
    });
  });

  it("a group whose transaction fails writes nothing, and each of its VMs is then reserved on its own", async () => {
    const f = fleet(7, 30, 60);
    const ids = f.batch.map((v) => v.id as string);
    const expected = await withInventory(f, async (inv) => {
      const out: Outcome[] = [];
      for (const id of ids) out.push(await reference(inv, id));
      return out;
    });
    const got = await withInventory(f, async (inv) => {
      let groups = 0;
      // The store fails the first transaction that reserves more than one VM, after its writes (rolled back).
      const flaky = new Proxy(inv, {
        get(target, key) {
          if (key !== "transaction") {
            const v = Reflect.get(target, key);
            return typeof v === "function" ? v.bind(target) : v;
          }
          return <T>(fn: (tx: Parameters<Parameters<Inventory["transaction"]>[0]>[0]) => Promise<T>) =>
            target.transaction(async (tx) => {
              let locked = 0;
              const counting = new Proxy(tx.vms, {
                get(vms, k) {
                  if (k === "lockMany")
                    return (xs: readonly string[]) => {
                      locked = xs.length;
                      return vms.lockMany(xs);
                    };
                  const v = Reflect.get(vms, k);
                  return typeof v === "function" ? v.bind(vms) : v;
                },
              });
              const result = await fn({ ...tx, vms: counting } as typeof tx);
              if (locked > 1 && groups++ === 0) throw new Error("disk I/O error");
              return result;
            });
        },
      });
      const results = await reserveSlots(flaky, ids, { from: FROM });
      assert.ok(groups > 1, `groups committed after the failed one: ${groups}`);
      for (const v of await hostViews(inv)) {
        assert.ok(
          v.used.sevEs <= v.host.esAsids,
          `${v.host.name}: ${v.used.sevEs} of ${v.host.esAsids} ES slots`,
        );
      }
      return results.map((r) => (r.ok ? r.reservation.host.id : `${r.error.code}: ${r.error.message}`));
    });
    assert.deepEqual(got, expected);
  });

  it("one VM asked for twice in one group is reserved once; the second call is a CONFLICT", async () => {
    const f: Fleet = {
      hosts: [{ id: "host_a", name: "a", cpuGeneration: "milan", sevAsids: 10, esAsids: 4 }],
      existing: [],
      batch: [vmRow("es-0", "sev-es"), vmRow("es-1", "sev-es")],
    };
    await withInventory(f, async (inv) => {
      const results = await reserveSlots(inv, ["vm_es-0", "vm_es-0", "vm_missing", "vm_es-1"], {
        from: ["off"],
      });
      assert.deepEqual(
        results.map((r) => (r.ok ? r.reservation.host.name : `${r.error.code}: ${r.error.message}`)),
        ["a", "CONFLICT: VM 'es-0' is starting", "NOT_FOUND: VM vm_missing not found", "a"],
      );
      assert.equal((await hostViews(inv))[0]?.used.sevEs, 2);
    });
  });

  it("a group whose host lost its last slot commits the VMs before it, then re-plans that VM from a fresh read", async () => {
    const f: Fleet = {
      hosts: [
        { id: "host_a", name: "a", cpuGeneration: "milan", sevAsids: 10, esAsids: 1 },
        { id: "host_b", name: "b", cpuGeneration: "milan", sevAsids: 10, esAsids: 1 },
        { id: "host_c", name: "c", cpuGeneration: "milan", sevAsids: 10, esAsids: 1 },
      ],
      existing: [vmRow("intruder", "sev-es")],
      batch: Array.from({ length: 3 }, (_, i) => vmRow(`es-${i}`, "sev-es")),
    };
    await withInventory(f, async (inv) => {
      const mine = await Placer.load(inv);
      // After our read: a writer takes b's only slot. Our ledger still plans es-0 → a, es-1 → b.
      await inv.vms.update("vm_intruder", { hostId: "host_b", powerState: "starting" });
      const results = await Promise.all(
        ["vm_es-0", "vm_es-1", "vm_es-2"].map((id) => outcome(mine.reserve(id, { from: ["off"] }))),
      );
      assert.deepEqual(results.slice(0, 2), ["host_a", "host_c"]);
      assert.match(
        results[2] ?? "",
        /^NO_VALID_HOST: .*a: host a: all 1 SEV-ES ASIDs .*b: host b: all 1.*c: host c: all 1/,
      );
      for (const v of await hostViews(inv))
        assert.equal(v.used.sevEs, 1, `${v.host.name} holds exactly one ES slot`);
      assert.equal((await inv.vms.get("vm_es-1"))?.powerState, "starting");
      assert.equal((await inv.vms.get("vm_es-2"))?.powerState, "off");
    });
  });
});
