/** How the dashboard writes SEV values: modes as badges, the guest policy as hex with its named bits. */
import type { SecurityMode } from "./types.ts";

export const MODE_LABEL: Record<SecurityMode, string> = {
  none: "none",
  sev: "SEV",
  "sev-es": "SEV-ES",
  "sev-snp": "SEV-SNP",
};

/** The SEV guest policy bits (docs/sev-interface.md §6). */
export const POLICY_BITS = [
  [0x1, "NODBG"],
  [0x2, "NOKS"],
  [0x4, "ES"],
  [0x8, "NOSEND"],
  [0x10, "DOMAIN"],
  [0x20, "SEV"],
] as const;

export function policyHex(policy: number): string {
  return `0x${(policy >>> 0).toString(16).padStart(4, "0")}`;
}

/** The named flags set in a policy, e.g. ["NODBG", "ES"]. */
export function policyFlags(policy: number): string[] {
  return POLICY_BITS.filter(([bit]) => (policy & bit) !== 0).map(([, name]) => name);
}

/** "0x0005 NODBG ES", or "—" for an ordinary VM. */
export function describePolicy(mode: SecurityMode, policy: number): string {
  if (mode === "none") return "—";
  const flags = policyFlags(policy);
  return flags.length ? `${policyHex(policy)} ${flags.join(" ")}` : policyHex(policy);
}

/** Parses a policy the user typed: hex (0x5) or decimal; undefined when it is not a u32. */
export function parsePolicy(text: string): number | undefined {
  const t = text.trim();
  if (!/^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(t)) return undefined;
  const n = Number(t);
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : undefined;
}

/** Hex text in groups of 8 bytes (16 digits) for reading. */
export function groupHex(hex: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < hex.length; i += 16) out.push(hex.slice(i, i + 16));
  return out;
}

/** "3 / 4 used": a pool gauge's numbers. */
export function gauge(used: number, size: number): { percent: number; text: string } {
  const percent = size === 0 ? 0 : Math.round((100 * used) / size);
  return { percent, text: `${used} used, ${size - used} free of ${size}` };
}
