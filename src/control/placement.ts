/**
 * Placement: which host runs a VM. Key slots (ASIDs) are a quantitative resource per host and per pool — SEV and
 * SEV-ES never borrow from each other — with allocation ratio 1 and no over-commit, as Nova's
 * `MEM_ENCRYPTION_CONTEXT` inventories (docs/product-behaviour.md §5). A host whose pool is full, or that fails any
 * compatibility check, drops out; when none is left, the refusal says why for each candidate (Nova's NoValidHost,
 * but readable).
 *
 * This module is pure: it decides from host views the caller built. `capacity.ts` builds the views from the
 * inventory and reserves the chosen slot under a lock.
 */
import { CiphervisorError } from "../errors.ts";
import {
  type CompatFinding,
  hostFindings,
  modeName,
  type PoolUse,
  poolOf,
  poolSize,
  type VmShape,
} from "./compat.ts";
import type { Host } from "./inventory/types.ts";

/** One host as placement sees it: its facts, its taken slots, and how many VMs are powered on there. */
export interface HostView {
  readonly host: Host;
  readonly used: PoolUse;
  /** Powered-on VMs of any mode: spreads ordinary VMs. */
  readonly active: number;
}

/** Why a candidate host was (not) chosen. */
export interface CandidateVerdict {
  readonly hostId: string;
  readonly host: string;
  /** Empty when the host could take the VM. */
  readonly findings: CompatFinding[];
}

export interface PlaceOptions {
  /** Prefer this host when it fits (the VM's current registration: no needless moves). */
  readonly prefer?: string | null;
  /** Hosts that may not be chosen (a migration's source), reported as such. */
  readonly exclude?: readonly string[];
  /** Only these hosts are candidates (an explicit target). */
  readonly only?: readonly string[];
  /** Count a free slot in the VM's pool (default true); a powered-off VM's cold move needs none. */
  readonly needSlot?: boolean;
}

export interface PlacementDecision {
  /** The chosen host, or undefined when nothing fits. */
  readonly chosen: HostView | undefined;
  /** One verdict per candidate host considered, in name order. */
  readonly verdicts: CandidateVerdict[];
}

/** Free slots of `pool` on the host of `view`. */
export function freeSlots(view: Pick<HostView, "host" | "used">, pool: keyof PoolUse): number {
  return poolSize(view.host, pool) - view.used[pool];
}

/**
 * Chooses a host for `vm` to power on. Among the hosts that pass every check with a free slot, the preferred host
 * wins; otherwise the one with the most free slots in the VM's pool (ordinary VMs: the fewest powered-on VMs), then
 * the name, so the choice is deterministic.
 *
 * @example
 * ```ts
 * const { chosen, verdicts } = choosePlacement(vm, views);
 * if (!chosen) throw noValidHost(vm, verdicts);
 * ```
 */
export function choosePlacement(
  vm: VmShape,
  views: readonly HostView[],
  options: PlaceOptions = {},
): PlacementDecision {
  const pool = poolOf(vm.securityMode);
  const verdicts: CandidateVerdict[] = [];
  const fits: HostView[] = [];
  const sorted = [...views].sort((a, b) =>
    a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0,
  );
  for (const view of sorted) {
    if (options.only && !options.only.includes(view.host.id)) continue;
    const findings: CompatFinding[] = [];
    if (options.exclude?.includes(view.host.id)) {
      findings.push({ code: "SAME_HOST", message: `host ${view.host.name} is the VM's current host` });
    } else {
      findings.push(...hostFindings(view.host, view.used, vm, { needSlot: options.needSlot ?? true }));
    }
    verdicts.push({ hostId: view.host.id, host: view.host.name, findings });
    if (findings.length === 0) fits.push(view);
  }
  const preferred = options.prefer ? fits.find((v) => v.host.id === options.prefer) : undefined;
  if (preferred) return { chosen: preferred, verdicts };
  let best: HostView | undefined;
  for (const v of fits) {
    if (!best) {
      best = v;
      continue;
    }
    const better = pool === undefined ? v.active < best.active : freeSlots(v, pool) > freeSlots(best, pool);
    if (better) best = v;
  }
  return { chosen: best, verdicts };
}

/**
 * NO_VALID_HOST naming each candidate host and why it cannot take the VM.
 *
 * @example "no host can power on VM 'db-7' (SEV-ES): rome-2: all 4 SEV-ES ASIDs (1..4) are in use …; naples-1: …"
 */
export function noValidHost(
  vm: Pick<VmShape, "name" | "securityMode">,
  verdicts: readonly CandidateVerdict[],
  what = "power on",
): CiphervisorError {
  const reasons = verdicts
    .filter((v) => v.findings.length > 0)
    .map((v) => `${v.host}: ${v.findings.map((f) => f.message).join("; ")}`);
  const why = verdicts.length === 0 ? "no hosts are registered" : reasons.join(" | ");
  return new CiphervisorError(
    "NO_VALID_HOST",
    `no host can ${what} VM '${vm.name}' (${modeName(vm.securityMode)}): ${why}`,
    {
      details: {
        vm: vm.name,
        securityMode: vm.securityMode,
        candidates: verdicts.map((v) => ({
          hostId: v.hostId,
          host: v.host,
          findings: v.findings.map((f) => ({ ...f })),
        })),
      },
    },
  );
}
