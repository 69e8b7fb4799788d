/**
 * The SEV-SNP guest policy (a u64; SNP ABI 56860, the guest policy structure; docs/sev-interface.md §14 "Policy")
 * and the checks SNP_LAUNCH_START applies to it against this platform.
 *
 * | bits | field |
 * |---|---|
 * | 7:0 | ABI_MINOR: the lowest firmware ABI minor the guest accepts |
 * | 15:8 | ABI_MAJOR |
 * | 16 | SMT allowed |
 * | 17 | reserved, must be 1 |
 * | 18 | MIGRATE_MA: association with a migration agent allowed |
 * | 19 | DEBUG allowed |
 * | 20 | SINGLE_SOCKET |
 * | 21 | CXL_ALLOW |
 * | 22 | MEM_AES_256_XTS |
 * | 23 | RAPL_DIS |
 * | 24 | CIPHERTEXT_HIDING |
 * | 25 | PAGE_SWAP_DISABLE |
 * | 63:26 | reserved, zero |
 */
import { SevStatus, type SevStatusCode } from "../status.ts";

export const SnpPolicyBit = {
  SMT: 1n << 16n,
  RESERVED_MBO: 1n << 17n,
  MIGRATE_MA: 1n << 18n,
  DEBUG: 1n << 19n,
  SINGLE_SOCKET: 1n << 20n,
  CXL_ALLOW: 1n << 21n,
  MEM_AES_256_XTS: 1n << 22n,
  RAPL_DIS: 1n << 23n,
  CIPHERTEXT_HIDING: 1n << 24n,
  PAGE_SWAP_DISABLE: 1n << 25n,
} as const;

/** The usual policy: ABI 0.0, SMT allowed, the must-be-one bit (docs/sev-interface.md §14). */
export const DEFAULT_SNP_POLICY = 0x30000n;

const DEFINED_BITS = (1n << 26n) - 1n;

export interface DecodedSnpPolicy {
  abiMinor: number;
  abiMajor: number;
  smt: boolean;
  reservedMbo: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  cxlAllow: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  pageSwapDisable: boolean;
  /** Bits 63:26, which must be zero. */
  reserved: bigint;
}

export function decodeSnpPolicy(policy: bigint): DecodedSnpPolicy {
  const bit = (b: bigint) => (policy & b) !== 0n;
  return {
    abiMinor: Number(policy & 0xffn),
    abiMajor: Number((policy >> 8n) & 0xffn),
    smt: bit(SnpPolicyBit.SMT),
    reservedMbo: bit(SnpPolicyBit.RESERVED_MBO),
    migrateMa: bit(SnpPolicyBit.MIGRATE_MA),
    debug: bit(SnpPolicyBit.DEBUG),
    singleSocket: bit(SnpPolicyBit.SINGLE_SOCKET),
    cxlAllow: bit(SnpPolicyBit.CXL_ALLOW),
    memAes256Xts: bit(SnpPolicyBit.MEM_AES_256_XTS),
    raplDis: bit(SnpPolicyBit.RAPL_DIS),
    ciphertextHiding: bit(SnpPolicyBit.CIPHERTEXT_HIDING),
    pageSwapDisable: bit(SnpPolicyBit.PAGE_SWAP_DISABLE),
    reserved: policy & ~DEFINED_BITS & ((1n << 64n) - 1n),
  };
}

/** What the platform offers that a policy is checked against. */
export interface SnpPolicyPlatform {
  api: { major: number; minor: number };
  /** SMT enabled on the host. */
  smt: boolean;
  sockets: number;
  /** SNP_INIT_EX RAPL_DIS. */
  raplDisabled: boolean;
  /** SNP_INIT_EX CIPHERTEXT_HIDING_EN. */
  ciphertextHiding: boolean;
  /** SNP_LAUNCH_START MA_EN: the launch associates the guest with a migration agent. */
  maEn: boolean;
}

/**
 * SNP_LAUNCH_START's policy checks, in this order (SNP ABI 56860, section SNP_LAUNCH_START, its actions):
 *
 * 1. a malformed policy — bit 17 clear, or a reserved bit 63:26 set — is INVALID_PARAM (the structure is invalid
 *    before anything is judged; Linux's KVM refuses the same values before it calls the firmware);
 * 2. ABI_MAJOR.ABI_MINOR above this firmware's ABI → POLICY_FAILURE;
 * 3. SMT clear while the host runs SMT → POLICY_FAILURE;
 * 4. SINGLE_SOCKET set on a host with more than one socket → POLICY_FAILURE;
 * 5. MA_EN in the command while MIGRATE_MA is clear → POLICY_FAILURE;
 * 6. RAPL_DIS or CIPHERTEXT_HIDING required but not enabled by SNP_INIT_EX → POLICY_FAILURE;
 * 7. CXL_ALLOW, MEM_AES_256_XTS, PAGE_SWAP_DISABLE: features the emulated parts do not offer → POLICY_FAILURE.
 *
 * DEBUG is allowed at launch; it only decides whether SNP_DBG_DECRYPT / _ENCRYPT would work, and the report
 * carries it for the owner to judge.
 */
export function checkSnpPolicy(policy: bigint, platform: SnpPolicyPlatform): SevStatusCode {
  if (policy < 0n || policy >= 1n << 64n) return SevStatus.INVALID_PARAM;
  const p = decodeSnpPolicy(policy);
  if (!p.reservedMbo || p.reserved !== 0n) return SevStatus.INVALID_PARAM;
  const { major, minor } = platform.api;
  if (p.abiMajor > major || (p.abiMajor === major && p.abiMinor > minor)) return SevStatus.POLICY_FAILURE;
  if (!p.smt && platform.smt) return SevStatus.POLICY_FAILURE;
  if (p.singleSocket && platform.sockets > 1) return SevStatus.POLICY_FAILURE;
  if (platform.maEn && !p.migrateMa) return SevStatus.POLICY_FAILURE;
  if (p.raplDis && !platform.raplDisabled) return SevStatus.POLICY_FAILURE;
  if (p.ciphertextHiding && !platform.ciphertextHiding) return SevStatus.POLICY_FAILURE;
  if (p.cxlAllow || p.memAes256Xts || p.pageSwapDisable) return SevStatus.POLICY_FAILURE;
  return SevStatus.SUCCESS;
}
