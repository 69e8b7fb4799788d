/**
 * The SEV-SNP boot table: what the guest firmware tells an SNP kernel about its memory and CPUs, in one private page
 * (layout.ts `SNP_BOOT_TABLE_GPA`) — the part of OVMF's hand-off Linux gets from the EFI unaccepted-memory table, its
 * own decrypted sections and the ACPI MADT:
 *
 * - **accept**: private memory the firmware left unaccepted — assigned to the guest in the RMP by the host, never
 *   validated — which the kernel must PVALIDATE before first use (src/guest/kernel/snp-boot.ts);
 * - **share**: pages the kernel makes shared at boot with a page state change (the guest-agent buffers, the APs'
 *   GHCBs); the boot GHCB, which it must convert before it has a GHCB, has its own flag and goes through the MSR
 *   protocol;
 * - **apCount**: the APs (APIC IDs 1 … apCount) the kernel starts with SNP AP creation, each with the pages of
 *   layout.ts `apPages`.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0x000 | 4 | flags: bit 0 the boot GHCB is private (convert it) |
 * | 0x004 | 2 | number of accept ranges (≤ 64) |
 * | 0x006 | 2 | number of pages to share (≤ 126) |
 * | 0x008 | 2 | apCount |
 * | 0x010 | 16 each | accept ranges {u64 GPA, u64 pages} |
 * | 0x410 | 8 each | GPAs to share |
 *
 * The page is private and validated by the firmware, so the hypervisor can neither read nor change it.
 */
import { ByteReader, ByteWriter } from "../lib/bytes.ts";

export const SNP_BOOT_GHCB_PRIVATE = 1;
export const MAX_ACCEPT_RANGES = 64;
export const MAX_SHARED_PAGES = 126;
const ACCEPT_AT = 0x10;
const SHARE_AT = 0x410;

export interface SnpBootTable {
  ghcbPrivate: boolean;
  accept: { gpa: number; pages: number }[];
  share: number[];
  apCount: number;
}

export function encodeSnpBootTable(t: SnpBootTable): Uint8Array {
  if (t.accept.length > MAX_ACCEPT_RANGES || t.share.length > MAX_SHARED_PAGES) {
    throw new RangeError(
      `an SNP boot table holds ${MAX_ACCEPT_RANGES} accept ranges and ${MAX_SHARED_PAGES} shared pages`,
    );
  }
  const w = new ByteWriter(4096)
    .u32(0, t.ghcbPrivate ? SNP_BOOT_GHCB_PRIVATE : 0)
    .u16(4, t.accept.length)
    .u16(6, t.share.length)
    .u16(8, t.apCount);
  t.accept.forEach((r, i) => {
    w.u64(ACCEPT_AT + 16 * i, BigInt(r.gpa)).u64(ACCEPT_AT + 16 * i + 8, BigInt(r.pages));
  });
  t.share.forEach((gpa, i) => {
    w.u64(SHARE_AT + 8 * i, BigInt(gpa));
  });
  return w.bytes;
}

export function decodeSnpBootTable(page: Uint8Array): SnpBootTable {
  const r = new ByteReader(page);
  const ranges = Math.min(r.u16(4), MAX_ACCEPT_RANGES);
  const shares = Math.min(r.u16(6), MAX_SHARED_PAGES);
  return {
    ghcbPrivate: (r.u32(0) & SNP_BOOT_GHCB_PRIVATE) !== 0,
    accept: Array.from({ length: ranges }, (_, i) => ({
      gpa: Number(r.u64(ACCEPT_AT + 16 * i)),
      pages: Number(r.u64(ACCEPT_AT + 16 * i + 8)),
    })),
    share: Array.from({ length: shares }, (_, i) => Number(r.u64(SHARE_AT + 8 * i))),
    apCount: r.u16(8),
  };
}
