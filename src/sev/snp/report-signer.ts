/**
 * The emulated Secure Processor's SEV-SNP attestation report: built in the ATTESTATION_REPORT layout (SNP ABI 56860
 * section 7.3; docs/sev-interface.md §14, the 0x4A0-byte table) and signed with the chip's VCEK, as the firmware answers a
 * guest's MSG_REPORT_REQ (SNP ABI 56860, the guest-message chapter). The layout is `SNP_REPORT_LAYOUT` of
 * `certs/snp-report.ts`, the one the verifier parses with; nothing here restates an offset.
 *
 * - version 2 or 3 (3 adds the CPUID family/model/stepping bytes at 0x188);
 * - signature_algo 1 (ECDSA P-384 with SHA-384); flags signing key 0 (VCEK);
 * - the signature covers [0, 0x2A0): SHA-384, ECDSA P-384; r and s little-endian in 72-byte fields, zeros to 0x4A0.
 *
 * Keys never leave the emulated Secure Processor: `signSnpReport` takes the VCEK scalar from its caller inside
 * `sev/`, and `emulatedChipReport` derives the chip's VCEK for the report's reported_tcb itself, so only the signed
 * report leaves.
 *
 * @example
 * ```ts
 * const report = emulatedChipReport("milan", chipId, { measurement, reportData, policy: 0x30000n, ... });
 * verifySnpReport({ report, vcek: kds.vcek("Milan", hex, spl), trust: "emulated" });
 * ```
 */
import {
  SNP_REPORT_LAYOUT,
  SNP_REPORT_SIGNED_SIZE,
  SNP_REPORT_SIZE,
  SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384,
  SnpSigningKey,
  type SnpVersion,
} from "../../certs/snp-report.ts";
import { ecdsaSign } from "../../crypto/ec.ts";
import { CiphervisorError } from "../../errors.ts";
import { ByteWriter, bigFromBE, bigToLE } from "../../lib/bytes.ts";
import { CPU_MODELS } from "../../machine/cpu-models.ts";
import { deriveVcek } from "../manufacturer/emulated-amd.ts";
import { type EmulatedSnpGeneration, snpReportChipId } from "../manufacturer/emulated-snp.ts";

/** The fields a report carries; byte strings shorter than their field are refused, never padded. */
export interface SnpReportFields {
  /** 2 or 3. */
  version: 2 | 3;
  guestSvn?: number;
  /** The guest policy (u64, docs/sev-interface.md §14: bit 17 reserved and 1, bit 19 DEBUG). */
  policy: bigint;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  vmpl?: number;
  currentTcb: bigint;
  platformInfo?: bigint;
  authorKeyEn?: boolean;
  /** MASK_CHIP_KEY: chip_id is reported as zeros. */
  maskChipKey?: boolean;
  reportData?: Uint8Array;
  /** The launch digest (48 bytes). */
  measurement: Uint8Array;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
  authorKeyDigest?: Uint8Array;
  reportId?: Uint8Array;
  reportIdMa?: Uint8Array;
  /** The TCB the VCEK is derived for. */
  reportedTcb: bigint;
  /** Version 3: CPUID family, model, stepping. */
  cpuid?: { family: number; model: number; stepping: number };
  chipId: Uint8Array;
  committedTcb: bigint;
  currentVersion?: SnpVersion;
  committedVersion?: SnpVersion;
  launchTcb: bigint;
}

const L = SNP_REPORT_LAYOUT;

function put(w: ByteWriter, name: keyof typeof L, value: Uint8Array | undefined): void {
  if (value === undefined) return;
  const f = L[name];
  if (value.length !== f.size) {
    throw new CiphervisorError("INVALID_INPUT", `SNP report ${name} is ${f.size} bytes, got ${value.length}`);
  }
  w.set(f.offset, value);
}

function putVersion(w: ByteWriter, offset: number, v: SnpVersion | undefined): void {
  if (!v) return;
  w.u8(offset, v.build)
    .u8(offset + 1, v.minor)
    .u8(offset + 2, v.major);
}

/** The unsigned report: every field in place, the signature area zero. */
export function encodeSnpReportBody(f: SnpReportFields): Uint8Array {
  if (f.version !== 2 && f.version !== 3) {
    throw new CiphervisorError("INVALID_INPUT", `SNP report version ${String(f.version)} is not 2 or 3`);
  }
  const w = new ByteWriter(SNP_REPORT_SIZE);
  const flags = (f.authorKeyEn ? 1 : 0) | (f.maskChipKey ? 2 : 0) | (SnpSigningKey.VCEK << 2);
  w.u32(L.version.offset, f.version)
    .u32(L.guestSvn.offset, f.guestSvn ?? 0)
    .u64(L.policy.offset, f.policy)
    .u32(L.vmpl.offset, f.vmpl ?? 0)
    .u32(L.signatureAlgo.offset, SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384)
    .u64(L.currentTcb.offset, f.currentTcb)
    .u64(L.platformInfo.offset, f.platformInfo ?? 0n)
    .u32(L.flags.offset, flags)
    .u64(L.reportedTcb.offset, f.reportedTcb)
    .u64(L.committedTcb.offset, f.committedTcb)
    .u64(L.launchTcb.offset, f.launchTcb);
  put(w, "familyId", f.familyId);
  put(w, "imageId", f.imageId);
  put(w, "reportData", f.reportData);
  put(w, "measurement", f.measurement);
  put(w, "hostData", f.hostData);
  put(w, "idKeyDigest", f.idKeyDigest);
  put(w, "authorKeyDigest", f.authorKeyDigest);
  put(w, "reportId", f.reportId);
  put(w, "reportIdMa", f.reportIdMa);
  if (!f.maskChipKey) put(w, "chipId", f.chipId);
  if (f.version >= 3 && f.cpuid) {
    const o = L.cpuid.offset;
    w.u8(o, f.cpuid.family)
      .u8(o + 1, f.cpuid.model)
      .u8(o + 2, f.cpuid.stepping);
  }
  putVersion(w, L.currentVersion.offset, f.currentVersion);
  putVersion(w, L.committedVersion.offset, f.committedVersion);
  return w.bytes;
}

/**
 * The signed report: `encodeSnpReportBody` with ECDSA P-384 / SHA-384 over [0, 0x2A0) by the VCEK scalar `vcekD`
 * (48 bytes, big-endian), r and s stored little-endian in their 72-byte fields. Pure and deterministic.
 */
export function signSnpReport(f: SnpReportFields, vcekD: Uint8Array): Uint8Array {
  const bytes = encodeSnpReportBody(f);
  const sig = ecdsaSign(vcekD, "sha384", bytes.subarray(0, SNP_REPORT_SIGNED_SIZE));
  bytes.set(bigToLE(bigFromBE(sig.r), L.signatureR.size), L.signatureR.offset);
  bytes.set(bigToLE(bigFromBE(sig.s), L.signatureS.size), L.signatureS.offset);
  return bytes;
}

/** CPUID(1).EAX of the emulated part as the v3 report's family / model / stepping bytes. */
export function reportCpuid(generation: EmulatedSnpGeneration): {
  family: number;
  model: number;
  stepping: number;
} {
  const eax = CPU_MODELS[generation].cpuidSignature;
  return {
    family: ((eax >> 8) & 0xf) + ((eax >> 20) & 0xff),
    model: (((eax >> 16) & 0xf) << 4) | ((eax >> 4) & 0xf),
    stepping: eax & 0xf,
  };
}

/**
 * What the emulated chip `chipId` of `generation` answers to MSG_REPORT_REQ: the report signed with its VCEK for
 * `fields.reportedTcb`, derived here and dropped, so the key never leaves this module. CHIP_ID is
 * `snpReportChipId` of the chip id (on Turin its 8-byte hwID, then zeros).
 */
export function emulatedChipReport(
  generation: EmulatedSnpGeneration,
  chipId: Uint8Array,
  fields: Omit<SnpReportFields, "chipId">,
): Uint8Array {
  const reportChipId = snpReportChipId(generation, chipId);
  const vcek = deriveVcek(generation, reportChipId, fields.reportedTcb);
  return signSnpReport({ ...fields, chipId: reportChipId }, vcek.d);
}
