/**
 * Building a request in the kernel's GHCB, as Linux's `vc_ghcb_invalidate` + `ghcb_set_*` + `sev_es_ghcb_hv_call`
 * do (docs/sev-interface.md §12.3): clear the save area and valid bitmap, set the fields (each marked valid), the
 * usage and the protocol version, and write the page back; the caller then VMGEXITs with the GHCB MSR at its GPA.
 */
import { GHCB_DEFAULT_USAGE, GHCB_SIZE, type GhcbFieldName, GhcbView } from "../../machine/ghcb.ts";
import { BootInfo } from "../layout.ts";
import type { KernelContext } from "./kernel-context.ts";

/** The kernel's GHCB as it is now (a copy: write it back with `writeGhcb`). */
export function readGhcb(k: KernelContext): GhcbView {
  return new GhcbView(k.cpu.read(Number(k.boot(BootInfo.GHCB_GVA)), GHCB_SIZE));
}

export function writeGhcb(k: KernelContext, g: GhcbView): void {
  k.cpu.write(Number(k.boot(BootInfo.GHCB_GVA)), g.bytes);
}

/**
 * Fills the GHCB for one NAE event. `keep` leaves the save area as it is (a re-issued page state change, whose
 * shared buffer holds the hypervisor's progress) and only sets the fields again.
 */
export function ghcbRequest(
  k: KernelContext,
  fields: Partial<Record<GhcbFieldName, bigint>>,
  opts: { keep?: boolean; shared?: Uint8Array } = {},
): void {
  const g = readGhcb(k);
  if (opts.keep) g.clearValidBitmap();
  else g.invalidate();
  if (opts.shared) g.bytes.set(opts.shared, 0x800);
  for (const [f, v] of Object.entries(fields) as [GhcbFieldName, bigint][]) g.set(f, v);
  g.usage = GHCB_DEFAULT_USAGE;
  g.protocolVersion = Number(k.boot(BootInfo.PROTOCOL)) || 1;
  writeGhcb(k, g);
}
