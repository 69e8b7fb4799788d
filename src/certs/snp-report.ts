/**
 * The SEV-SNP attestation report: 0x4A0 bytes, signed over [0, 0x2A0) with ECDSA P-384 / SHA-384 by the VCEK
 * (docs/sev-interface.md §14). All integers little-endian, r and s included (§15 pitfall 1).
 *
 * | off   | field | off   | field |
 * |-------|-------|-------|-------|
 * | 0x000 | version u32 | 0x004 | guest_svn u32 |
 * | 0x008 | policy u64 | 0x010 | family_id[16] |
 * | 0x020 | image_id[16] | 0x030 | vmpl u32 |
 * | 0x034 | signature_algo u32 (1 = ECDSA P-384 SHA-384) | 0x038 | current_tcb u64 |
 * | 0x040 | platform_info u64 | 0x048 | u32: author_key_en, mask_chip_key, signing key (bits 4:2) |
 * | 0x050 | report_data[64] | 0x090 | measurement[48] |
 * | 0x0C0 | host_data[32] | 0x0E0 | id_key_digest[48] |
 * | 0x110 | author_key_digest[48] | 0x140 | report_id[32] |
 * | 0x160 | report_id_ma[32] | 0x180 | reported_tcb u64 |
 * | 0x188 | cpuid family, model, stepping (v3+) | 0x1A0 | chip_id[64] |
 * | 0x1E0 | committed_tcb u64 | 0x1E8 | current build, minor, major |
 * | 0x1EC | committed build, minor, major | 0x1F0 | launch_tcb u64 |
 * | 0x1F8 | launch mitigation vector (v5) | 0x200 | current mitigation vector (v5) |
 * | 0x2A0 | signature: r[72], s[72], zero to 0x4A0 | | |
 *
 * Parsing yields an *unverified* view: nothing in it is to be believed until `owner/verify-report.ts` has checked
 * the signature and the VCEK chain.
 */
import { CiphervisorError } from "../errors.ts";
import { ByteReader, bigFromLE, bigToBE, fromHex } from "../lib/bytes.ts";

export const SNP_REPORT_SIZE = 0x4a0;
export const SNP_REPORT_SIGNED_SIZE = 0x2a0;

/** Which key signed the report (flags bits 4:2, §14). */
export const SnpSigningKey = { VCEK: 0, VLEK: 1, NONE: 7 } as const;

/** A TCB version split into its security patch levels. The byte layout differs on Turin (docs/sev-interface.md §15 pitfall 22). */
export interface SnpTcb {
  raw: bigint;
  /** Turin only. */
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

export type TcbLayout = "milan" | "turin";

/** Splits a TCB u64: Milan/Genoa bytes 0 BL, 1 TEE, 6 SNP, 7 microcode; Turin 0 FMC, 1 BL, 2 TEE, 3 SNP, 7 ucode. */
export function decodeSnpTcb(raw: bigint, layout: TcbLayout): SnpTcb {
  const byte = (i: number) => Number((raw >> BigInt(8 * i)) & 0xffn);
  return layout === "turin"
    ? { raw, fmc: byte(0), bootloader: byte(1), tee: byte(2), snp: byte(3), microcode: byte(7) }
    : { raw, bootloader: byte(0), tee: byte(1), snp: byte(6), microcode: byte(7) };
}

/** The inverse of `decodeSnpTcb`: the TCB u64 of the given security patch levels (reserved bytes zero). */
export function encodeSnpTcb(tcb: Omit<SnpTcb, "raw">, layout: TcbLayout): bigint {
  const at = (v: number | undefined, i: number) => BigInt((v ?? 0) & 0xff) << BigInt(8 * i);
  return layout === "turin"
    ? at(tcb.fmc, 0) | at(tcb.bootloader, 1) | at(tcb.tee, 2) | at(tcb.snp, 3) | at(tcb.microcode, 7)
    : at(tcb.bootloader, 0) | at(tcb.tee, 1) | at(tcb.snp, 6) | at(tcb.microcode, 7);
}

export interface SnpVersion {
  major: number;
  minor: number;
  build: number;
}

export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: bigint;
  platformInfo: bigint;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  signingKey: number;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: bigint;
  /** Version 3 and later. */
  cpuid?: { family: number; model: number; stepping: number };
  chipId: Uint8Array;
  committedTcb: bigint;
  currentVersion: SnpVersion;
  committedVersion: SnpVersion;
  launchTcb: bigint;
  /** Version 5 and later. */
  launchMitigationVector?: bigint;
  currentMitigationVector?: bigint;
  /** r and s as 72-byte little-endian fields, as stored. */
  signatureR: Uint8Array;
  signatureS: Uint8Array;
  /** The 0x4A0 bytes. */
  bytes: Uint8Array;
}

/**
 * Offsets and sizes of the report's fields (SNP ABI 56860 §7.3, the ATTESTATION_REPORT structure): the one copy of
 * the layout, read by `parseSnpReport` and written by the emulated Secure Processor's signer
 * (`sev/snp/report-signer.ts`). Integers are little-endian; `flags` is the u32 at 0x48 (bit 0 author_key_en, bit 1
 * mask_chip_key, bits 4:2 signing key).
 */
export const SNP_REPORT_LAYOUT = {
  version: { offset: 0x000, size: 4 },
  guestSvn: { offset: 0x004, size: 4 },
  policy: { offset: 0x008, size: 8 },
  familyId: { offset: 0x010, size: 16 },
  imageId: { offset: 0x020, size: 16 },
  vmpl: { offset: 0x030, size: 4 },
  signatureAlgo: { offset: 0x034, size: 4 },
  currentTcb: { offset: 0x038, size: 8 },
  platformInfo: { offset: 0x040, size: 8 },
  flags: { offset: 0x048, size: 4 },
  reportData: { offset: 0x050, size: 64 },
  measurement: { offset: 0x090, size: 48 },
  hostData: { offset: 0x0c0, size: 32 },
  idKeyDigest: { offset: 0x0e0, size: 48 },
  authorKeyDigest: { offset: 0x110, size: 48 },
  reportId: { offset: 0x140, size: 32 },
  reportIdMa: { offset: 0x160, size: 32 },
  reportedTcb: { offset: 0x180, size: 8 },
  /** Version 3 and later: family, model, stepping (a u8 each). */
  cpuid: { offset: 0x188, size: 3 },
  chipId: { offset: 0x1a0, size: 64 },
  committedTcb: { offset: 0x1e0, size: 8 },
  /** build, minor, major (a u8 each). */
  currentVersion: { offset: 0x1e8, size: 3 },
  committedVersion: { offset: 0x1ec, size: 3 },
  launchTcb: { offset: 0x1f0, size: 8 },
  /** Version 5 and later. */
  launchMitigationVector: { offset: 0x1f8, size: 8 },
  currentMitigationVector: { offset: 0x200, size: 8 },
  signatureR: { offset: 0x2a0, size: 72 },
  signatureS: { offset: 0x2e8, size: 72 },
} as const satisfies Record<string, { offset: number; size: number }>;

/** signature_algo 1: ECDSA P-384 with SHA-384 (SNP ABI 56860, the SIGNATURE_ALGO table). */
export const SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1;

/**
 * Parses a report. Wrong size and versions before 2 are REPORT_INVALID; the values are not checked here.
 */
export function parseSnpReport(bytes: Uint8Array, what = "SNP report"): SnpReport {
  if (bytes.length !== SNP_REPORT_SIZE) {
    throw new CiphervisorError(
      "REPORT_INVALID",
      `${what}: an SNP attestation report is ${SNP_REPORT_SIZE} bytes, this one is ${bytes.length}`,
    );
  }
  const L = SNP_REPORT_LAYOUT;
  const r = new ByteReader(bytes, what);
  const version = r.u32(L.version.offset);
  if (version < 2)
    throw new CiphervisorError("REPORT_INVALID", `${what}: unsupported report version ${version}`);
  const flags = r.u32(L.flags.offset);
  const field = (f: { offset: number; size: number }) => r.slice(f.offset, f.size);
  const ver = (o: number): SnpVersion => ({ build: r.u8(o), minor: r.u8(o + 1), major: r.u8(o + 2) });
  const cpuid = L.cpuid.offset;
  return {
    version,
    guestSvn: r.u32(L.guestSvn.offset),
    policy: r.u64(L.policy.offset),
    familyId: field(L.familyId),
    imageId: field(L.imageId),
    vmpl: r.u32(L.vmpl.offset),
    signatureAlgo: r.u32(L.signatureAlgo.offset),
    currentTcb: r.u64(L.currentTcb.offset),
    platformInfo: r.u64(L.platformInfo.offset),
    authorKeyEn: (flags & 1) !== 0,
    maskChipKey: (flags & 2) !== 0,
    signingKey: (flags >>> 2) & 7,
    reportData: field(L.reportData),
    measurement: field(L.measurement),
    hostData: field(L.hostData),
    idKeyDigest: field(L.idKeyDigest),
    authorKeyDigest: field(L.authorKeyDigest),
    reportId: field(L.reportId),
    reportIdMa: field(L.reportIdMa),
    reportedTcb: r.u64(L.reportedTcb.offset),
    ...(version >= 3
      ? { cpuid: { family: r.u8(cpuid), model: r.u8(cpuid + 1), stepping: r.u8(cpuid + 2) } }
      : {}),
    chipId: field(L.chipId),
    committedTcb: r.u64(L.committedTcb.offset),
    currentVersion: ver(L.currentVersion.offset),
    committedVersion: ver(L.committedVersion.offset),
    launchTcb: r.u64(L.launchTcb.offset),
    ...(version >= 5
      ? {
          launchMitigationVector: r.u64(L.launchMitigationVector.offset),
          currentMitigationVector: r.u64(L.currentMitigationVector.offset),
        }
      : {}),
    signatureR: field(L.signatureR),
    signatureS: field(L.signatureS),
    bytes: bytes.slice(),
  };
}

/** The signed bytes [0, 0x2A0). */
export function snpReportSignedRegion(report: SnpReport): Uint8Array {
  return report.bytes.subarray(0, SNP_REPORT_SIGNED_SIZE);
}

/**
 * r and s as 48-byte big-endian integers for ECDSA P-384, or undefined when a 72-byte field holds more than 384
 * bits (a malformed signature, never truncated into a valid-looking one).
 */
export function snpReportSignature(report: SnpReport): { r: Uint8Array; s: Uint8Array } | undefined {
  const r = bigFromLE(report.signatureR);
  const s = bigFromLE(report.signatureS);
  if (r >> 384n !== 0n || s >> 384n !== 0n) return undefined;
  return { r: bigToBE(r, 48), s: bigToBE(s, 48) };
}

/**
 * Accepts a report as raw bytes (0x4A0) or as hex text (like virtee/sev's `report_milan.hex`; whitespace and a
 * `0x` prefix are ignored).
 */
export function decodeSnpReportInput(bytes: Uint8Array, what = "SNP report"): Uint8Array {
  if (bytes.length === SNP_REPORT_SIZE) return bytes;
  const text = new TextDecoder().decode(bytes).replace(/\s+/g, "");
  if (!/^(0x)?[0-9a-fA-F]*$/.test(text)) {
    throw new CiphervisorError(
      "REPORT_INVALID",
      `${what}: ${bytes.length} bytes is neither a ${SNP_REPORT_SIZE}-byte report nor hex text`,
    );
  }
  const raw = fromHex(text, what);
  if (raw.length !== SNP_REPORT_SIZE) {
    throw new CiphervisorError(
      "REPORT_INVALID",
      `${what}: hex text decodes to ${raw.length} bytes; an SNP attestation report is ${SNP_REPORT_SIZE}`,
    );
  }
  return raw;
}
