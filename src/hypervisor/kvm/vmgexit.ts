/**
 * The host's VMGEXIT handling for SEV-ES guests, modelled on KVM (torvalds/linux `arch/x86/kvm/svm/sev.c`:
 * `sev_handle_vmgexit`, `sev_handle_vmgexit_msr_protocol`, `sev_es_sync_from_ghcb`, `sev_es_validate_vmgexit`,
 * `sev_es_sync_to_ghcb`; docs/sev-interface.md §12.3, §12.4):
 *
 * 1. A GHCB MSR value with a request code in bits 11:0 is the **MSR protocol**; the answer goes back through the
 *    VMCB's GHCB field, which the CPU loads into the MSR at VMRUN.
 * 2. Otherwise it is the GHCB's GPA. The host **snapshots** the page first (so later guest writes cannot change the
 *    decision — the TOCTOU fix), zeroes its register copy and copies in **only** the valid exposable fields, clears
 *    the guest's valid bitmap, validates the snapshot (usage, sw_exit_code/info_1/info_2, per-exit required fields),
 *    and answers malformed input with the GHCB error response (sw_exit_info_1 = 2, sw_exit_info_2 = reason) — never
 *    an exception. A valid request is emulated and RAX/RBX/RCX/RDX are returned, each with its valid bit.
 * 3. For an SEV-SNP guest, the SNP guest request (SW_EXITCODE 0x8000_0011) is relayed to the firmware
 *    (snp-guest-request.ts), and the GHCB version 2 SNP events — page state change and AP creation — go to
 *    snp-events.ts, as does the MSR protocol's page state change (0x014); any other guest gets INVALID_EVENT for the
 *    events, as for any unknown exit, and KVM ends it for the MSR request. The hypervisor features request (0x080)
 *    is answered with the host's feature bitmap (KVM's `GHCB_HV_FT_SUPPORTED` unless the host says otherwise).
 */
import type { SystemMemory } from "../../machine/dram.ts";
import {
  EXPOSABLE_FIELDS,
  GHCB_DEFAULT_USAGE,
  GHCB_PROTOCOL_MAX,
  GHCB_PROTOCOL_MIN,
  GHCB_SIZE,
  GhcbError,
  GhcbMsr,
  GhcbResponse,
  GhcbView,
  hvFeaturesResponse,
  KVM_HV_FEATURES,
  msrCode,
  sevInfoResponse,
} from "../../machine/ghcb.ts";
import { GHCB_RETURNED_FIELDS, naeExit } from "../../machine/nae-exits.ts";
import type { NestedPageTable } from "../../machine/nested-page-table.ts";
import type { HostDevices, HostRegs } from "./devices.ts";
import { handlePscMsr } from "./page-state-change.ts";
import type { SnpGuestKvm } from "./snp-context.ts";
import { type SnpEventRow, snpEvent } from "./snp-events.ts";
import {
  handleSnpGuestRequest,
  SNP_GUEST_REQUEST_EXIT,
  type SnpGuestRequestChannel,
} from "./snp-guest-request.ts";

/** What the host saw and answered for one GHCB request — the hypervisor's whole view of that exit. */
export interface GhcbExchange {
  exitCode: bigint;
  exitInfo1: bigint;
  exitInfo2: bigint;
  /** KVM's register copy after the sync: the valid exposable fields, every other field zero. */
  seen: HostRegs;
  /** Which exposable fields were valid in the snapshot. */
  valid: Set<string>;
  /** sw_exit_info_1 / sw_exit_info_2 of the answer. */
  response: { info1: bigint; info2: bigint };
  /** Why the host refused an SNP event, in KVM's words. */
  refusal?: string;
}

export type VmgexitOutcome =
  | { kind: "resume"; ghcb?: GhcbExchange; msrProtocol?: { request: bigint; response: bigint } }
  | { kind: "stop"; reason: string; ghcb?: GhcbExchange };

export interface VmgexitContext {
  memory: SystemMemory;
  npt: NestedPageTable;
  devices: HostDevices;
  cBit: number;
  /** The GHCB MSR value the CPU stored in the VMCB at VMGEXIT. */
  ghcbMsr: bigint;
  /** Set the VMCB GHCB field (the MSR-protocol answer). */
  respond(value: bigint): void;
  /** The GPA registered with MSR protocol 0x012, if any. */
  registeredGhcb: { gpa: bigint | undefined };
  /** SEV-SNP guests: the firmware channel the SNP guest request exit is relayed through. */
  snp?: SnpGuestRequestChannel;
  /** SEV-SNP guests: the RMP, ASID, advertised features and vCPUs for page state changes and AP creation. */
  snpGuest?: SnpGuestKvm;
  /** Tests only: runs between the snapshot and the decision (a guest thread racing the host). */
  afterSnapshot?: () => void;
}

const TERM_REASONS: Record<string, string> = {
  "0:0": "general request",
  "0:1": "GHCB protocol range not supported",
  "0:2": "SEV-SNP not supported",
  "1:0": "GHCB registration failed",
  "1:1": "page state change failed",
  "1:2": "PVALIDATE failed",
  "1:3": "not running at VMPL0",
};

function msrProtocol(c: VmgexitContext): VmgexitOutcome {
  const v = c.ghcbMsr;
  let response: bigint;
  switch (msrCode(v)) {
    case GhcbMsr.SEV_INFO_REQ:
      response = sevInfoResponse(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, c.cBit);
      break;
    case GhcbMsr.CPUID_REQ: {
      const leaf = Number((v >> 32n) & 0xffffffffn);
      const reg = Number((v >> 30n) & 3n);
      const value = c.devices.cpuid(leaf, 0, 1n)[reg]!;
      response = (BigInt(value >>> 0) << 32n) | BigInt(GhcbMsr.CPUID_RESP);
      break;
    }
    case GhcbMsr.REG_GPA_REQ: {
      const gfn = v >> 12n;
      c.registeredGhcb.gpa = gfn << 12n;
      response = (gfn << 12n) | BigInt(GhcbMsr.REG_GPA_RESP);
      break;
    }
    case GhcbMsr.HV_FEATURES_REQ:
      response = hvFeaturesResponse(c.snpGuest?.hvFeatures ?? KVM_HV_FEATURES);
      break;
    case GhcbMsr.PSC_REQ:
      if (!c.snpGuest) {
        return {
          kind: "stop",
          reason: "a page state change request from a guest that is not SEV-SNP (KVM ends the VM)",
        };
      }
      response = handlePscMsr({ ...c.snpGuest, npt: c.npt }, v);
      break;
    case GhcbMsr.TERM_REQ: {
      const set = Number((v >> 12n) & 0xfn);
      const code = Number((v >> 16n) & 0xffn);
      const why = TERM_REASONS[`${set}:${code}`] ?? "unknown reason";
      return {
        kind: "stop",
        reason: `the guest requested termination (reason set ${set}, code ${code}: ${why})`,
      };
    }
    default:
      return {
        kind: "stop",
        reason: `unsupported GHCB MSR protocol request 0x${msrCode(v).toString(16)} (KVM ends the VM)`,
      };
  }
  c.respond(response);
  return { kind: "resume", msrProtocol: { request: v, response } };
}

/** The checks every GHCB request passes: the usage and the three software exit fields. */
function validateHeader(s: GhcbView): number | undefined {
  if (s.usage !== GHCB_DEFAULT_USAGE) return GhcbError.INVALID_USAGE;
  if (!s.isValid("swExitCode") || !s.isValid("swExitInfo1") || !s.isValid("swExitInfo2")) {
    return GhcbError.MISSING_INPUT;
  }
  return undefined;
}

/** The reason code of a malformed request, or undefined when the snapshot is a valid request (KVM's checks). */
function validate(s: GhcbView, snp: SnpEventRow | undefined): number | undefined {
  const header = validateHeader(s);
  if (header !== undefined) return header;
  const code = s.get("swExitCode");
  const row = snp ?? (code <= 0xffffffffn ? naeExit(Number(code)) : undefined);
  if (!row) return GhcbError.INVALID_EVENT;
  for (const f of row.required(s)) if (!s.isValid(f)) return GhcbError.MISSING_INPUT;
  return undefined;
}

/** Handles one VMGEXIT. Never throws for anything in guest memory or the VMCB. */
export function handleVmgexit(c: VmgexitContext): VmgexitOutcome {
  if (msrCode(c.ghcbMsr) !== 0) return msrProtocol(c);
  const gpa = c.ghcbMsr;
  const hpa = gpa <= BigInt(Number.MAX_SAFE_INTEGER) ? c.npt.translate(Number(gpa)) : undefined;
  if (hpa === undefined) {
    return {
      kind: "stop",
      reason: `the guest's GHCB GPA 0x${gpa.toString(16)} is not mapped (KVM cannot map it)`,
    };
  }
  const page = c.memory.read(hpa, GHCB_SIZE);
  const snapshot = new GhcbView(page.slice());
  c.afterSnapshot?.();
  // Re-read: whatever the guest did after the snapshot stays in its page but decides nothing.
  const live = new GhcbView(c.memory.read(hpa, GHCB_SIZE));

  const seen: HostRegs = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, cpl: 0n, xcr0: 0n };
  const valid = new Set<string>();
  for (const f of EXPOSABLE_FIELDS) {
    if (snapshot.isValid(f)) {
      seen[f] = snapshot.get(f);
      valid.add(f);
    }
  }
  const exchange: GhcbExchange = {
    exitCode: snapshot.get("swExitCode"),
    exitInfo1: snapshot.get("swExitInfo1"),
    exitInfo2: snapshot.get("swExitInfo2"),
    seen,
    valid,
    response: { info1: 0n, info2: 0n },
  };
  live.clearValidBitmap();

  const snpRequest = c.snp !== undefined && exchange.exitCode === SNP_GUEST_REQUEST_EXIT;
  const event = c.snpGuest ? snpEvent(c.snpGuest, exchange.exitCode) : undefined;
  const bad = snpRequest ? validateHeader(snapshot) : validate(snapshot, event);
  let stop: string | undefined;
  if (bad !== undefined) {
    exchange.response = { info1: BigInt(GhcbResponse.MALFORMED_INPUT), info2: BigInt(bad) };
  } else if (event && c.snpGuest) {
    const a = event.handle({ memory: c.memory, npt: c.npt, snp: c.snpGuest, ghcbGpa: gpa, snapshot, live });
    exchange.response = { info1: a.info1, info2: a.info2 };
    if (a.refusal !== undefined) exchange.refusal = a.refusal;
  } else if (snpRequest && c.snp) {
    exchange.response = handleSnpGuestRequest(
      { memory: c.memory, npt: c.npt, snp: c.snp },
      exchange.exitInfo1,
      exchange.exitInfo2,
    );
  } else {
    const result = c.devices.emulate(Number(exchange.exitCode), exchange.exitInfo1, { ...seen });
    const out: HostRegs = { ...seen, ...result.regs };
    for (const f of GHCB_RETURNED_FIELDS) live.set(f, out[f]);
    if (result.inject) {
      const e = result.inject;
      // EVENTINJ format: vector, type 3 (exception), error-code valid, valid.
      const event =
        BigInt(e.vector) |
        (3n << 8n) |
        (e.errorCode === undefined ? 0n : (1n << 11n) | (BigInt(e.errorCode) << 32n)) |
        (1n << 31n);
      exchange.response = { info1: BigInt(GhcbResponse.ISSUE_EXCEPTION), info2: event };
    }
    stop = result.stop;
  }
  live.set("swExitInfo1", exchange.response.info1);
  live.set("swExitInfo2", exchange.response.info2);
  c.memory.write(hpa, live.bytes);
  if (stop !== undefined) return { kind: "stop", reason: stop, ghcb: exchange };
  return { kind: "resume", ghcb: exchange };
}
