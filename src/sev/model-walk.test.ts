/**
 * A model-based random walk (fast-check) of at least 100,000 firmware commands (docs/threat-model.md §8 item 8) against an independent reference
 * model written from docs/sev-interface.md §2, §3 and §7 — its own literal tables, not the implementation's. After
 * every step the status must match the model's prediction, and GUEST_STATUS / PLATFORM_STATUS must agree with the
 * model's state.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createEmulatedPlatform, type EmulatedPlatform, GUEST_BASE, TMR_PA } from "./emulated-platform.ts";
import { formatStatus, SevStatus as S } from "./status.ts";
import { statusOf } from "./test-support.ts";

const MIN_SEV_ASID = 10;
const MAX_ASID = 509;
const CORES = 8;
type GState = "LUPDATE" | "LSECRET" | "RUNNING";

interface MGuest {
  state: GState;
  policy: number;
  active: boolean;
  asid: number;
  group: number;
}

class Model {
  platform: "UNINIT" | "INIT" | "WORKING" = "INIT";
  es = true;
  guests = new Map<number, MGuest>();
  asids = new Map<number, { state: "in-use" | "dirty"; group: number; users: Set<number> }>();
  wbinvd = new Array<boolean>(CORES).fill(true);
  nextHandle = 1;
  nextGroup = 1;

  live(): boolean {
    return this.platform !== "UNINIT";
  }
}

type Step =
  | { t: "init"; es: boolean }
  | { t: "shutdown" }
  | { t: "dfFlush" }
  | { t: "wbinvd"; core: number }
  | { t: "launchStart"; policy: number; share: number }
  | { t: "activate"; h: number; asid: number }
  | {
      t: "guest";
      cmd: "deactivate" | "decommission" | "update" | "vmsa" | "measure" | "finish" | "dbg";
      h: number;
    };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ t: fc.constant("init" as const), es: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ t: "shutdown" as const }) },
  { weight: 3, arbitrary: fc.constant({ t: "dfFlush" as const }) },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant("wbinvd" as const), core: fc.integer({ min: 0, max: CORES - 1 }) }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant("launchStart" as const),
      policy: fc.constantFrom(0, 1, 2, 4, 5, 6, 7),
      share: fc.constantFrom(0, 0, 0, 1, 2, 3, 99),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant("activate" as const),
      h: fc.integer({ min: 1, max: 12 }),
      asid: fc.constantFrom(0, 1, 2, 3, 9, 10, 11, 12, 509, 510),
    }),
  },
  {
    weight: 14,
    arbitrary: fc.record({
      t: fc.constant("guest" as const),
      cmd: fc.constantFrom("deactivate", "decommission", "update", "vmsa", "measure", "finish", "dbg"),
      h: fc.integer({ min: 1, max: 12 }),
    }),
  },
) as fc.Arbitrary<Step>;

/** The model's prediction for one step, applying it when it succeeds. */
function predict(m: Model, s: Step): number {
  switch (s.t) {
    case "init":
      if (m.platform !== "UNINIT") return S.INVALID_PLATFORM_STATE;
      m.platform = "INIT";
      m.es = s.es;
      return S.SUCCESS;
    case "shutdown":
      m.platform = "UNINIT";
      m.es = false;
      m.guests.clear();
      m.asids.clear();
      m.wbinvd.fill(true);
      return S.SUCCESS;
    case "dfFlush":
      if (!m.live()) return S.INVALID_PLATFORM_STATE;
      if (!m.wbinvd.every(Boolean)) return S.WBINVD_REQUIRED;
      for (const [a, e] of m.asids) if (e.state === "dirty") m.asids.delete(a);
      return S.SUCCESS;
    case "wbinvd":
      m.wbinvd[s.core] = true;
      return S.SUCCESS;
    case "launchStart": {
      if (!m.live()) return S.INVALID_PLATFORM_STATE;
      let group = 0;
      if (s.share !== 0) {
        const other = m.guests.get(s.share);
        if (!other) return S.INVALID_GUEST;
        if (other.policy & 2 || other.policy !== s.policy) return S.POLICY_FAILURE;
        group = other.group;
      }
      if (s.policy & 4 && !m.es) return S.POLICY_FAILURE;
      m.guests.set(m.nextHandle++, {
        state: "LUPDATE",
        policy: s.policy,
        active: false,
        asid: 0,
        group: group || m.nextGroup++,
      });
      if (m.platform === "INIT") m.platform = "WORKING";
      return S.SUCCESS;
    }
    case "activate": {
      if (!m.live()) return S.INVALID_PLATFORM_STATE;
      const g = m.guests.get(s.h);
      if (!g) return S.INVALID_GUEST;
      if (g.active) return S.ACTIVE;
      const sharer = [...m.guests.values()].find((o) => o !== g && o.group === g.group && o.active);
      if (sharer && sharer.asid !== s.asid) return S.ASID_OWNED;
      const es = (g.policy & 4) !== 0;
      if (s.asid < 1 || s.asid > MAX_ASID || s.asid < MIN_SEV_ASID !== es) return S.INVALID_ASID;
      const e = m.asids.get(s.asid);
      if (e?.state === "dirty") return S.DFFLUSH_REQUIRED;
      if (e && e.group !== g.group) return S.ASID_OWNED;
      if (e) e.users.add(s.h);
      else m.asids.set(s.asid, { state: "in-use", group: g.group, users: new Set([s.h]) });
      g.active = true;
      g.asid = s.asid;
      return S.SUCCESS;
    }
    case "guest": {
      if (!m.live()) return S.INVALID_PLATFORM_STATE;
      const g = m.guests.get(s.h);
      if (!g) return S.INVALID_GUEST;
      const allowed: Record<GState, string[]> = {
        LUPDATE: ["deactivate", "decommission", "update", "vmsa", "measure"],
        LSECRET: ["deactivate", "decommission", "finish"],
        RUNNING: ["deactivate", "decommission", "dbg"],
      };
      if (!allowed[g.state].includes(s.cmd)) return S.INVALID_GUEST_STATE;
      switch (s.cmd) {
        case "deactivate": {
          if (!g.active) return S.INACTIVE;
          const e = m.asids.get(g.asid)!;
          e.users.delete(s.h);
          m.wbinvd.fill(false);
          if (e.users.size === 0) e.state = "dirty";
          g.active = false;
          return S.SUCCESS;
        }
        case "decommission":
          if (g.active) return S.ACTIVE;
          m.guests.delete(s.h);
          if (m.guests.size === 0 && m.platform === "WORKING") m.platform = "INIT";
          return S.SUCCESS;
        case "update":
          return g.active ? S.SUCCESS : S.INACTIVE;
        case "vmsa":
          if (!g.active) return S.INACTIVE;
          return g.policy & 4 ? S.SUCCESS : S.UNSUPPORTED;
        case "measure":
          g.state = "LSECRET";
          return S.SUCCESS;
        case "finish":
          g.state = "RUNNING";
          return S.SUCCESS;
        case "dbg":
          if (!g.active) return S.INACTIVE;
          return g.policy & 1 ? S.POLICY_FAILURE : S.SUCCESS;
      }
    }
  }
}

function run(p: EmulatedPlatform, s: Step): number {
  const c = p.client;
  switch (s.t) {
    case "init":
      return statusOf(() => c.init({ es: s.es, tmrPa: TMR_PA }));
    case "shutdown":
      return statusOf(() => c.shutdown());
    case "dfFlush":
      return statusOf(() => c.dfFlush());
    case "wbinvd":
      p.sp.wbinvd(s.core);
      return S.SUCCESS;
    case "launchStart":
      return statusOf(() => c.launchStart({ policy: s.policy, shareWith: s.share }));
    case "activate":
      return statusOf(() => c.activate(s.h, s.asid));
    case "guest":
      return statusOf(() => {
        switch (s.cmd) {
          case "deactivate":
            return c.deactivate(s.h);
          case "decommission":
            return c.decommission(s.h);
          case "update":
            return c.launchUpdateData(s.h, GUEST_BASE, 32);
          case "vmsa":
            return c.launchUpdateVmsa(s.h, GUEST_BASE + 0x1000);
          case "measure":
            return c.launchMeasure(s.h);
          case "finish":
            return c.launchFinish(s.h);
          case "dbg":
            return c.dbgDecrypt(s.h, GUEST_BASE, GUEST_BASE + 0x8000, 16);
        }
      });
  }
}

describe("model-based walk of the firmware", () => {
  it("matches the reference model for ≥ 100,000 random steps", () => {
    let steps = 0;
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 200, maxLength: 250 }), (walk) => {
        const p = createEmulatedPlatform({ seed: "walk", minSevAsid: MIN_SEV_ASID });
        const m = new Model();
        for (const [i, s] of walk.entries()) {
          steps++;
          const expected = predict(m, s);
          const actual = run(p, s);
          assert.equal(formatStatus(actual), formatStatus(expected), `step ${i}: ${JSON.stringify(s)}`);
          const st = p.sp.snapshot();
          assert.equal(st.state, m.platform, `platform state after step ${i}`);
          assert.deepEqual(
            st.guests.map((g) => [g.handle, g.state, g.active, g.active ? g.asid : 0]),
            [...m.guests].map(([h, g]) => [h, g.state, g.active, g.active ? g.asid : 0]),
            `guests after step ${i}`,
          );
          assert.deepEqual(
            st.asids.dirty,
            [...m.asids]
              .filter(([, e]) => e.state === "dirty")
              .map(([a]) => a)
              .sort((a, b) => a - b),
            `dirty ASIDs after step ${i}`,
          );
        }
      }),
      { numRuns: 500, seed: 20261127 },
    );
    assert.ok(steps >= 100_000, `walked ${steps} steps`);
  });
});
