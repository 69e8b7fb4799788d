import { CiphervisorError } from "../errors.ts";
import { ByteWriter, toHex } from "../lib/bytes.ts";
import type { Generation } from "../machine/cpu-models.ts";
import { PAGE_SIZE, type SystemMemory } from "../machine/dram.ts";
import type { NestedPageTable } from "../machine/nested-page-table.ts";
import { type Rmp, RmpReturn } from "../machine/rmp.ts";
import { buildKernelHashesTable } from "../measure/kernel-hashes.ts";
import { requireSevEsResetEip } from "../measure/ovmf-footer.ts";
import { requireSevMetadata, type SevMetadataSection } from "../measure/ovmf-sev-metadata.ts";
import { SNP_VMSA_GPA, SnpLaunchDigest, snpFirmwareGpa } from "../measure/snp-launch-digest.ts";
import { resetVmsaPages } from "../measure/vmsa.ts";
import { SevFirmwareError } from "../sev/errors.ts";
import type { SnpClient } from "../sev/snp/client.ts";
import { SnpCmd } from "../sev/snp/commands.ts";
import type { SnpLaunchPageTypeName } from "../sev/snp/page-info.ts";
import { SevStatus, statusName } from "../sev/status.ts";
import type { FramePool } from "./frames.ts";
import { type FirmwareImage, guestCpuOf, mapGuestPage, measuredImages, resolveFirmware } from "./launch.ts";
import { returnSnpPages } from "./snp-reclaim.ts";
import type { LaunchInputs, LaunchSpec } from "./types.ts";

/** SEV_FEATURES of every VMSA QEMU/KVM launch: SNPActive (sev-snp-measure's default `--guest-features 0x1`). */
export const SNP_GUEST_FEATURES = 0x1n;
/** QEMU's default `sev-snp-guest` policy: SMT allowed and bit 17, which must be one (docs/sev-interface.md §14). */
export const QEMU_SNP_POLICY = 0x30000;
/** The CPUID page: COUNT u32 @0, reserved to 0x10, then entries of 0x30 bytes (SNP ABI 56860, the CPUID page). */
const CPUID_ENTRY_SIZE = 0x30;
/** The leaves QEMU's CPUID page carries that the emulated vCPU defines. */
const CPUID_PAGE_LEAVES = [0x0, 0x1, 0x8000_0000, 0x8000_001f] as const;

export interface SnpLaunchContext {
  snp: SnpClient;
  rmp: Rmp;
  memory: SystemMemory;
  frames: FramePool;
  npt: NestedPageTable;
  generation: Generation;
  /** CPUID as KVM reports it to QEMU for this vCPU ([eax, ebx, ecx, edx]): what QEMU writes into the CPUID page. */
  cpuid(leaf: number, subleaf: number): readonly [number, number, number, number];
}

export interface SnpMeasuredLaunch {
  /** The guest context page (GCTX_PADDR), owned by the firmware until SNP_DECOMMISSION. */
  gctxPa: number;
  /** The VMSA page of each vCPU, in vCPU order. */
  vmsaPas: number[];
  /** hex of the SHA-384 launch digest the host submitted (its own record of what it measured). */
  launchDigest: string;
  firmware: FirmwareImage;
  /** What went into the digest, for the guest owner. */
  inputs: LaunchInputs;
  /** Where the SNP secrets page is (the guest finds its VMPCKs there). */
  secretsGpa: number;
}

function onePage(s: SevMetadataSection | undefined, name: string): SevMetadataSection {
  if (!s || s.size !== PAGE_SIZE) {
    throw new CiphervisorError(
      "MALFORMED",
      `OVMF SEV metadata: ${s ? `the ${name} section is ${s.size} bytes; it must be one 4 KiB page` : `no ${name} section`}`,
    );
  }
  return s;
}

/** QEMU's CPUID page: one entry {EAX_IN, ECX_IN, XCR0_IN, XSS_IN, EAX, EBX, ECX, EDX} per leaf. */
function cpuidPage(cpuid: SnpLaunchContext["cpuid"]): Uint8Array {
  const w = new ByteWriter(PAGE_SIZE).u32(0, CPUID_PAGE_LEAVES.length);
  CPUID_PAGE_LEAVES.forEach((leaf, i) => {
    const e = 0x10 + i * CPUID_ENTRY_SIZE;
    const [a, b, c, d] = cpuid(leaf, 0);
    w.u32(e, leaf)
      .u64(e + 8, 1n)
      .u32(e + 0x18, a >>> 0)
      .u32(e + 0x1c, b >>> 0)
      .u32(e + 0x20, c >>> 0)
      .u32(e + 0x24, d >>> 0);
  });
  return w.bytes;
}

/** The policy as SNP_LAUNCH_START takes it (a u64). */
export function snpPolicy(spec: LaunchSpec): bigint {
  return BigInt(spec.policy ?? QEMU_SNP_POLICY);
}

/**
 * Runs SNP_GCTX_CREATE … SNP_LAUNCH_FINISH for `spec` with `asid`. On any failure the guest context is
 * decommissioned again (which deactivates it), every page the launch gave the guest or the firmware goes back to the
 * hypervisor (SNP_PAGE_RECLAIM where it is Immutable, then RMPUPDATE: snp-reclaim.ts), the context and VMSA pages
 * are freed, and the error propagates; the caller frees the guest's mapped frames.
 *
 * @throws CiphervisorError SEV_METADATA_MISSING (a firmware without SEV metadata, refused before any firmware
 *   call), SEV_ES_RESET_BLOCK_MISSING, KERNEL_HASHES_UNSUPPORTED, MALFORMED; SEV_FIRMWARE with the firmware's status
 *   (e.g. BAD_SIGNATURE for an ID block whose signature does not verify)
 */
export function snpLaunch(ctx: SnpLaunchContext, spec: LaunchSpec, asid: number): SnpMeasuredLaunch {
  const { snp, memory, rmp } = ctx;
  const firmware = resolveFirmware(spec);
  const metadata = requireSevMetadata(firmware.bytes, firmware.footer);
  if (firmware.footer.sevEsResetEip === undefined) {
    throw new CiphervisorError(
      "SEV_ES_RESET_BLOCK_MISSING",
      `firmware ${firmware.name} has no SEV-ES AP reset block in its OVMF footer table: SEV-SNP starts its APs there`,
    );
  }
  const firmwareGpa = snpFirmwareGpa(firmware.bytes);
  const secrets = onePage(
    metadata.sections.find((s) => s.name === "SNP_SECRETS"),
    "SNP_SECRETS",
  );
  const hashesSection = metadata.sections.find((s) => s.name === "SNP_KERNEL_HASHES");
  let hashesPage: Uint8Array | undefined;
  if (spec.directBoot) {
    const area = firmware.footer.kernelHashesArea;
    const offset = area ? area.base % PAGE_SIZE : 0;
    const table = buildKernelHashesTable(spec.directBoot);
    if (!hashesSection || !area || area.size < table.length || offset + table.length > PAGE_SIZE) {
      throw new CiphervisorError(
        "KERNEL_HASHES_UNSUPPORTED",
        `firmware ${firmware.name} has no SNP_KERNEL_HASHES section with a kernel-hashes area: it cannot measure a direct-boot kernel under SEV-SNP`,
      );
    }
    onePage(hashesSection, "SNP_KERNEL_HASHES");
    hashesPage = new Uint8Array(PAGE_SIZE);
    hashesPage.set(table, offset);
  }
  const cpu = guestCpuOf(ctx.generation);
  const vmsas = resetVmsaPages({
    vcpus: spec.vcpus,
    apResetEip: requireSevEsResetEip(firmware.footer),
    profile: "qemu",
    vcpuSignature: cpu.signature,
    sevFeatures: SNP_GUEST_FEATURES,
  });
  const inputs: LaunchInputs = {
    security: "sev-snp",
    vmmProfile: "qemu",
    guestFeatures: Number(SNP_GUEST_FEATURES),
    vcpus: spec.vcpus,
    cpu,
    images: measuredImages(firmware, spec.directBoot),
  };

  const gctxPa = ctx.frames.alloc();
  memory.write(gctxPa, new Uint8Array(PAGE_SIZE));
  // The context page is a firmware page (ASID 0, Immutable) before SNP_GCTX_CREATE, as KVM's
  // snp_alloc_firmware_page makes it; the host gets it back only through SNP_PAGE_RECLAIM (snp-reclaim.ts).
  if (rmp.rmpupdate(gctxPa, { assigned: true, asid: 0, immutable: true }) !== RmpReturn.SUCCESS) {
    ctx.frames.free(gctxPa);
    throw new CiphervisorError(
      "INTERNAL",
      `RMPUPDATE of the guest context page 0x${gctxPa.toString(16)} failed`,
    );
  }
  const assigned: number[] = [];
  const vmsaPas: number[] = [];
  const digest = new SnpLaunchDigest();
  /** RMPUPDATE (the page to the guest at `gpa`), then SNP_LAUNCH_UPDATE of `type`. */
  const update = (hpa: number, gpa: number, type: SnpLaunchPageTypeName, data: Uint8Array) => {
    memory.write(hpa, data);
    const rc = rmp.rmpupdate(hpa, { assigned: true, asid, gpa });
    if (rc !== RmpReturn.SUCCESS) {
      throw new CiphervisorError(
        "INTERNAL",
        `RMPUPDATE of the page at 0x${hpa.toString(16)} (GPA 0x${gpa.toString(16)}) failed with code ${rc}`,
      );
    }
    assigned.push(hpa);
    snp.launchUpdate(gctxPa, { pa: hpa, type });
  };
  let created = false;
  try {
    snp.gctxCreate(gctxPa);
    created = true;
    snp.launchStart(gctxPa, { policy: snpPolicy(spec) });
    snp.activate(gctxPa, asid);
    for (let o = 0; o < firmware.bytes.length; o += PAGE_SIZE) {
      const page = firmware.bytes.subarray(o, o + PAGE_SIZE);
      update(mapGuestPage(ctx, firmwareGpa + o), firmwareGpa + o, "NORMAL", page);
      digest.normalPages(firmwareGpa + o, page);
    }
    const zero = new Uint8Array(PAGE_SIZE);
    for (const s of metadata.sections) {
      for (let o = 0; o < s.size; o += PAGE_SIZE) {
        const gpa = s.gpa + o;
        const hpa = mapGuestPage(ctx, gpa);
        switch (s.name) {
          case "SNP_SEC_MEM":
          case "SVSM_CAA":
            update(hpa, gpa, "ZERO", zero);
            digest.zeroPages(gpa, PAGE_SIZE);
            break;
          case "SNP_SECRETS":
            update(hpa, gpa, "SECRETS", zero);
            digest.secretsPage(gpa);
            break;
          case "CPUID":
            update(hpa, gpa, "CPUID", cpuidPage(ctx.cpuid));
            digest.cpuidPage(gpa);
            break;
          case "SNP_KERNEL_HASHES":
            if (hashesPage) {
              update(hpa, gpa, "NORMAL", hashesPage);
              digest.normalPages(gpa, hashesPage);
            } else {
              update(hpa, gpa, "ZERO", zero);
              digest.zeroPages(gpa, PAGE_SIZE);
            }
            break;
        }
      }
    }
    for (const page of vmsas) {
      const pa = ctx.frames.alloc();
      vmsaPas.push(pa);
      update(pa, SNP_VMSA_GPA, "VMSA", page);
      digest.vmsaPage(page);
    }
    finish(snp, gctxPa, spec);
    return {
      gctxPa,
      vmsaPas,
      launchDigest: toHex(digest.digest()),
      firmware,
      inputs,
      secretsGpa: secrets.gpa,
    };
  } catch (e) {
    if (created) snp.decommission(gctxPa);
    // Every page back to the hypervisor; the guest's mapped pages are the caller's to free, the rest are freed here.
    const { returned } = returnSnpPages(snp, rmp, [gctxPa, ...assigned]);
    for (const pa of returned) {
      if (pa !== gctxPa && !vmsaPas.includes(pa)) continue;
      memory.write(pa, new Uint8Array(PAGE_SIZE));
      ctx.frames.free(pa);
    }
    throw e;
  }
}

/** What each SNP_LAUNCH_FINISH refusal means for the launch's ID block (SNP ABI 56860 section 8.18). */
const FINISH_REFUSALS: Readonly<Partial<Record<number, string>>> = {
  [SevStatus.BAD_SIGNATURE]:
    "the ID block's signature does not verify under the ID key in id-auth, or the ID key's under the author key",
  [SevStatus.BAD_MEASUREMENT]: "the ID block's launch digest is not this launch's measurement",
  [SevStatus.POLICY_FAILURE]: "the ID block's policy is not the guest's policy",
  [SevStatus.INVALID_PARAM]: "the ID block or id-auth is malformed (version, algorithm or key fields)",
};

function finish(snp: SnpClient, gctxPa: number, spec: LaunchSpec): void {
  const o = spec.snp ?? {};
  const status = snp.launchFinishStatus(gctxPa, {
    ...(o.idBlock ? { idBlock: o.idBlock } : {}),
    ...(o.idAuth ? { idAuth: o.idAuth } : {}),
    ...(o.authorKeyEnabled ? { authorKeyEn: true } : {}),
    ...(o.hostData ? { hostData: o.hostData } : {}),
  });
  if (status === SevStatus.SUCCESS) return;
  const why = FINISH_REFUSALS[status];
  throw new SevFirmwareError(
    SnpCmd.SNP_LAUNCH_FINISH,
    status,
    `SNP_LAUNCH_FINISH refused VM '${spec.name}' (${statusName(status)})${why && o.idBlock ? `: ${why}` : ""}`,
  );
}
