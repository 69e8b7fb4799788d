/**
 * The slot ledger decides as `choosePlacement` does: random fleets (every generation, unknown ones, pools of every
 * size, some full, some in or entering maintenance, disconnected, SNP-mode ES pools, uninitialised platforms,
 * duplicate free counts so that the name decides) and random sequences of VMs (all modes, configurations no host
 * takes, VMs holding their own slot, preferred hosts) — after every step the ledger's choice, or its refusal's
 * verdicts, equal `choosePlacement` over the ledger's own views, and the slots it counts equal an independent tally.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CPU_MODELS } from "../machine/cpu-models.ts";
import { NO_POOL_USE, poolOf, type VmShape } from "./compat.ts";
import type { Host, HostGeneration, PowerState, SecurityMode, Vm } from "./inventory/types.ts";
import { choosePlacement, type HostView, type PlaceOptions } from "./placement.ts";
import { SlotLedger } from "./slot-ledger.ts";
import { linuxSpec } from "./testing/control-fixture.ts";

const GENERATIONS: HostGeneration[] = ["naples", "rome", "milan", "genoa", "unknown"];

const hostArb = fc.record({
  generation: fc.constantFrom(...GENERATIONS),
  sev: fc.integer({ min: 0, max: 5 }),
  es: fc.integer({ min: 0, max: 4 }),
  /** Under Ciphertext Hiding, the low ASIDs set apart for SEV-SNP (mostly none). */
  snp: fc.constantFrom(0, 0, 0, 1, 2),
  usedSnp: fc.integer({ min: 0, max: 2 }),
  usedSev: fc.integer({ min: 0, max: 5 }),
  usedEs: fc.integer({ min: 0, max: 4 }),
  active: fc.integer({ min: 0, max: 3 }),
  odd: fc.constantFrom("none", "none", "none", "none", "entering", "in-maintenance", "down", "snp", "uninit"),
  // Few distinct names' prefixes: names sort differently from creation order.
  name: fc.constantFrom("a", "b", "c", "m", "z"),
});

function toHost(i: number, h: HostArb): Host {
  const model = h.generation === "unknown" ? undefined : CPU_MODELS[h.generation];
  return {
    id: `host_${i}`,
    name: `${h.name}${(i * 7919) % 1000}`,
    clusterId: null,
    driver: "emulated",
    address: `h${i}`,
    cpuGeneration: h.generation,
    sevState: h.odd === "uninit" ? "uninitialized" : "working",
    esMode: h.odd === "snp" ? "snp" : "sev-es",
    vmmProfile: "qemu-legacy",
    sevAsids: model ? h.sev : 0,
    esAsids: model?.sevEs ? h.es : 0,
    snpAsids: model?.sevEs ? Math.min(h.snp, h.es) : 0,
    maintenance: h.odd === "entering" ? "entering" : h.odd === "in-maintenance" ? "in-maintenance" : "none",
    connection: h.odd === "down" ? "disconnected" : "connected",
    firmware: null,
    createdAt: "",
    updatedAt: "",
    version: 1,
  };
}
type HostArb = {
  generation: HostGeneration;
  sev: number;
  es: number;
  snp: number;
  usedSnp: number;
  usedSev: number;
  usedEs: number;
  active: number;
  odd: string;
  name: string;
};

const vmArb = fc.record({
  mode: fc.constantFrom<SecurityMode>("none", "sev", "sev-es", "sev-es", "sev-snp"),
  guestOs: fc.constantFrom("linux-5.19", "linux-5.19", "linux-5.19", "linux-4.16", "windows-server-2022"),
  bios: fc.nat(9).map((x) => x === 0),
  /** Holds its own slot (a resumed power-on) on host `at`. */
  own: fc.nat(5).map((x) => x === 0),
  at: fc.nat(),
  prefer: fc.option(fc.nat(), { nil: undefined }),
  exclude: fc.nat(11).map((x) => x === 0),
  /** After the choice: a VM elsewhere powers off (gives a slot back). */
  release: fc.option(fc.nat(), { nil: undefined }),
});

describe("slot ledger (pure): the same choices as choosePlacement", () => {
  it("agrees with choosePlacement over its own views after every step of 300 random sequences", () => {
    let chosen = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.array(hostArb, { minLength: 1, maxLength: 12, size: "max" }),
        fc.array(vmArb, { minLength: 1, maxLength: 60, size: "max" }),
        (hs, steps) => {
          const hosts = hs.map((h, i) => toHost(i, h));
          const views: HostView[] = hosts.map((host, i) => ({
            host,
            used: {
              ...NO_POOL_USE,
              sev: Math.min(hs[i]!.usedSev, host.sevAsids),
              sevEs: Math.min(hs[i]!.usedEs, host.esAsids),
              snp: Math.min(hs[i]!.usedSnp, host.snpAsids),
            },
            active: hs[i]!.active,
          }));
          const tally = new Map(views.map((v) => [v.host.id, { ...v.used, active: v.active }]));
          const ledger = new SlotLedger(views);
          const placed: { hostId: string; mode: SecurityMode }[] = [];
          steps.forEach((s, n) => {
            const at = hosts[s.at % hosts.length]!;
            const pool = poolOf(s.mode);
            const holds = s.own && pool !== undefined && (tally.get(at.id)?.[pool] ?? 0) > 0;
            const powerState: PowerState = holds ? "starting" : "off";
            const vm: VmShape & Pick<Vm, "hostId" | "powerState"> = {
              id: `vm_${n}`,
              name: `vm-${n}`,
              spec: { ...linuxSpec, guestOs: s.guestOs, firmware: s.bios ? "bios" : "efi" },
              securityMode: s.mode,
              policy: s.mode === "none" ? 0 : 7,
              hostId: holds ? at.id : null,
              powerState,
            };
            const options: PlaceOptions = {
              ...(s.prefer === undefined ? {} : { prefer: hosts[s.prefer % hosts.length]!.id }),
              ...(s.exclude ? { exclude: [at.id] } : {}),
            };
            // The reference: choosePlacement over the ledger's views without the VM's own slot.
            const ref = ledger
              .views()
              .map((v) =>
                holds && pool !== undefined && v.host.id === at.id
                  ? { ...v, used: { ...v.used, [pool]: Math.max(0, v.used[pool] - 1) } }
                  : v,
              );
            const expected = choosePlacement(vm, ref, options);
            const got = ledger.choose(vm, options);
            assert.equal(got.chosen?.host.id, expected.chosen?.host.id, `step ${n}`);
            if (!got.chosen) {
              assert.deepEqual(got.verdicts, expected.verdicts);
              refused++;
            } else {
              chosen++;
              const to = got.chosen.host.id;
              const t = tally.get(to)!;
              if (pool !== undefined) t[pool]++;
              t.active++;
              ledger.adjust(to, pool, 1, 1);
              if (holds && pool !== undefined) {
                // Its old slot (a `starting` elsewhere) is given back.
                const o = tally.get(at.id)!;
                o[pool] = Math.max(0, o[pool] - 1);
                o.active = Math.max(0, o.active - 1);
                ledger.adjust(at.id, pool, -1, -1);
              }
              placed.push({ hostId: to, mode: s.mode });
            }
            if (s.release !== undefined && placed.length > 0) {
              const [gone] = placed.splice(s.release % placed.length, 1);
              const p = poolOf(gone!.mode);
              const t = tally.get(gone!.hostId)!;
              if (p !== undefined) t[p] = Math.max(0, t[p] - 1);
              t.active = Math.max(0, t.active - 1);
              ledger.adjust(gone!.hostId, p, -1, -1);
            }
            for (const v of ledger.views()) {
              const t = tally.get(v.host.id)!;
              assert.deepEqual({ ...v.used, active: v.active }, t);
            }
          });
        },
      ),
      { numRuns: 300, seed: 0x51a7 },
    );
    console.log(`# slot ledger: ${chosen} choices, ${refused} refusals`);
    assert.ok(chosen > 2000 && refused > 300, "the generator exercised both outcomes");
  });

  it("a fresh read of one host moves it in or out of the candidates (maintenance, its slots, gone)", () => {
    const host = (i: number, es: number): Host => ({ ...toHost(i, BASE), name: `h${i}`, esAsids: es });
    const views = [host(1, 3), host(2, 2)].map((h) => ({ host: h, used: NO_POOL_USE, active: 0 }));
    const ledger = new SlotLedger(views);
    const vm: VmShape = { id: "vm_x", name: "x", spec: linuxSpec, securityMode: "sev-es", policy: 7 };
    assert.equal(ledger.choose(vm).chosen?.host.name, "h1");
    ledger.refresh("host_1", { ...views[0]!, host: { ...views[0]!.host, maintenance: "in-maintenance" } });
    assert.equal(ledger.choose(vm).chosen?.host.name, "h2");
    ledger.refresh("host_1", { ...views[0]!, used: { ...NO_POOL_USE, sevEs: 2 } });
    assert.equal(ledger.choose(vm).chosen?.host.name, "h2", "h1 has 1 free, h2 has 2");
    ledger.refresh("host_2", undefined);
    assert.equal(ledger.choose(vm).chosen?.host.name, "h1");
    assert.deepEqual(
      ledger.views().map((v) => v.host.name),
      ["h1"],
    );
    ledger.adjust("host_1", "sevEs", 1, 1);
    const none = ledger.choose(vm);
    assert.equal(none.chosen, undefined);
    assert.match(none.verdicts?.[0]?.findings[0]?.message ?? "", /all 3 SEV-ES ASIDs/);
  });
});

const BASE: HostArb = {
  generation: "milan",
  sev: 10,
  es: 3,
  snp: 0,
  usedSnp: 0,
  usedSev: 0,
  usedEs: 0,
  active: 0,
  odd: "none",
  name: "h",
};
