/**
 * What `sevctl export --full` does on a real host, against an emulated platform: PDH_CERT_EXPORT for the PDH and
 * PEK ‖ OCA, GET_ID to fetch the ASK-signed CEK from the (emulated) KDS, and the ASK and ARK of the generation.
 */
import type { SevClient } from "./client.ts";
import { emulatedRootCerts, kdsSignedCek } from "./manufacturer/emulated-amd.ts";

export interface ExportedChain {
  ark: Uint8Array;
  ask: Uint8Array;
  cek: Uint8Array;
  oca: Uint8Array;
  pek: Uint8Array;
  pdh: Uint8Array;
}

export function exportFullChain(client: SevClient): ExportedChain {
  const { pdh, pek, oca } = client.pdhCertExport();
  const generation = client.sp.model.generation;
  const cek = kdsSignedCek(generation, client.getId());
  const { ark, ask } = emulatedRootCerts(generation);
  return { ark, ask, cek, oca, pek, pdh };
}

/** File names `sevctl export --full` writes, in chain order from the root. */
export const CHAIN_FILES = ["ark.cert", "ask.cert", "cek.cert", "oca.cert", "pek.cert", "pdh.cert"] as const;
