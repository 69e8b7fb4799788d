/**
 * The launch of an encrypted VM as QEMU/KVM do it (docs/sev-interface.md §8.1; docs/architecture.md §3.2 "Power on an SEV-ES VM"):
 *
 * LAUNCH_START (policy; the guest owner's GODH and session when given) → ACTIVATE (an ASID of the right pool) →
 * LAUNCH_UPDATE_DATA over the whole firmware image, mapped just below 4 GiB → the padded kernel-hashes table for a
 * measured direct boot → for SEV-ES, one LAUNCH_UPDATE_VMSA per vCPU with the reset-state VMSA QEMU builds (BSP,
 * then APs from the OVMF AP reset block) → LAUNCH_MEASURE.
 *
 * So the launch digest is SHA-256(firmware ‖ [hashes table] ‖ [VMSA × n]) — exactly what the guest owner's
 * `owner measure` computes from the same firmware file with the host's VMM profile (`qemu-legacy` by default, as
 * QEMU's default `sev-guest`; `qemu` for a KVM_SEV_INIT2 host, docs/sev-interface.md §8.5) and the host's QEMU vCPU
 * model. Every launch records those inputs (`LaunchInputs`), so the host can tell the owner what it measured.
 * ORDINARY VMs skip the firmware; their image is loaded in plaintext.
 */
import type { Hash } from "node:crypto";
import { CiphervisorError } from "../errors.ts";
import { toHex } from "../lib/bytes.ts";
import type { Generation } from "../machine/cpu-models.ts";
import { PAGE_SIZE, type SystemMemory } from "../machine/dram.ts";
import type { NestedPageTable } from "../machine/nested-page-table.ts";
import { buildKernelHashesTable, directBootHashes } from "../measure/kernel-hashes.ts";
import { type OvmfFooter, parseOvmfFooter, requireSevEsResetEip } from "../measure/ovmf-footer.ts";
import { cpuSignature, QEMU_VCPU_TYPES } from "../measure/vcpu-types.ts";
import { type HostVmmProfile, resetVmsaPages } from "../measure/vmsa.ts";
import type { SevClient } from "../sev/client.ts";
import { BUILTIN_UEFI_NAME, builtinUefiImage } from "./builtin-uefi.ts";
import type { FramePool } from "./frames.ts";
import { imageHash } from "./image-digest.ts";
import type { GuestCpu, LaunchInputs, LaunchSpec } from "./types.ts";

/**
 * The SHA-256 of every image a launch measures, as `LaunchInputs` reports them: the firmware, and for a measured
 * direct boot the kernel-hashes table's entries (SEV, SEV-ES and SNP launches alike). `firmwareHash`, a context
 * that has absorbed exactly the firmware (image-digest.ts), lets a launch that hashes the image anyway share that
 * pass; it is copied, not consumed.
 */
export function measuredImages(
  firmware: { name: string; bytes: Uint8Array },
  directBoot: LaunchSpec["directBoot"],
  firmwareHash: Hash = imageHash(firmware.bytes),
): LaunchInputs["images"] {
  const images: LaunchInputs["images"] = {
    firmware: { name: firmware.name, sha256: firmwareHash.copy().digest("hex") },
  };
  if (directBoot) {
    const h = directBootHashes(directBoot);
    images.kernel = { sha256: toHex(h.kernel) };
    images.initrd = { sha256: toHex(h.initrd) };
    images.cmdline = { sha256: toHex(h.cmdline) };
  }
  return images;
}

/** The QEMU CPU model a host of each generation presents to its guests (what the SEV-ES VMSA's RDX carries). */
export const QEMU_VCPU_MODEL: Readonly<Record<Generation, string>> = {
  naples: "EPYC",
  rome: "EPYC-Rome",
  milan: "EPYC-Milan",
  genoa: "EPYC-Genoa",
  turin: "EPYC-Turin",
};

/** The vCPU guests of a `generation` host see: its QEMU CPU model and that model's CPUID(1).EAX identity. */
export function guestCpuOf(generation: Generation): GuestCpu {
  const type = QEMU_VCPU_MODEL[generation];
  const t = QEMU_VCPU_TYPES[type];
  if (!t) throw new CiphervisorError("INTERNAL", `no CPUID identity for QEMU CPU model ${type}`);
  return { type, ...t, signature: cpuSignature(t.family, t.model, t.stepping) };
}

/** Top of the 32-bit address space: flash firmware ends here, as on a PC. */
const FOUR_GIB = 0x1_0000_0000;

export interface FirmwareImage {
  bytes: Uint8Array;
  name: string;
  footer: OvmfFooter;
  /** Guest-physical address of the first byte. */
  gpa: number;
}

/** The firmware a spec boots: its own image or the built-in emulated UEFI, with the footer parsed. */
export function resolveFirmware(spec: LaunchSpec): FirmwareImage {
  if (spec.firmware.kind !== "efi") {
    throw new CiphervisorError(
      "REQUIREMENT_FAILED",
      "legacy BIOS firmware cannot be measured by SEV; use EFI",
    );
  }
  const bytes = spec.firmware.image ?? builtinUefiImage();
  const name = spec.firmware.imageName ?? (spec.firmware.image ? "custom" : BUILTIN_UEFI_NAME);
  const footer = parseOvmfFooter(bytes);
  const gpa = FOUR_GIB - Math.ceil(bytes.length / PAGE_SIZE) * PAGE_SIZE;
  return { bytes, name, footer, gpa };
}

export interface LaunchContext {
  client: SevClient;
  memory: SystemMemory;
  frames: FramePool;
  npt: NestedPageTable;
  generation: Generation;
  /** How this host builds SEV-ES VMSAs (docs/sev-interface.md §8.5). */
  vmmProfile: HostVmmProfile;
}

export interface MeasuredLaunch {
  handle: number;
  /** VMSA page per vCPU (SEV-ES), in vCPU order. */
  vmsaPas: number[];
  /** MEASURE ‖ MNONCE. */
  measurement: Uint8Array;
  /** hex of the digest the host submitted (its own record of what it measured). */
  launchDigest: string;
  firmware: FirmwareImage;
  /** What went into the digest, for the guest owner. */
  inputs: LaunchInputs;
}

/** Maps (allocating when needed) the guest page holding `gpa` and returns its frame. */
export function mapGuestPage(ctx: Pick<LaunchContext, "frames" | "npt">, gpa: number): number {
  const page = gpa - (gpa % PAGE_SIZE);
  const e = ctx.npt.lookup(page);
  if (e) return e.hpa;
  const hpa = ctx.frames.alloc();
  ctx.npt.map(page, hpa);
  return hpa;
}

/** A run of guest pages on physically contiguous host frames: `length` bytes of a range from `offset`, at `hpa`. */
export interface FrameRun {
  hpa: number;
  offset: number;
  length: number;
}

/**
 * Maps the guest pages of [gpa, gpa + length) (`gpa` page aligned), allocating frames for those not mapped yet —
 * lowest first, so a range lands on contiguous frames whenever the pool has them — and returns the range as runs
 * of physically contiguous frames, in guest order. A run is what one firmware command can cover: KVM pins the
 * region QEMU names and issues one LAUNCH_UPDATE_DATA per physically contiguous run of its pages (Linux
 * `sev_launch_update_data`, `get_num_contig_pages`; docs/sev-interface.md §8.1).
 */
export function mapGuestRange(
  ctx: Pick<LaunchContext, "frames" | "npt">,
  gpa: number,
  length: number,
): FrameRun[] {
  if (gpa % PAGE_SIZE !== 0) throw new RangeError("a guest range must start on a page boundary");
  const pages = Math.ceil(length / PAGE_SIZE);
  const hpas: (number | undefined)[] = [];
  let missing = 0;
  for (let i = 0; i < pages; i++) {
    const hpa = ctx.npt.lookup(gpa + i * PAGE_SIZE)?.hpa;
    hpas.push(hpa);
    if (hpa === undefined) missing++;
  }
  const fresh: number[] = [];
  try {
    for (let i = 0; i < missing; i++) fresh.push(ctx.frames.alloc());
  } catch (e) {
    // Out of frames: nothing is mapped yet, so hand back what was taken rather than leak it.
    for (const f of fresh) ctx.frames.free(f);
    throw e;
  }
  fresh.sort((a, b) => a - b);
  const runs: FrameRun[] = [];
  let next = 0;
  for (let i = 0; i < pages; i++) {
    let hpa = hpas[i];
    if (hpa === undefined) {
      hpa = fresh[next++]!;
      ctx.npt.map(gpa + i * PAGE_SIZE, hpa);
    }
    const offset = i * PAGE_SIZE;
    const bytes = Math.min(PAGE_SIZE, length - offset);
    const last = runs[runs.length - 1];
    if (last && last.hpa + last.length === hpa && last.length % PAGE_SIZE === 0) last.length += bytes;
    else runs.push({ hpa, offset, length: bytes });
  }
  return runs;
}

/**
 * Runs LAUNCH_START … LAUNCH_MEASURE for `spec` with `asid`. On any failure the guest context is torn down again
 * (DEACTIVATE, DECOMMISSION) so the firmware is left as it was, and the error propagates.
 */
export function measuredLaunch(
  ctx: LaunchContext,
  spec: LaunchSpec,
  asid: number,
  policy: number,
): MeasuredLaunch {
  const { client, memory } = ctx;
  const firmware = resolveFirmware(spec);
  const es = spec.security === "sev-es";
  const cpu = guestCpuOf(ctx.generation);
  if (es && spec.vcpus > 1 && firmware.footer.sevEsResetEip === undefined) {
    // QEMU starts an SEV-ES guest's APs at the EIP this block names; without it there is nothing to launch.
    throw new CiphervisorError(
      "SEV_ES_RESET_BLOCK_MISSING",
      `firmware ${firmware.name} has no SEV-ES AP reset block in its OVMF footer table: it cannot boot an SEV-ES VM with ${spec.vcpus} vCPUs`,
    );
  }
  const vmsas = es
    ? resetVmsaPages({
        vcpus: spec.vcpus,
        apResetEip: spec.vcpus > 1 ? requireSevEsResetEip(firmware.footer) : undefined,
        profile: ctx.vmmProfile,
        vcpuSignature: cpu.signature,
      })
    : [];
  let hashes: { table: Uint8Array; gpa: number } | undefined;
  if (spec.directBoot) {
    const area = firmware.footer.kernelHashesArea;
    if (!area || area.size < 176) {
      throw new CiphervisorError(
        "KERNEL_HASHES_UNSUPPORTED",
        `firmware ${firmware.name} declares no kernel-hashes area: it cannot boot a measured kernel`,
      );
    }
    hashes = {
      table: buildKernelHashesTable({
        kernel: spec.directBoot.kernel,
        initrd: spec.directBoot.initrd,
        cmdline: spec.directBoot.cmdline,
      }),
      gpa: area.base,
    };
  }

  // The host's record of the launch digest starts with the image; the same pass gives the image's own digest.
  const digest = imageHash(firmware.bytes);
  const inputs: LaunchInputs = {
    security: es ? "sev-es" : "sev",
    vmmProfile: ctx.vmmProfile,
    vcpus: spec.vcpus,
    cpu,
    images: measuredImages(firmware, spec.directBoot, digest),
  };

  const { handle } = client.launchStart({
    policy,
    ...(spec.session ? { godhCert: spec.session.godhCert, session: spec.session.session } : {}),
  });
  let activated = false;
  try {
    client.activate(handle, asid);
    activated = true;
    // The firmware image at its frames, one LAUNCH_UPDATE_DATA per physically contiguous run as KVM issues them;
    // the digest covers only the bytes, in order, so the split does not change it (docs/sev-interface.md §8.1).
    for (const run of mapGuestRange(ctx, firmware.gpa, firmware.bytes.length)) {
      memory.write(run.hpa, firmware.bytes.subarray(run.offset, run.offset + run.length));
      client.launchUpdateData(handle, run.hpa, run.length);
    }
    if (hashes) {
      const hpa = mapGuestPage(ctx, hashes.gpa) + (hashes.gpa % PAGE_SIZE);
      memory.write(hpa, hashes.table);
      client.launchUpdateData(handle, hpa, hashes.table.length);
      digest.update(hashes.table);
    }
    const vmsaPas: number[] = [];
    for (const page of vmsas) {
      const pa = ctx.frames.alloc();
      memory.write(pa, page);
      client.launchUpdateVmsa(handle, pa);
      vmsaPas.push(pa);
      digest.update(page);
    }
    const measurement = client.launchMeasure(handle);
    return { handle, vmsaPas, measurement, launchDigest: digest.digest("hex"), firmware, inputs };
  } catch (e) {
    if (activated) client.deactivate(handle);
    client.decommission(handle);
    throw e;
  }
}
