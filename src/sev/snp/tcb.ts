/**
 * The TCB the emulated SNP firmware runs at (SNP ABI 56860, the TCB_VERSION structure; docs/sev-interface.md §14:
 * on Milan and Genoa byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode; on Turin byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP,
 * 7 microcode). Representative values, not any real part's. Current, reported and committed TCB are equal:
 * SNP_CONFIG (which lowers the reported TCB) and SNP_COMMIT are not emulated.
 */
import { encodeSnpTcb, type TcbLayout } from "../../certs/snp-report.ts";
import { type EmulatedSnpGeneration, SNP_PRODUCT_FACTS, type VcekSpl } from "../manufacturer/emulated-snp.ts";

export const EMULATED_SNP_SPL: Readonly<Record<EmulatedSnpGeneration, VcekSpl>> = {
  milan: { bootloader: 3, tee: 0, snp: 0x17, microcode: 0xd1 },
  genoa: { bootloader: 9, tee: 0, snp: 0x17, microcode: 0x48 },
  turin: { fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 0x4a },
};

/** The byte layout of the generation's TCB u64s. */
export function snpTcbLayout(generation: EmulatedSnpGeneration): TcbLayout {
  return SNP_PRODUCT_FACTS[generation].tcbLayout;
}

export function emulatedSnpTcb(generation: EmulatedSnpGeneration): bigint {
  return encodeSnpTcb(EMULATED_SNP_SPL[generation], snpTcbLayout(generation));
}
