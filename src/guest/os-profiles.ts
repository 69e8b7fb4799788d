/**
 * Guest operating systems and what they can run as, as one table with a source per row (docs/architecture.md §4.3: "which guest
 * OS supports which mode is one data table"). The control plane's compatibility checks and the emulated guest
 * kernels (src/guest/kernel) both read it.
 *
 * - An SEV-capable kernel sets the C-bit on its private pages.
 * - An SEV-ES-capable kernel also handles #VC: it talks to the hypervisor through the GHCB MSR protocol at boot
 *   and through the GHCB for every non-automatic exit, exposing only what each exit needs.
 * - A kernel without SEV-ES support, booted as SEV-ES, dies at its first #VC; one without SEV support cannot
 *   read its own (encrypted) memory.
 */
import { CiphervisorError } from "../errors.ts";

export interface GuestOsProfile {
  id: string;
  name: string;
  family: "linux" | "windows";
  sev: boolean;
  sevEs: boolean;
  /** GHCB protocol versions the kernel speaks (SEV-ES kernels only). Version 2 adds GHCB GPA registration. */
  ghcbProtocol?: { min: number; max: number };
  source: string;
}

export const GUEST_OS_PROFILES: readonly GuestOsProfile[] = [
  {
    id: "linux-5.19",
    name: "Linux ≥ 5.19",
    family: "linux",
    sev: true,
    sevEs: true,
    ghcbProtocol: { min: 1, max: 2 },
    source:
      "GHCB protocol v2 (GHCB GPA registration, MSR protocol 0x012) arrived with the SNP guest series in Linux 5.19 [unconfirmed release]; #VC handler arch/x86/kernel/sev.c (docs/sev-interface.md §12.4)",
  },
  {
    id: "linux-5.10",
    name: "Linux 5.10–5.18",
    family: "linux",
    sev: true,
    sevEs: true,
    ghcbProtocol: { min: 1, max: 1 },
    source:
      "SEV-ES guest support merged in Linux 5.10 (arch/x86/kernel/sev-es.c: #VC handler, GHCB protocol v1); docs/product-behaviour.md: vSphere 7.0 U1 SEV-ES needs Linux kernels with SEV-ES support",
  },
  {
    id: "linux-4.16",
    name: "Linux 4.16–5.9",
    family: "linux",
    sev: true,
    sevEs: false,
    source:
      "SEV guest memory encryption merged in Linux 4.16 (arch/x86/mm/mem_encrypt.c); no #VC handler before 5.10",
  },
  {
    id: "windows-server-2022",
    name: "Windows Server 2022",
    family: "windows",
    sev: false,
    sevEs: false,
    source:
      "docs/product-behaviour.md: SEV-ES guests must be Linux; Windows is not enlightened for SEV without a paravisor, and does not boot under plain SEV",
  },
  {
    id: "windows-server-2019",
    name: "Windows Server 2019",
    family: "windows",
    sev: false,
    sevEs: false,
    source: "as Windows Server 2022 (docs/product-behaviour.md)",
  },
];

/** The profile with this id, or INVALID_INPUT naming the known ones. */
export function guestOsProfile(id: string): GuestOsProfile {
  const p = GUEST_OS_PROFILES.find((r) => r.id === id);
  if (!p) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `unknown guest OS '${id}' (expected one of ${GUEST_OS_PROFILES.map((r) => r.id).join(", ")})`,
    );
  }
  return p;
}

/** Whether a profile can run in a security mode, and why not, in words. */
export function supportsMode(
  p: GuestOsProfile,
  mode: "none" | "sev" | "sev-es",
): { ok: true } | { ok: false; reason: string } {
  if (mode === "sev" && !p.sev) return { ok: false, reason: `guest OS ${p.name} does not support SEV` };
  if (mode === "sev-es" && !p.sevEs)
    return { ok: false, reason: `guest OS ${p.name} does not support SEV-ES` };
  return { ok: true };
}
