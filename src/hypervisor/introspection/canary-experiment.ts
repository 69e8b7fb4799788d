import { CiphervisorError } from "../../errors.ts";
import { guestOsProfile, supportsMode } from "../../guest/os-profiles.ts";
import { canaryExitsProgram } from "../../guest/programs/canary-exits.ts";
import { cpuModel, type Generation } from "../../machine/cpu-models.ts";
import { asidPools } from "../../machine/cpuid.ts";
import { PAGE_SIZE } from "../../machine/dram.ts";
import { SvmExit } from "../../machine/exit-codes.ts";
import { GPR_NAMES } from "../../machine/isa.ts";
import type { VmExit } from "../../machine/machine.ts";
import type { SecurityMode } from "../../machine/vmcb.ts";
import { VMSA_LAYOUT } from "../../measure/vmsa.ts";
import { type HandledExit, handleExit } from "../kvm/exit-handler.ts";
import { attemptHostWrite, type HostWriteAttempt } from "./host-write.ts";
import { createModeLab } from "./mode-lab.ts";
import { U64Set } from "./u64-set.ts";

export interface CanaryExperimentOptions {
  mode: SecurityMode;
  /** Exits the guest program takes (each preceded by fresh canaries). */
  exits: number;
  seed: string | number;
  generation?: Generation;
  guestOs?: string;
  /** Keep every exit's save area and GHCB in the result (for JSON output); off for long test runs. */
  retain?: boolean;
  /** Called at every #VMEXIT with what the hypervisor can read at that moment. */
  onExit?(view: ExitView): void;
}

/** One #VMEXIT as the hypervisor sees it. */
export interface ExitView {
  index: number;
  exit: VmExit;
  /** The save area bytes the hypervisor can read now (VMCB page, or VMSA ciphertext page). */
  saveArea: Uint8Array;
  /** The GHCB as the guest left it for this exit (SEV-ES GHCB requests only). */
  ghcb?: Uint8Array;
  /** Values of the exposable fields the guest marked valid in that GHCB. */
  exposed: bigint[];
  handled: HandledExit;
}

export interface CanaryExperimentResult {
  mode: SecurityMode;
  generation: Generation;
  guestOs: string;
  seed: string;
  /** Canaries the guest held in registers at an exit, and those it stored in private memory. */
  canaries: { registers: bigint[]; memory: bigint[] };
  /** Register values the guest itself put in the GHCB with their valid bit. */
  exposedByGuest: bigint[];
  /** Retained per-exit views (when `retain`). */
  saveAreas: Uint8Array[];
  ghcbs: Uint8Array[];
  /** All DRAM frames in use at the end, as stored. */
  memory: { pa: number; bytes: Uint8Array }[];
  exitCount: number;
  /** Exit names in order (for people). */
  exitNames: string[];
  stopReason: string;
  /** Per guest-level exit: the canaries it held, side by side with what the hypervisor read (first 64 exits). */
  perExit: GuestExitRecord[];
  /** Memory canaries found anywhere in the final DRAM image (at any offset, either byte order). */
  memoryCanariesVisible: bigint[];
  /**
   * Register canaries at every guest exit, checked against that exit's save area and GHCB: how many the guest
   * held, how many the hypervisor could find, and how many of those the guest had not itself exposed in the GHCB.
   */
  registerVisibility: { held: number; visible: number; visibleNotExposed: number };
  /**
   * SEV-SNP only: at the first exit after the guest stored a memory canary, the hypervisor writes the page holding
   * them back as it was launched (a replay, which erases the canaries under SEV-ES); the RMP refuses it.
   */
  hostWrite?: HostWriteAttempt;
}

/** A register canary and what the hypervisor could read for it at that exit. */
export interface RegisterSighting {
  reg: string;
  value: bigint;
  /** The 8 bytes at this register's offset in the save area the hypervisor reads (plaintext or ciphertext). */
  saveAreaReads: bigint;
  /** Where the hypervisor can find the value at that exit, if anywhere: e.g. "save area +0x318", "GHCB +0x308". */
  foundAt: string | undefined;
}

export interface GuestExitRecord {
  /** CPUID, IO, MSR, HLT. */
  kind: string;
  /** Index of the #VMEXIT this guest exit produced. */
  exitIndex: number;
  registers: RegisterSighting[];
}

/** Guest exits recorded side by side (the rest only count). */
const SIDE_BY_SIDE_LIMIT = 64;

const GPR = GPR_NAMES;
const EXIT_KIND: Record<number, string> = {
  [SvmExit.CPUID]: "CPUID",
  [SvmExit.IOIO]: "IO",
  [SvmExit.MSR]: "MSR",
  [SvmExit.HLT]: "HLT",
};

/**
 * Runs the experiment. Never needs anything outside the process: DRAM, Secure Processor and machine are emulated.
 *
 * @example
 * ```ts
 * const r = runCanaryExperiment({ mode: "sev-es", exits: 8, seed: 1 });
 * r.canaries.registers.length; // ≈ 8 × 15
 * ```
 */
export function runCanaryExperiment(opts: CanaryExperimentOptions): CanaryExperimentResult {
  const steps = canaryExperimentSteps(opts);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * The experiment one #VMEXIT at a time: yields each exit's view (after `onExit`), returns the result. A caller that
 * writes each view out as it comes (`canary-json.ts`) can pause between exits for its output to drain, and never
 * holds more than one exit's bytes.
 */
export function* canaryExperimentSteps(
  opts: CanaryExperimentOptions,
): Generator<ExitView, CanaryExperimentResult, void> {
  const generation = opts.generation ?? "milan";
  const guestOs = opts.guestOs ?? "linux-5.19";
  const model = cpuModel(generation);
  const pools = asidPools(model);
  if (opts.mode === "sev-es" && !pools.sevEs.available) {
    throw new CiphervisorError("REQUIREMENT_FAILED", `cannot run an SEV-ES guest: ${pools.sevEs.reason}`);
  }
  if (opts.mode === "sev-snp") {
    // SNP guests launch through SNP's own commands and the RMP (snp-lab.ts), on parts that have them.
    if (!model.snp) {
      throw new CiphervisorError(
        "REQUIREMENT_FAILED",
        `cannot run an SEV-SNP guest: ${generation} (${model.family}) does not support SEV-SNP; it needs milan or later`,
      );
    }
    if (!pools.sevEs.available) {
      throw new CiphervisorError("REQUIREMENT_FAILED", `cannot run an SEV-SNP guest: ${pools.sevEs.reason}`);
    }
  }
  const profile = guestOsProfile(guestOs);
  const support = supportsMode(profile, opts.mode);
  if (!support.ok) throw new CiphervisorError("REQUIREMENT_FAILED", support.reason);
  const rdrand = new U64Set();
  const registerCanaries = new U64Set();
  const stored = new U64Set();
  const perExit: GuestExitRecord[] = [];
  // Guest exits whose #VMEXIT has not been inspected yet.
  const pending: GuestExitRecord[] = [];
  const registerVisibility = { held: 0, visible: 0, visibleNotExposed: 0 };
  // Index of the VMRUN in progress: an intercept the guest hits now surfaces as #VMEXIT number `index`.
  let index = 0;
  const lab = createModeLab({
    source: canaryExitsProgram(opts.exits),
    mode: opts.mode,
    generation,
    guestOs,
    seed: `hypervisor-view:${opts.seed}`,
    observer: {
      onRdrand: (v) => {
        rdrand.add(v);
      },
      onStore: (_gva, size, v) => {
        if (size === 8 && rdrand.has(v)) stored.add(v);
      },
      onIntercept: (code, gpr) => {
        const held: RegisterSighting[] = [];
        for (let i = 0; i < 16; i++) {
          const v = gpr[i]!;
          if (rdrand.has(v)) {
            registerCanaries.add(v);
            held.push({ reg: GPR[i]!, value: v, saveAreaReads: 0n, foundAt: undefined });
          }
        }
        pending.push({
          kind: EXIT_KIND[code] ?? `exit 0x${code.toString(16)}`,
          exitIndex: index,
          registers: held,
        });
      },
    },
  });
  const { machine, vm, view } = lab;
  // SEV-SNP: the page of memory canaries as launched, which the hypervisor will try to write back (host-write.ts).
  const secretsGpa = opts.mode === "sev-snp" ? lab.image.program.symbols.get("secrets") : undefined;
  const launched = secretsGpa === undefined ? undefined : view.readGuestPhysical(secretsGpa, PAGE_SIZE);
  let hostWrite: HostWriteAttempt | undefined;

  const saveAreas: Uint8Array[] = [];
  const ghcbs: Uint8Array[] = [];
  const exposedByGuest: bigint[] = [];
  const exitNames: string[] = [];
  let stopReason = "";
  // Boot exchanges + one exit per canary round (+ #VC completions are inside those) + power-off, with headroom.
  const maxExits = opts.exits * 2 + 64;
  for (; index < maxExits; index++) {
    const exit = machine.vmrun(vm.vmcb);
    const ghcbPage = exit.exitCode === SvmExit.VMGEXIT ? view.ghcb()?.bytes : undefined;
    const saveArea = view.saveArea().bytes;
    const handled = handleExit(vm, exit);
    const exposed: bigint[] = [];
    if (handled.ghcb) for (const f of handled.ghcb.valid) exposed.push(handled.ghcb.seen[f as "rax"]);
    exposedByGuest.push(...exposed);
    exitNames.push(exit.name);
    const ev: ExitView = { index, exit, saveArea, exposed, handled };
    if (ghcbPage && handled.ghcb) ev.ghcb = ghcbPage;
    opts.onExit?.(ev);
    const exposedNow = new Set(exposed);
    for (const rec of pending.splice(0)) {
      const isVmcb = view.saveArea().kind === "vmcb";
      sightings(rec, saveArea, isVmcb ? 0x400 : 0, isVmcb ? "VMCB" : "VMSA", ev.ghcb);
      for (const r of rec.registers) {
        registerVisibility.held++;
        if (r.foundAt !== undefined) {
          registerVisibility.visible++;
          if (!exposedNow.has(r.value)) registerVisibility.visibleNotExposed++;
        }
      }
      if (perExit.length < SIDE_BY_SIDE_LIMIT) perExit.push(rec);
    }
    if (opts.retain) {
      saveAreas.push(saveArea);
      if (ev.ghcb) ghcbs.push(ev.ghcb);
    }
    if (launched && !hostWrite && stored.size > 0)
      hostWrite = attemptHostWrite(view, secretsGpa!, launched, index);
    yield ev;
    if (handled.outcome.action === "stop") {
      stopReason = handled.outcome.reason;
      index++;
      break;
    }
  }
  if (!stopReason) stopReason = `still running after ${maxExits} exits`;
  const memoryCanaries = stored.values().filter((v) => !registerCanaries.has(v));
  const memory = view.memoryImage();
  const windows = new U64Set();
  for (const m of memory) {
    const dv = new DataView(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
    for (let o = 0; o + 8 <= m.bytes.length; o++) windows.add(dv.getBigUint64(o, true));
  }
  const memoryCanariesVisible = memoryCanaries.filter((v) => windows.has(v) || windows.has(byteSwap(v)));
  return {
    mode: opts.mode,
    generation,
    guestOs,
    seed: String(opts.seed),
    canaries: { registers: registerCanaries.values(), memory: memoryCanaries },
    exposedByGuest,
    saveAreas,
    ghcbs,
    memory,
    exitCount: index,
    exitNames,
    stopReason,
    perExit,
    memoryCanariesVisible,
    registerVisibility,
    ...(hostWrite ? { hostWrite } : {}),
  };
}

/** Fills in what the hypervisor could read for each register of one guest exit. */
function sightings(
  rec: GuestExitRecord,
  saveArea: Uint8Array,
  saveAreaBase: number,
  pageName: string,
  ghcb: Uint8Array | undefined,
) {
  const dv = new DataView(saveArea.buffer, saveArea.byteOffset, saveArea.byteLength);
  for (const r of rec.registers) {
    const off = saveAreaBase + VMSA_LAYOUT[r.reg as "rax"].offset;
    r.saveAreaReads = dv.getBigUint64(off, true);
    const inSave = findValue(saveArea, r.value)[0];
    const inGhcb = ghcb ? findValue(ghcb, r.value)[0] : undefined;
    if (inSave)
      r.foundAt = `${pageName} +0x${inSave.offset.toString(16)}${inSave.order === "be" ? " (big-endian)" : ""}`;
    else if (inGhcb)
      r.foundAt = `GHCB +0x${inGhcb.offset.toString(16)}${inGhcb.order === "be" ? " (big-endian)" : ""}`;
  }
}

function byteSwap(v: bigint): bigint {
  const b = new DataView(new ArrayBuffer(8));
  b.setBigUint64(0, v, true);
  return b.getBigUint64(0, false);
}

/** Hex of a 64-bit value, 16 digits (the number, most significant digit first). */
export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, "0");
}

function hexBytes(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** The JSON document of `demo hypervisor-view --json` (shape fixed by issue 3; `hostWrite` for SEV-SNP only). */
export function canaryExperimentJson(r: CanaryExperimentResult): {
  mode: SecurityMode;
  canaries: { registers: string[]; memory: string[] };
  exposedByGuest: string[];
  hypervisorView: { saveAreas: string[]; ghcb: string[]; memory: string[] };
  hostWrite?: HostWriteAttempt;
} {
  return {
    mode: r.mode,
    canaries: { registers: r.canaries.registers.map(hex64), memory: r.canaries.memory.map(hex64) },
    exposedByGuest: r.exposedByGuest.map(hex64),
    hypervisorView: {
      saveAreas: r.saveAreas.map(hexBytes),
      ghcb: r.ghcbs.map(hexBytes),
      memory: r.memory.map((m) => hexBytes(m.bytes)),
    },
    ...(r.hostWrite ? { hostWrite: r.hostWrite } : {}),
  };
}

/**
 * Where a 64-bit value occurs in `bytes`, at any offset, little- or big-endian (what "searching the hypervisor's
 * view for a canary" means).
 */
export function findValue(bytes: Uint8Array, value: bigint): { offset: number; order: "le" | "be" }[] {
  const le = new Uint8Array(8);
  new DataView(le.buffer).setBigUint64(0, value, true);
  const be = le.slice().reverse();
  const hits: { offset: number; order: "le" | "be" }[] = [];
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const [pattern, order] of [
    [le, "le"],
    [be, "be"],
  ] as const) {
    let at = buf.indexOf(pattern);
    while (at >= 0) {
      hits.push({ offset: at, order });
      at = buf.indexOf(pattern, at + 1);
    }
  }
  return hits;
}
