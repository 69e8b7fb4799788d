/**
 * SEV-SNP platform commands: SNP_INIT, SNP_INIT_EX, SNP_SHUTDOWN, SNP_SHUTDOWN_EX, SNP_PLATFORM_STATUS, SNP_DF_FLUSH
 * (SNP ABI 56860, sections 8.4–8.9 of its platform-command chapter; buffer layouts in `../commands.ts`).
 */
import { ByteWriter } from "../../../lib/bytes.ts";
import type { CommandBuffer } from "../../command-buffer.ts";
import { rangeOk } from "../../handlers/common.ts";
import { SevStatus, type SevStatusCode } from "../../status.ts";
import type { SnpFirmwareState } from "../firmware-state.ts";
import { SnpPlatformState } from "../state-tables.ts";
import { deactivateSnpGuest } from "./guest-lifecycle.ts";

/** The SNP_PLATFORM_STATUS structure the firmware writes at STATUS_PADDR. */
export const SNP_PLATFORM_STATUS_SIZE = 0x20;

/**
 * SNP must be initialised before SEV: SNP_INIT / SNP_INIT_EX while the SEV platform is INIT or WORKING is
 * INVALID_PLATFORM_STATE (Linux's ccp driver issues SNP_INIT before INIT for that reason).
 */
function sevMustBeUninit(snp: SnpFirmwareState): SevStatusCode {
  return snp.sev.state === "UNINIT" ? SevStatus.SUCCESS : SevStatus.INVALID_PLATFORM_STATE;
}

/** SNP_INIT: initialises the RMP (done by the RMP piece; recorded here) and moves the platform to INIT. */
export function snpInit(snp: SnpFirmwareState): SevStatusCode {
  const s = sevMustBeUninit(snp);
  if (s !== SevStatus.SUCCESS) return s;
  snp.state = "INIT";
  snp.rmpInitialized = true;
  snp.raplDisabled = false;
  snp.ciphertextHiding = false;
  snp.maxSnpAsid = 0;
  return SevStatus.SUCCESS;
}

/**
 * The MAX_SNP_ASID of an SNP_INIT_EX that sets CIPHERTEXT_HIDING_EN: SNP guests then take ASIDs 1..MAX_SNP_ASID, a
 * part of the SEV-ES range 1..min_sev_asid − 1, so it must be in 1..min_sev_asid − 1. Linux's ccp driver refuses to
 * send any other value (it checks MAX_SNP_ASID against CPUID 0x8000001F EDX); the emulated firmware answers it with
 * INVALID_PARAM [unconfirmed for AMD's firmware]. Undefined when the value is out of range.
 */
function maxSnpAsidOf(snp: SnpFirmwareState, buf: CommandBuffer): number | undefined {
  const max = buf.r.u16(0x10);
  return max >= 1 && max < snp.sev.asids.minSevAsid ? max : undefined;
}

/**
 * SNP_INIT_EX: as SNP_INIT, with options. INIT_RMP clear asks to keep an RMP a previous init left (without one:
 * RMP_INIT_REQUIRED); LIST_PADDR_EN names a range list of pages to hand the firmware (range-checked only: the
 * pages' RMP transition belongs to the RMP); RAPL_DIS disables RAPL (a policy may require it). CIPHERTEXT_HIDING_EN
 * turns on ciphertext hiding for DRAM with SNP ASIDs 1..MAX_SNP_ASID (`maxSnpAsidOf`), on a part whose model has
 * it (`CpuModel.ciphertextHiding`: Turin); on Milan and Genoa it is INVALID_PARAM, as is a bad MAX_SNP_ASID.
 * MAX_SNP_ASID is ignored without the flag (Linux leaves it 0). Reserved bits set → INVALID_PARAM.
 */
export function snpInitEx(snp: SnpFirmwareState, buf: CommandBuffer): SevStatusCode {
  const s = sevMustBeUninit(snp);
  if (s !== SevStatus.SUCCESS) return s;
  const flags = buf.r.u32(0);
  if (flags & ~0xf || buf.r.u32(4) !== 0) return SevStatus.INVALID_PARAM;
  if (buf.r.slice(0x12, 0x2e).some((b) => b !== 0)) return SevStatus.INVALID_PARAM;
  const initRmp = (flags & 1) !== 0;
  const listEn = (flags & 2) !== 0;
  const raplDis = (flags & 4) !== 0;
  const ciphertextHiding = (flags & 8) !== 0;
  let maxSnpAsid = 0;
  if (ciphertextHiding) {
    if (!snp.sev.model.ciphertextHiding) return SevStatus.INVALID_PARAM;
    const max = maxSnpAsidOf(snp, buf);
    if (max === undefined) return SevStatus.INVALID_PARAM;
    maxSnpAsid = max;
  }
  if (listEn) {
    const list = buf.addr(8);
    if (list === undefined || list % 4096 !== 0 || !rangeOk(snp.sev, list, 8))
      return SevStatus.INVALID_ADDRESS;
  }
  if (!initRmp && !snp.rmpInitialized) return SevStatus.RMP_INIT_REQUIRED;
  snp.state = "INIT";
  snp.rmpInitialized = true;
  snp.raplDisabled = raplDis;
  snp.ciphertextHiding = ciphertextHiding;
  snp.maxSnpAsid = maxSnpAsid;
  return SevStatus.SUCCESS;
}

/**
 * SNP_SHUTDOWN: every SNP guest context is destroyed (its ASID deactivated: dirty until WBINVD and DF_FLUSH) and the
 * platform returns to UNINIT; a no-op in UNINIT. The SEV platform must be shut down first (INVALID_PLATFORM_STATE),
 * the order Linux's ccp driver follows.
 */
export function snpShutdown(snp: SnpFirmwareState): SevStatusCode {
  if (snp.state === "UNINIT") return SevStatus.SUCCESS;
  if (snp.sev.state !== "UNINIT") return SevStatus.INVALID_PLATFORM_STATE;
  for (const g of snp.guests.values()) deactivateSnpGuest(snp, g);
  snp.guests.clear();
  snp.state = "UNINIT";
  return SevStatus.SUCCESS;
}

/**
 * SNP_SHUTDOWN_EX {LENGTH u32 = 8, flags u32: bit 0 IOMMU_SNP_SHUTDOWN, bit 1 X86_SNP_SHUTDOWN}: SNP_SHUTDOWN with
 * options; no IOMMU or per-core SNP enable is emulated, so the flags are accepted and have no further effect.
 */
export function snpShutdownEx(snp: SnpFirmwareState, buf: CommandBuffer): SevStatusCode {
  if (buf.r.u32(0) !== 8) return SevStatus.INVALID_LENGTH;
  if (buf.r.u32(4) & ~3) return SevStatus.INVALID_PARAM;
  return snpShutdown(snp);
}

/**
 * SNP_PLATFORM_STATUS {STATUS_PADDR}: writes the 0x20-byte status structure (Linux's
 * `struct sev_user_data_snp_status`): API_MAJOR @0, API_MINOR @1, STATE @2, bit 0 IS_RMP_INITIALIZED @3, BUILD_ID
 * u32 @4, flags u32 @8 (bit 0 MASK_CHIP_ID, 1 MASK_CHIP_KEY, 2 VLEK_EN, 3 FEATURE_INFO, 4 RAPL_DIS,
 * 5 CIPHERTEXT_HIDING_CAP, 6 CIPHERTEXT_HIDING_EN), GUEST_COUNT u32 @0xC, CURRENT_TCB u64 @0x10, REPORTED_TCB u64
 * @0x18. The committed TCB is not part of this structure; it is in every attestation report (COMMITTED_TCB).
 * CIPHERTEXT_HIDING_CAP is the model's (`CpuModel.ciphertextHiding`); _EN is what SNP_INIT_EX set.
 */
export function snpPlatformStatus(snp: SnpFirmwareState, buf: CommandBuffer): SevStatusCode {
  const pa = buf.addr(0);
  if (!rangeOk(snp.sev, pa, SNP_PLATFORM_STATUS_SIZE)) return SevStatus.INVALID_ADDRESS;
  const api = snp.sev.api;
  const out = new ByteWriter(SNP_PLATFORM_STATUS_SIZE)
    .u8(0, api.major)
    .u8(1, api.minor)
    .u8(2, SnpPlatformState[snp.state])
    .u8(3, snp.rmpInitialized ? 1 : 0)
    .u32(4, api.build)
    .u32(
      8,
      (snp.raplDisabled ? 1 << 4 : 0) |
        (snp.sev.model.ciphertextHiding ? 1 << 5 : 0) |
        (snp.ciphertextHiding ? 1 << 6 : 0),
    )
    .u32(0xc, snp.guests.size)
    .u64(0x10, snp.tcb.current)
    .u64(0x18, snp.tcb.reported);
  snp.sev.memory.write(pa, out.bytes);
  return SevStatus.SUCCESS;
}

/** SNP_DF_FLUSH: DF_FLUSH for SNP — WBINVD_REQUIRED unless every core ran WBINVD since the last deactivation. */
export function snpDfFlush(snp: SnpFirmwareState): SevStatusCode {
  const s = snp.sev.asids.checkDfFlush();
  if (s !== SevStatus.SUCCESS) return s;
  snp.sev.asids.dfFlush();
  return SevStatus.SUCCESS;
}
