/**
 * One lab bench for any security mode: lab.ts boots ordinary, SEV and SEV-ES guests through KVM's SEV launch;
 * snp-lab.ts boots SEV-SNP guests through SNP's (a Reverse Map Table, SNP_LAUNCH_START … SNP_LAUNCH_FINISH). What the
 * experiments need of either is the same: the machine, the launched guest, the hypervisor's view, the image.
 *
 * @example
 * ```ts
 * const lab = createModeLab({ source, mode: "sev-snp" });
 * lab.run();
 * lab.view.saveArea().kind; // "vmsa-ciphertext"
 * ```
 */
import type { Lab, LabOptions } from "./lab.ts";
import { createLab } from "./lab.ts";
import { createSnpLab } from "./snp-lab.ts";

export type ModeLab = Pick<Lab, "machine" | "vm" | "view" | "image" | "run">;

/** `createLab`, or `createSnpLab` for mode sev-snp (which takes only the source, generation, guest OS, seed, observer). */
export function createModeLab(opts: LabOptions): ModeLab {
  if (opts.mode !== "sev-snp") return createLab(opts);
  return createSnpLab({
    source: opts.source,
    ...(opts.generation ? { generation: opts.generation } : {}),
    ...(opts.guestOs ? { guestOs: opts.guestOs } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.observer ? { observer: opts.observer } : {}),
  });
}
