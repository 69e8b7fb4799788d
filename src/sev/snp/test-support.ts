/**
 * Test scaffolding for the SNP firmware tests: an emulated Milan or Genoa host with a stand-in for the RMP (a map
 * from system physical address to the GPA the host's RMPUPDATE would have recorded) and a QEMU-ordered launch of an
 * OVMF image from its SEV metadata (docs/sev-interface.md §14.1). Not part of the library API.
 */
import { readFileSync } from "node:fs";
import { Dram } from "../../machine/dram.ts";
import { expectedSnpLaunch, SNP_VMSA_GPA } from "../../measure/snp-launch-digest.ts";
import { vcpuSignatureOf } from "../../measure/vcpu-types.ts";
import { SCRATCH } from "../emulated-platform.ts";
import type { EmulatedSnpGeneration } from "../manufacturer/emulated-snp.ts";
import { SecureProcessor } from "../secure-processor.ts";
import { SnpClient } from "./client.ts";
import type { SnpLaunchPage, SnpPlatformConfig, SnpRmpHook } from "./firmware-state.ts";
import type { SnpLaunchPageTypeName } from "./page-info.ts";
import { DEFAULT_SNP_POLICY } from "./policy.ts";

export const AMDSEV_OVMF = new Uint8Array(
  readFileSync(
    new URL("../../../test/fixtures/measure/sev-snp-measure/ovmf_AmdSev_suffix.bin", import.meta.url),
  ),
);
export const EPYC_V4 = vcpuSignatureOf("EPYC-v4");

/** The RMP stand-in: GPAs by system physical address, and every page the firmware took, in order. */
export class StubRmp implements SnpRmpHook {
  readonly gpas = new Map<number, bigint>();
  readonly taken: SnpLaunchPage[] = [];
  launchUpdate(page: SnpLaunchPage): { gpa: bigint } {
    this.taken.push(page);
    return { gpa: this.gpas.get(page.pa) ?? BigInt(page.pa) };
  }
}

export interface SnpHost {
  dram: Dram;
  sp: SecureProcessor;
  client: SnpClient;
  rmp: StubRmp;
  /** Next free guest page (system physical). */
  alloc(): number;
}

export const GCTX_PA = 0x300000;
const GUEST_MEMORY = 0x800000;

export function snpHost(
  opts: {
    generation?: EmulatedSnpGeneration;
    seed?: string;
    init?: boolean;
    config?: SnpPlatformConfig;
  } = {},
): SnpHost {
  const dram = new Dram(64 * 1024 * 1024);
  const rmp = new StubRmp();
  const sp = new SecureProcessor({
    generation: opts.generation ?? "milan",
    seed: opts.seed ?? "snp-1",
    memory: dram,
    snp: { rmp, ...opts.config },
  });
  const client = new SnpClient(sp, dram, SCRATCH);
  if (opts.init ?? true) client.init();
  let next = GUEST_MEMORY;
  const alloc = () => {
    const pa = next;
    next += 4096;
    return pa;
  };
  return { dram, sp, client, rmp, alloc };
}

/** Places `page` (4 KiB) at a fresh PA, records its GPA in the RMP stand-in, and launches it as `type`. */
export function putPage(
  h: SnpHost,
  gctx: number,
  type: SnpLaunchPageTypeName,
  gpa: bigint,
  page?: Uint8Array,
): number {
  const pa = h.alloc();
  h.dram.write(pa, page ?? new Uint8Array(4096));
  h.rmp.gpas.set(pa, gpa);
  h.client.launchUpdate(gctx, { pa, type });
  return pa;
}

export interface LaunchedGuest {
  gctx: number;
  asid: number;
  secretsPa: number;
  policy: bigint;
  expected: ReturnType<typeof expectedSnpLaunch>;
}

/**
 * GCTX_CREATE, LAUNCH_START, ACTIVATE, then QEMU's LAUNCH_UPDATE order for `firmware`: its pages as NORMAL pages
 * ending at 4 GiB, each SEV metadata section, one VMSA per vCPU at the VMSA GPA. Returns what `owner measure --mode
 * snp` expects of the same launch. LAUNCH_FINISH is left to the caller.
 */
export function launchOvmf(
  h: SnpHost,
  opts: { firmware?: Uint8Array; vcpus?: number; policy?: bigint; asid?: number } = {},
): LaunchedGuest {
  const firmware = opts.firmware ?? AMDSEV_OVMF;
  const policy = opts.policy ?? DEFAULT_SNP_POLICY;
  const asid = opts.asid ?? 1;
  const expected = expectedSnpLaunch({ firmware, vcpus: opts.vcpus ?? 1, vcpuSignature: EPYC_V4 });
  const gctx = GCTX_PA;
  h.client.gctxCreate(gctx);
  h.client.launchStart(gctx, { policy });
  h.client.activate(gctx, asid);
  for (let off = 0; off < firmware.length; off += 4096) {
    putPage(h, gctx, "NORMAL", BigInt(expected.firmwareGpa + off), firmware.subarray(off, off + 4096));
  }
  let secretsPa = 0;
  for (const s of expected.metadata.sections) {
    for (let off = 0; off < s.size; off += 4096) {
      const gpa = BigInt(s.gpa + off);
      if (s.name === "SNP_SECRETS") secretsPa = putPage(h, gctx, "SECRETS", gpa);
      else if (s.name === "CPUID") putPage(h, gctx, "CPUID", gpa);
      else putPage(h, gctx, "ZERO", gpa);
    }
  }
  for (const vmsa of expected.vmsaPages) putPage(h, gctx, "VMSA", BigInt(SNP_VMSA_GPA), vmsa);
  return { gctx, asid, secretsPa, policy, expected };
}
