/**
 * The SEV guest policy, a u32 given to LAUNCH_START and reported by GUEST_STATUS (docs/sev-interface.md §6).
 *
 * | bits  | name |
 * |-------|------|
 * | 0     | NODBG — DBG_DECRYPT/DBG_ENCRYPT refused |
 * | 1     | NOKS — no key sharing |
 * | 2     | ES — SEV-ES required |
 * | 3     | NOSEND — SEND_START refused |
 * | 4     | DOMAIN — send only to a platform with the same OCA |
 * | 5     | SEV — send only to a platform whose chain verifies to AMD |
 * | 6–15  | reserved, must be 0 |
 * | 23:16 | API_MAJOR minimum |
 * | 31:24 | API_MINOR minimum |
 *
 * The minimum version is decoded with whole bytes (not virtee's nibbles, docs/sev-interface.md §15 pitfall 17).
 */
export const PolicyBit = {
  NODBG: 1 << 0,
  NOKS: 1 << 1,
  ES: 1 << 2,
  NOSEND: 1 << 3,
  DOMAIN: 1 << 4,
  SEV: 1 << 5,
} as const;
export type PolicyFlag = keyof typeof PolicyBit;

export const POLICY_RESERVED_MASK = 0xffc0;

export interface DecodedPolicy {
  nodbg: boolean;
  noks: boolean;
  es: boolean;
  nosend: boolean;
  domain: boolean;
  sev: boolean;
  reserved: number;
  apiMajor: number;
  apiMinor: number;
}

export function decodePolicy(policy: number): DecodedPolicy {
  return {
    nodbg: (policy & PolicyBit.NODBG) !== 0,
    noks: (policy & PolicyBit.NOKS) !== 0,
    es: (policy & PolicyBit.ES) !== 0,
    nosend: (policy & PolicyBit.NOSEND) !== 0,
    domain: (policy & PolicyBit.DOMAIN) !== 0,
    sev: (policy & PolicyBit.SEV) !== 0,
    reserved: policy & POLICY_RESERVED_MASK,
    apiMajor: (policy >>> 16) & 0xff,
    apiMinor: (policy >>> 24) & 0xff,
  };
}

/** True when firmware API `major.minor` satisfies the policy's minimum. */
export function apiSatisfies(policy: number, major: number, minor: number): boolean {
  const p = decodePolicy(policy);
  return major > p.apiMajor || (major === p.apiMajor && minor >= p.apiMinor);
}

/** "NODBG|NOKS|ES, API ≥ 0.0" — for messages and `sev status`. */
export function describePolicy(policy: number): string {
  const p = decodePolicy(policy);
  const flags = (Object.keys(PolicyBit) as PolicyFlag[]).filter((f) => (policy & PolicyBit[f]) !== 0);
  return `${flags.length ? flags.join("|") : "none"}${p.apiMajor || p.apiMinor ? `, API ≥ ${p.apiMajor}.${p.apiMinor}` : ""}`;
}
