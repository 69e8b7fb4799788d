/**
 * The TCB the emulated SNP firmware runs at (SNP ABI 56860, the TCB_VERSION structure; docs/sev-interface.md §14:
 * on Milan and Genoa byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode). Representative values, not any real part's.
 * Current, reported and committed TCB are equal: SNP_CONFIG (which lowers the reported TCB) and SNP_COMMIT are not
 * emulated.
 */
import { encodeSnpTcb } from "../../certs/snp-report.ts";
import type { EmulatedSnpGeneration, VcekSpl } from "../manufacturer/emulated-snp.ts";

export const EMULATED_SNP_SPL: Readonly<Record<EmulatedSnpGeneration, VcekSpl>> = {
  milan: { bootloader: 3, tee: 0, snp: 0x17, microcode: 0xd1 },
  genoa: { bootloader: 9, tee: 0, snp: 0x17, microcode: 0x48 },
};

export function emulatedSnpTcb(generation: EmulatedSnpGeneration): bigint {
  return encodeSnpTcb(EMULATED_SNP_SPL[generation], "milan");
}
