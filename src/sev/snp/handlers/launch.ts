/**
 * SNP_LAUNCH_START, SNP_LAUNCH_UPDATE, SNP_LAUNCH_FINISH (SNP ABI 56860, sections 8.16, 8.17 and 8.18; buffer
 * layouts in `../commands.ts`).
 */
import { sha384 } from "../../../crypto/hash.ts";
import { ctEqual } from "../../../lib/bytes.ts";
import { CPU_MODELS } from "../../../machine/cpu-models.ts";
import type { CommandBuffer } from "../../command-buffer.ts";
import { rangeOk } from "../../handlers/common.ts";
import { SevStatus, type SevStatusCode } from "../../status.ts";
import type { SnpFirmwareState, SnpGuestContext } from "../firmware-state.ts";
import { checkIdAuth, decodeIdBlock, ID_AUTH_SIZE, ID_BLOCK_SIZE, ID_BLOCK_VERSION } from "../id-block.ts";
import { SnpLaunchPageType, snpPageTypeName } from "../page-info.ts";
import { checkSnpPolicy } from "../policy.ts";
import { encodeSecretsPage } from "../secrets-page.ts";

const PAGE = 4096;
const LARGE_PAGE = 0x200000;
/** The CPUID page: COUNT u32 @0, reserved to 0x10, then at most 64 entries of 0x30 bytes. */
const CPUID_MAX_ENTRIES = 64;

/**
 * SNP_LAUNCH_START {GCTX_PADDR, POLICY, MA_GCTX_PADDR, MA_EN / IMI_EN, DESIRED_TSC_KHZ, GOSVW}: the policy is checked
 * (`checkSnpPolicy`: INVALID_PARAM for a malformed one, POLICY_FAILURE for one this platform cannot honour), then
 * the firmware generates the guest's memory key (VEK), its four VMPCKs and its REPORT_ID, and records the TCB the
 * guest is launched at. Reserved flag bits → INVALID_PARAM. Migration agents and incoming migration images are not
 * emulated: MA_EN or IMI_EN → UNSUPPORTED (after the policy check, so MA_EN against a policy without MIGRATE_MA
 * is still POLICY_FAILURE).
 */
export function snpLaunchStart(
  snp: SnpFirmwareState,
  buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const policy = buf.r.u64(8);
  const flags = buf.r.u32(0x18);
  if (flags & ~3) return SevStatus.INVALID_PARAM;
  const maEn = (flags & 1) !== 0;
  const imiEn = (flags & 2) !== 0;
  const ps = checkSnpPolicy(policy, {
    api: snp.sev.api,
    smt: snp.smt,
    sockets: snp.sockets,
    raplDisabled: snp.raplDisabled,
    ciphertextHiding: snp.ciphertextHiding,
    maEn,
  });
  if (ps !== SevStatus.SUCCESS) return ps;
  if (maEn || imiEn) return SevStatus.UNSUPPORTED;
  const rng = snp.rng;
  guest.policy = policy;
  guest.imiEn = imiEn;
  guest.gosvw = buf.r.slice(0x20, 16);
  guest.vek = rng.bytes(16);
  guest.vmpck = [0, 1, 2, 3].map(() => rng.bytes(32));
  guest.msgSeqno = [0n, 0n, 0n, 0n];
  guest.reportId = rng.bytes(32);
  guest.reportIdMa = new Uint8Array(32).fill(0xff);
  guest.launchTcb = snp.tcb.current;
  return SevStatus.SUCCESS;
}

/** The structural checks of a CPUID page the firmware can make without the host's real CPUID. */
function cpuidPageOk(page: Uint8Array): boolean {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const count = dv.getUint32(0, true);
  if (count > CPUID_MAX_ENTRIES) return false;
  if (page.subarray(4, 0x10).some((b) => b !== 0)) return false;
  for (let i = 0; i < count; i++) {
    const e = 0x10 + i * 0x30;
    if (page.subarray(e + 0x28, e + 0x30).some((b) => b !== 0)) return false;
  }
  return true;
}

/**
 * SNP_LAUNCH_UPDATE {GCTX_PADDR, PAGE_SIZE / PAGE_TYPE / IMI_PAGE, PAGE_PADDR, VMPL1–3 permissions}: takes one 4 KiB
 * (or 2 MiB, as 512 measured 4 KiB pages) page into the guest and extends the launch digest with a PAGE_INFO per
 * 4 KiB page (`../page-info.ts`). Checks, in order: the guest's key is active (INACTIVE); reserved bits and fields
 * zero, a defined page type, IMI_PAGE only in an IMI launch, and a 2 MiB page only for NORMAL, ZERO and UNMEASURED
 * (INVALID_PARAM); the page aligned to its size and in system memory (INVALID_ADDRESS); one SECRETS page per guest
 * and a well-formed CPUID page (INVALID_PARAM); then the RMP hook (`SnpRmpHook`), which supplies the page's GPA.
 * What each type does to the page, encrypted in place with the guest's key at its system physical address:
 *
 * | type | measured CONTENTS | the page becomes |
 * |---|---|---|
 * | NORMAL | SHA-384 of the page | its contents, encrypted |
 * | VMSA | SHA-384 of the page | its contents, encrypted (a VMSA; its integrity recorded for VMRUN) |
 * | ZERO | zero | zeros, encrypted |
 * | UNMEASURED | zero | its contents, encrypted |
 * | SECRETS | zero | the secrets page the firmware builds (`../secrets-page.ts`), encrypted |
 * | CPUID | zero | its contents, encrypted (the firmware does not correct entries: it has no host CPUID to compare) |
 */
export function snpLaunchUpdate(
  snp: SnpFirmwareState,
  buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  if (!guest.active) return SevStatus.INACTIVE;
  const w = buf.r.u32(8);
  const perms = buf.r.u32(0x18);
  if (w & ~0x1f || buf.r.u32(0x0c) !== 0 || (perms & 0xff) !== 0 || buf.r.u32(0x1c) !== 0) {
    return SevStatus.INVALID_PARAM;
  }
  const large = (w & 1) !== 0;
  const typeName = snpPageTypeName((w >> 1) & 7);
  const imi = (w & 0x10) !== 0;
  if (!typeName || (imi && !guest.imiEn)) return SevStatus.INVALID_PARAM;
  const type = SnpLaunchPageType[typeName];
  if (large && typeName !== "NORMAL" && typeName !== "ZERO" && typeName !== "UNMEASURED") {
    return SevStatus.INVALID_PARAM;
  }
  const size = large ? LARGE_PAGE : PAGE;
  const pa = buf.addr(0x10);
  if (pa === undefined || pa % size !== 0 || !rangeOk(snp.sev, pa, size)) return SevStatus.INVALID_ADDRESS;
  const mem = snp.sev.memory;
  const plain = mem.read(pa, size);
  if (typeName === "SECRETS" && guest.secretsPages > 0) return SevStatus.INVALID_PARAM;
  if (typeName === "CPUID" && !cpuidPageOk(plain)) return SevStatus.INVALID_PARAM;

  let gpa = BigInt(pa);
  if (snp.rmp) {
    const r = snp.rmp.launchUpdate({ pa, size, asid: guest.asid, pageType: typeName });
    if ("status" in r) return r.status;
    gpa = r.gpa;
  }
  const vmplPerms = [(perms >> 8) & 0xff, (perms >> 16) & 0xff, (perms >>> 24) & 0xff] as const;
  const keys = snp.sev.keySlots;
  for (let off = 0; off < size; off += PAGE) {
    const page = plain.subarray(off, off + PAGE);
    const measured = typeName === "NORMAL" || typeName === "VMSA";
    guest.ld.extend({
      pageType: type,
      contents: measured ? sha384(page) : undefined,
      gpa: gpa + BigInt(off),
      imi,
      vmplPerms,
    });
    let stored: Uint8Array = page;
    if (typeName === "ZERO") stored = new Uint8Array(PAGE);
    if (typeName === "SECRETS") stored = secretsPage(snp, guest);
    const cipher = keys.encrypt(guest.asid, pa + off, stored);
    mem.write(pa + off, cipher);
    if (typeName === "VMSA") {
      snp.sev.vmsaIntegrity?.record(guest.asid, pa + off, cipher);
      guest.vmsaCount++;
    }
  }
  if (typeName === "SECRETS") guest.secretsPages++;
  return SevStatus.SUCCESS;
}

function secretsPage(snp: SnpFirmwareState, guest: SnpGuestContext): Uint8Array {
  const newer = snp.sev.api.major > 1 || (snp.sev.api.major === 1 && snp.sev.api.minor >= 55);
  return encodeSecretsPage({
    version: newer ? 3 : 2,
    imien: guest.imiEn,
    fms: CPU_MODELS[snp.generation].cpuidSignature,
    gosvw: guest.gosvw,
    vmpck: guest.vmpck,
  });
}

/**
 * SNP_LAUNCH_FINISH {GCTX_PADDR, ID_BLOCK_PADDR, ID_AUTH_PADDR, ID_BLOCK_EN / AUTH_KEY_EN / VCEK_DISABLED,
 * HOST_DATA}: freezes the launch digest as the guest's MEASUREMENT and stores HOST_DATA. With an ID block
 * (`../id-block.ts`), in order: reserved flags, AUTH_KEY_EN without ID_BLOCK_EN, an ID block VERSION other than 1,
 * algorithm or key fields not ECDSA P-384 (INVALID_PARAM); both structures in memory (INVALID_ADDRESS); the ID
 * block's signature under the ID key, then the ID key's under the author key (BAD_SIGNATURE); the ID block's LD
 * against the launch digest (BAD_MEASUREMENT); its POLICY against the guest's (POLICY_FAILURE). The ID and author
 * key digests, family and image ids and guest SVN then go into every report.
 */
export function snpLaunchFinish(
  snp: SnpFirmwareState,
  buf: CommandBuffer,
  g: SnpGuestContext | undefined,
): SevStatusCode {
  const guest = g!;
  const flags = buf.r.u64(0x18);
  if (flags & ~7n) return SevStatus.INVALID_PARAM;
  const idBlockEn = (flags & 1n) !== 0n;
  const authorKeyEn = (flags & 2n) !== 0n;
  const vcekDisabled = (flags & 4n) !== 0n;
  if (authorKeyEn && !idBlockEn) return SevStatus.INVALID_PARAM;
  const ld = guest.ld.value;
  let id:
    | {
        familyId: Uint8Array;
        imageId: Uint8Array;
        guestSvn: number;
        idKeyDigest: Uint8Array;
        authorKeyDigest?: Uint8Array;
      }
    | undefined;
  if (idBlockEn) {
    const blockPa = buf.addr(0x08);
    const authPa = buf.addr(0x10);
    if (!rangeOk(snp.sev, blockPa, ID_BLOCK_SIZE) || !rangeOk(snp.sev, authPa, ID_AUTH_SIZE)) {
      return SevStatus.INVALID_ADDRESS;
    }
    const blockBytes = snp.sev.memory.read(blockPa, ID_BLOCK_SIZE);
    const block = decodeIdBlock(blockBytes);
    if (block.version !== ID_BLOCK_VERSION) return SevStatus.INVALID_PARAM;
    const auth = checkIdAuth(blockBytes, snp.sev.memory.read(authPa, ID_AUTH_SIZE), authorKeyEn);
    if (!auth.ok) {
      return auth.failure === "ALGO" || auth.failure === "KEY"
        ? SevStatus.INVALID_PARAM
        : SevStatus.BAD_SIGNATURE;
    }
    if (!ctEqual(block.ld, ld)) return SevStatus.BAD_MEASUREMENT;
    if (block.policy !== guest.policy) return SevStatus.POLICY_FAILURE;
    id = {
      familyId: block.familyId,
      imageId: block.imageId,
      guestSvn: block.guestSvn,
      idKeyDigest: auth.idKeyDigest,
      authorKeyDigest: auth.authorKeyDigest,
    };
  }
  guest.measurement = ld;
  guest.hostData = buf.r.slice(0x20, 32);
  guest.vcekDisabled = vcekDisabled;
  guest.authorKeyEn = authorKeyEn;
  if (id) {
    guest.familyId = id.familyId;
    guest.imageId = id.imageId;
    guest.guestSvn = id.guestSvn;
    guest.idKeyDigest = id.idKeyDigest;
    if (id.authorKeyDigest) guest.authorKeyDigest = id.authorKeyDigest;
  }
  return SevStatus.SUCCESS;
}
