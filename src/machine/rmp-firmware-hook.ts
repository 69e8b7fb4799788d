/**
 * Everything the emulated SEV-SNP firmware reaches of the Reverse Map Table (`SnpRmpHook`,
 * src/sev/snp/firmware-state.ts): SNP_LAUNCH_UPDATE's check and change (`Rmp.firmwareHook`), and SNP_PAGE_RECLAIM's
 * read of an entry and move to the Reclaim state (`Rmp.firmwareReclaim`). A host hands this to its Secure Processor
 * (`snp: { rmp: snpFirmwareRmpHook(rmp) }`); the firmware then changes RMP entries only through it, as AMD's firmware
 * is the only party besides RMPUPDATE / PVALIDATE / RMPADJUST that may (APM vol. 2 section 15.36.4).
 *
 * @example
 * ```ts
 * const rmp = new Rmp({ end: dram.size });
 * const sp = new SecureProcessor({ generation: "milan", seed: 1, memory: dram, snp: { rmp: snpFirmwareRmpHook(rmp) } });
 * ```
 */
import type { SnpRmpHook } from "../sev/snp/firmware-state.ts";
import { LARGE_PAGE_SIZE, type Rmp, RmpPageSize } from "./rmp.ts";

export function snpFirmwareRmpHook(rmp: Rmp): SnpRmpHook {
  const launch = rmp.firmwareHook();
  return {
    launchUpdate: (page) => launch.launchUpdate(page),
    pageEntry: (pa) => {
      const e = rmp.entry(pa);
      return {
        assigned: e.assigned,
        asid: e.asid,
        immutable: e.immutable,
        validated: e.validated,
        vmsa: e.vmsa,
        size: e.pageSize === RmpPageSize.PAGE_2M ? LARGE_PAGE_SIZE : 4096,
      };
    },
    pageReclaim: (pa, size) =>
      rmp.firmwareReclaim(pa, size === LARGE_PAGE_SIZE ? RmpPageSize.PAGE_2M : RmpPageSize.PAGE_4K),
  };
}
