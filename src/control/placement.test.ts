/**
 * Placement: key slots per host and per pool, never over-placed, and a reason for every refusal. The property
 * test drives the pure decision through 1,000 random create/destroy sequences over small pools against an
 * independent model of the rules; the integration tests drive real emulated hosts through the operations
 * engine and compare the inventory's accounting with the hosts' own ASID pools.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CPU_MODELS, type Generation } from "../machine/cpu-models.ts";
import { type PoolUse, poolOf, type VmShape } from "./compat.ts";
import type { Host, SecurityMode, VmSpec } from "./inventory/types.ts";
import { choosePlacement, type HostView, noValidHost } from "./placement.ts";
import { linuxSpec, withFixture } from "./testing/control-fixture.ts";

const GUESTS: Record<string, { sev: boolean; es: boolean }> = {
  "linux-5.19": { sev: true, es: true },
  "linux-4.16": { sev: true, es: false },
  "windows-server-2022": { sev: false, es: false },
};

function host(i: number, generation: Generation, sev: number, es: number, maintenance: boolean): Host {
  return {
    id: `host_${i}`,
    name: `h${i}`,
    clusterId: null,
    driver: "emulated",
    address: `h${i}`,
    cpuGeneration: generation,
    sevState: "working",
    esMode: "sev-es",
    vmmProfile: "qemu-legacy",
    sevAsids: sev,
    esAsids: CPU_MODELS[generation].sevEs ? es : 0,
    snpAsids: 0,
    maintenance: maintenance ? "in-maintenance" : "none",
    connection: "connected",
    firmware: null,
    createdAt: "",
    updatedAt: "",
    version: 1,
  };
}

/** The rules, written out independently of compat.ts / requirements.ts: could `vm` start on `h` with `used`? */
function modelFits(h: Host, used: PoolUse, mode: SecurityMode, spec: VmSpec): boolean {
  if (h.maintenance !== "none") return false;
  if (mode === "none") return true;
  const g = GUESTS[spec.guestOs];
  if (!g || (mode === "sev" && !g.sev) || (mode === "sev-es" && !g.es)) return false;
  if (spec.firmware !== "efi" || spec.hardwareVersion < 18) return false;
  if (mode === "sev-es") return h.cpuGeneration !== "naples" && used.sevEs < h.esAsids;
  return used.sev < h.sevAsids;
}

const hostArb = fc.record({
  generation: fc.constantFrom<Generation>("naples", "rome", "milan"),
  sev: fc.integer({ min: 0, max: 4 }),
  es: fc.integer({ min: 0, max: 3 }),
  maintenance: fc.boolean(),
});

const stepArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("start" as const),
      mode: fc.constantFrom<SecurityMode>("none", "sev", "sev-es", "sev-es"),
      guestOs: fc.constantFrom("linux-5.19", "linux-5.19", "linux-4.16", "windows-server-2022"),
      // Mostly well-formed VMs, so that pools fill up; sometimes a configuration no host accepts.
      bios: fc.nat(7).map((x) => x === 0),
      oldHardware: fc.nat(7).map((x) => x === 0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("stop" as const), pick: fc.nat() }) },
);

describe("placement (pure): 1,000 random create/destroy sequences over small pools", () => {
  it("never over-places, uses only compatible hosts, and gives a reason for every refusal", () => {
    let placed = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.array(hostArb, { minLength: 1, maxLength: 4 }),
        fc.array(stepArb, { maxLength: 40 }),
        (hs, steps) => {
          const hosts = hs.map((h, i) => host(i, h.generation, h.sev, h.es, h.maintenance && i > 0));
          const used = new Map<string, { sev: number; sevEs: number; snp: number }>(
            hosts.map((h) => [h.id, { sev: 0, sevEs: 0, snp: 0 }]),
          );
          const running: { hostId: string; mode: SecurityMode }[] = [];
          let n = 0;
          for (const step of steps) {
            if (step.kind === "stop") {
              if (running.length === 0) continue;
              const [vm] = running.splice(step.pick % running.length, 1);
              const pool = vm && poolOf(vm.mode);
              const u = vm && used.get(vm.hostId);
              if (pool && u) u[pool]--;
              continue;
            }
            const spec: VmSpec = {
              ...linuxSpec,
              guestOs: step.guestOs,
              firmware: step.bios ? "bios" : "efi",
              hardwareVersion: step.oldHardware ? 14 : 19,
            };
            const vm: VmShape = {
              id: `vm_${n}`,
              name: `vm-${n++}`,
              spec,
              securityMode: step.mode,
              policy: 0,
            };
            const views: HostView[] = hosts.map((h) => ({
              host: h,
              used: { ...(used.get(h.id) ?? { sev: 0, sevEs: 0, snp: 0 }) },
              active: 0,
            }));
            const decision = choosePlacement(vm, views);
            const anyFits = hosts.some((h) =>
              modelFits(h, used.get(h.id) ?? { sev: 0, sevEs: 0, snp: 0 }, step.mode, spec),
            );
            if (decision.chosen) {
              const h = decision.chosen.host;
              assert.ok(
                modelFits(h, used.get(h.id) ?? { sev: 0, sevEs: 0, snp: 0 }, step.mode, spec),
                `placed on ${h.name} against the rules`,
              );
              const pool = poolOf(step.mode);
              const u = used.get(h.id);
              if (pool && u) {
                u[pool]++;
                assert.ok(u[pool] <= (pool === "sev" ? h.sevAsids : h.esAsids), "over-placed");
              }
              running.push({ hostId: h.id, mode: step.mode });
              placed++;
            } else {
              assert.equal(anyFits, false, "refused although a host fits");
              assert.equal(decision.verdicts.length, hosts.length);
              for (const v of decision.verdicts) {
                assert.ok(v.findings.length > 0, `no reason given for ${v.host}`);
                for (const f of v.findings) assert.ok(f.message.length > 10 && /^[A-Z_]+$/.test(f.code));
              }
              const err = noValidHost(vm, decision.verdicts);
              assert.equal(err.code, "NO_VALID_HOST");
              for (const h of hosts) assert.match(err.message, new RegExp(`${h.name}: `));
              refused++;
            }
          }
        },
      ),
      { numRuns: 1000, seed: 0x5e5 },
    );
    console.log(`# placement: ${placed} placements, ${refused} refusals over 1,000 sequences`);
    assert.ok(placed > 1000 && refused > 100, "the generator exercised both outcomes");
  });

  it("names the pool and the BIOS split when SEV-ES cannot go anywhere", () => {
    const hosts = [
      host(1, "naples", 15, 0, false),
      host(2, "rome", 4, 0, false),
      host(3, "rome", 4, 2, false),
    ];
    const views = hosts.map((h) => ({
      host: h,
      used: { sev: 0, sevEs: h.id === "host_3" ? 2 : 0, snp: 0 },
      active: 0,
    }));
    const vm: VmShape = { id: "vm_x", name: "db", spec: linuxSpec, securityMode: "sev-es", policy: 7 };
    const d = choosePlacement(vm, views);
    assert.equal(d.chosen, undefined);
    const codes = d.verdicts.map((v) => v.findings.map((f) => f.code).join(","));
    assert.deepEqual(codes, ["CPU_GENERATION", "SEV_ES_POOL_EMPTY", "ASID_POOL_EXHAUSTED"]);
    assert.match(noValidHost(vm, d.verdicts).message, /h3: .*all 2 SEV-ES ASIDs \(1\.\.2\) are in use/);
  });

  it("prefers the VM's registration host, then the most free slots in the VM's pool", () => {
    const hosts = [host(1, "rome", 10, 3, false), host(2, "milan", 10, 8, false)];
    const views = hosts.map((h) => ({ host: h, used: { sev: 0, sevEs: 0, snp: 0 }, active: 0 }));
    const vm: VmShape = { id: "vm_x", name: "db", spec: linuxSpec, securityMode: "sev-es", policy: 7 };
    assert.equal(choosePlacement(vm, views).chosen?.host.name, "h2");
    assert.equal(choosePlacement(vm, views, { prefer: "host_1" }).chosen?.host.name, "h1");
    assert.equal(choosePlacement(vm, views, { exclude: ["host_2"] }).chosen?.host.name, "h1");
  });
});

describe("placement (integration): real emulated hosts through the operations engine", () => {
  it("racing power-ons never take more ES slots than a pool has; the rest are refused with reasons", () =>
    withFixture(
      async (f) => {
        await f.host("rome-small", "rome", 5); // 4 SEV-ES ASIDs
        await f.host("naples-1", "naples");
        const vms = await Promise.all(Array.from({ length: 12 }, (_, i) => f.vm(`es-${i}`, "sev-es")));
        const ops = await Promise.all(vms.map((vm) => f.run("vm.power-on", { vmId: vm.id }, vm.id)));
        const ok = ops.filter((o) => o.op.status === "succeeded").length;
        assert.equal(ok, 4);
        for (const o of ops.filter((x) => x.op.status !== "succeeded")) {
          const item = o.items[0];
          assert.equal(item?.code, "NO_VALID_HOST");
          assert.match(item?.reason ?? "", /rome-small: .*SEV-ES ASIDs/);
          assert.match(item?.reason ?? "", /naples-1: .*SEV-ES needs rome/);
        }
        const caps = await (await f.driver.connect("rome-small")).capabilities();
        assert.equal(caps.pools.sevEs.used, 4);
        assert.equal(await f.inventory.vms.count({ powerState: "running" }), 4);
        assert.equal(await f.inventory.vms.count({ powerState: "starting" }), 0);
      },
      { concurrency: 8 },
    ));

  it("random power-on/off sequences keep the inventory's slot count equal to the hosts' ASID pools", () =>
    withFixture(async (f) => {
      await f.host("rome-a", "rome", 3); // 2 ES slots
      await f.host("milan-a", "milan", 4); // 3 ES slots
      const modes: SecurityMode[] = ["sev-es", "sev", "none"];
      const vms = await Promise.all(Array.from({ length: 9 }, (_, i) => f.vm(`v-${i}`, modes[i % 3])));
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.nat(8), fc.boolean()), { minLength: 5, maxLength: 12 }),
          async (steps) => {
            for (const [i, on] of steps) {
              const vm = vms[i];
              if (!vm) continue;
              const cur = await f.inventory.vms.get(vm.id);
              if (on && cur?.powerState === "off") {
                const r = await f.run("vm.power-on", { vmId: vm.id }, vm.id);
                if (r.op.status !== "succeeded") assert.equal(r.items[0]?.code, "NO_VALID_HOST");
              } else if (!on && cur?.powerState === "running") {
                assert.equal((await f.run("vm.power-off", { vmId: vm.id }, vm.id)).op.status, "succeeded");
              }
            }
            for (const name of ["rome-a", "milan-a"]) {
              const caps = await (await f.driver.connect(name)).capabilities();
              const h = await f.inventory.hosts.getByName(name);
              const count = async (mode: SecurityMode) =>
                (await f.inventory.vms.count({
                  hostId: h?.id,
                  securityMode: mode,
                  powerState: "running",
                })) as number;
              assert.equal(caps.pools.sevEs.used, await count("sev-es"), `${name} ES pool`);
              assert.equal(caps.pools.sev.used, await count("sev"), `${name} SEV pool`);
              assert.ok(caps.pools.sevEs.used <= caps.pools.sevEs.size);
            }
          },
        ),
        { numRuns: 15, seed: 42 },
      );
    }));
});
