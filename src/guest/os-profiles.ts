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
 *
 * The first five rows are generic kernel ranges and Windows; the distribution rows follow (appended, never
 * inserted: a row's index places its emulated kernel in guest memory, src/guest/kernel/kernel.ts). A distribution
 * row describes the release's GA kernel as the vendor ships it: where the vendor backports a feature the upstream
 * version would not have, the source says so ("[backport]"); where a value could not be confirmed, the row takes the
 * conservative value and its source says "[unconfirmed]". docs/guest-os-profiles.md is generated from this table
 * (`npm run docs`).
 */
import { CiphervisorError } from "../errors.ts";
import type { SecurityMode } from "../vocabulary.ts";

export interface GuestOsProfile {
  /** Stable, lowercase: `vm create --guest-os` and the API's `spec.guestOs` take it. */
  id: string;
  name: string;
  family: "linux" | "windows";
  /**
   * The kernel the release ships: Linux `major.minor` of the GA kernel (a generic row: the lowest version of its
   * range), Windows the NT build.
   */
  kernelVersion: string;
  sev: boolean;
  sevEs: boolean;
  /**
   * The kernel runs as an SEV-SNP guest: PVALIDATE of its memory, the SNP secrets page and the sev-guest driver
   * (upstream from Linux 5.19, with GHCB protocol 2). Distribution backports are not assumed.
   */
  sevSnp: boolean;
  /** GHCB protocol versions the kernel speaks (SEV-ES kernels only). Version 2 adds GHCB GPA registration. */
  ghcbProtocol?: { min: number; max: number };
  /**
   * The kernel has Linux's efi_secret driver (CONFIG_EFI_SECRET, merged in Linux 5.19): it exposes the SEV launch
   * secret area (filled by LAUNCH_SECRET) under securityfs as `secrets/coco/<guid>`.
   */
  efiSecret: boolean;
  /** Where the row's values come from: public URLs, and what each one supports. */
  source: string;
}

const SEV_TOOL = "https://github.com/AMDESE/sev-tool/blob/master/readme.md";
const GHCB_V2 =
  "GHCB protocol v2 and efi_secret are upstream from Linux 5.19 (SNP guest series, https://www.phoronix.com/news/AMD-SEV-SNP-Arrives-Linux-5.19; efi_secret commit cbabf03c3ef3, https://git.kernel.org/torvalds/c/cbabf03c3ef3cce74a97f140cf57611a9e8a21bc)";

export const GUEST_OS_PROFILES: readonly GuestOsProfile[] = [
  // Generic rows first: their ids are used by tests, demos and docs, and their indexes fix kernel addresses.
  {
    id: "linux-5.19",
    name: "Linux ≥ 5.19 (generic)",
    family: "linux",
    kernelVersion: "5.19",
    sev: true,
    sevEs: true,
    sevSnp: true,
    ghcbProtocol: { min: 1, max: 2 },
    efiSecret: true,
    source: `${GHCB_V2}; GHCB GPA registration is MSR protocol 0x012, #VC handler arch/x86/kernel/sev.c (docs/sev-interface.md §12.4); efi_secret assumes a kernel built with CONFIG_EFI_SECRET`,
  },
  {
    id: "linux-5.10",
    name: "Linux 5.10–5.18",
    family: "linux",
    kernelVersion: "5.10",
    sev: true,
    sevEs: true,
    sevSnp: false,
    ghcbProtocol: { min: 1, max: 1 },
    efiSecret: false,
    source:
      "SEV-ES guest support merged in Linux 5.10 (arch/x86/kernel/sev-es.c: #VC handler, GHCB protocol v1; series 'x86: SEV-ES Guest Support', Joerg Roedel); the KVM (hypervisor) half followed in 5.11; docs/product-behaviour.md: vSphere 7.0 U1 SEV-ES needs Linux kernels with SEV-ES support",
  },
  {
    id: "linux-4.16",
    name: "Linux 4.16–5.9",
    family: "linux",
    kernelVersion: "4.16",
    sev: true,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source: `SEV guest memory encryption (arch/x86/mm/mem_encrypt.c) is upstream with the KVM SEV host side from Linux 4.16 (AMD's table lists SEV guest support from 4.15, ${SEV_TOOL}); no #VC handler before 5.10`,
  },
  {
    id: "windows-server-2022",
    name: "Windows Server 2022",
    family: "windows",
    kernelVersion: "10.0.20348",
    sev: false,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source:
      "docs/product-behaviour.md: SEV-ES guests must be Linux; Windows is not enlightened for SEV without a paravisor, and does not boot under plain SEV",
  },
  {
    id: "windows-server-2019",
    name: "Windows Server 2019",
    family: "windows",
    kernelVersion: "10.0.17763",
    sev: false,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source: "as Windows Server 2022 (docs/product-behaviour.md)",
  },
  // Distribution releases (GA kernels), appended.
  {
    id: "ubuntu-18.04",
    name: "Ubuntu 18.04 LTS",
    family: "linux",
    kernelVersion: "4.15",
    sev: true,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source: `AMD's SME/SEV OS support table lists Ubuntu 18.04 and Linux 4.15 as SEV guests (${SEV_TOOL}); no #VC handler before Linux 5.10`,
  },
  {
    id: "ubuntu-20.04",
    name: "Ubuntu 20.04 LTS",
    family: "linux",
    kernelVersion: "5.4",
    sev: true,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source:
      "GA kernel 5.4 (https://9to5linux.com/ubuntu-20-04-will-ship-with-linux-kernel-5-4); SEV guests need kernel ≥ 5.4 on Google Cloud (https://cloud.google.com/confidential-computing/confidential-vm/docs/create-custom-confidential-vm-images); SEV-ES guest support is upstream from 5.10 — no backport to the GA 5.4 kernel found [unconfirmed], so SEV only (HWE kernels differ)",
  },
  {
    id: "ubuntu-22.04",
    name: "Ubuntu 22.04 LTS",
    family: "linux",
    kernelVersion: "5.15",
    sev: true,
    sevEs: true,
    sevSnp: false,
    ghcbProtocol: { min: 1, max: 1 },
    efiSecret: false,
    source: `GA kernel 5.15 (https://www.phoronix.com/news/Ubuntu-22.04-LTS-Linux-5.15, https://9to5linux.com/looks-like-ubuntu-22-04-lts-will-be-powered-by-linux-5-15-lts-ship-with-gnome-42); SEV-ES guest upstream from 5.10; ${GHCB_V2}, so v1 and no efi_secret (Ubuntu backports not checked [unconfirmed])`,
  },
  {
    id: "ubuntu-24.04",
    name: "Ubuntu 24.04 LTS",
    family: "linux",
    kernelVersion: "6.8",
    sev: true,
    sevEs: true,
    sevSnp: true,
    ghcbProtocol: { min: 1, max: 2 },
    efiSecret: false,
    source: `GA kernel 6.8 (https://development.chkoushik.com/?p=671: "ships with the Linux kernel 6.8"); SEV-ES upstream from 5.10; ${GHCB_V2}; whether Ubuntu builds CONFIG_EFI_SECRET [unconfirmed], so efiSecret false`,
  },
  {
    id: "debian-10",
    name: "Debian 10 (buster)",
    family: "linux",
    kernelVersion: "4.19",
    sev: true,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source:
      "shipped with Linux 4.19 (https://blog.v-gar.de/2024/06/debian-10-buster-lts-erreicht-end-of-life-eol/; release notes https://www.debian.org/releases/buster/); SEV guest upstream from 4.15/4.16, SEV-ES only from 5.10",
  },
  {
    id: "debian-11",
    name: "Debian 11 (bullseye)",
    family: "linux",
    kernelVersion: "5.10",
    sev: true,
    sevEs: true,
    sevSnp: false,
    ghcbProtocol: { min: 1, max: 1 },
    efiSecret: false,
    source:
      "Linux 5.10 LTS (https://www.debian.org/releases/bullseye/amd64/release-notes/ch-whats-new.en.html; https://vectree.io/c/debian-bullseye); SEV-ES guest support merged in 5.10, GHCB v1 (v2 and efi_secret from 5.19)",
  },
  {
    id: "debian-12",
    name: "Debian 12 (bookworm)",
    family: "linux",
    kernelVersion: "6.1",
    sev: true,
    sevEs: true,
    sevSnp: true,
    ghcbProtocol: { min: 1, max: 2 },
    efiSecret: false,
    source: `Linux 6.1 LTS (https://www.debian.org/releases/bookworm/amd64/release-notes.en.txt; https://www.html.it/magazine/debian-12-bookworm-arrivato-linux-6-1-e-kde-plasma-5-27/); ${GHCB_V2}; whether Debian builds CONFIG_EFI_SECRET [unconfirmed], so efiSecret false`,
  },
  {
    id: "rhel-8",
    name: "Red Hat Enterprise Linux 8",
    family: "linux",
    kernelVersion: "4.18",
    sev: true,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source: `kernel 4.18 (https://docs.redhat.com/en/documentation/Red_Hat_Enterprise_Linux/8/html/managing_monitoring_and_updating_the_kernel/assembly_the-linux-kernel_managing-monitoring-and-updating-the-kernel); AMD lists RHEL 8 as an SEV guest (${SEV_TOOL}); 4.18 predates the 5.10 #VC handler and no SEV-ES guest backport in 8.x was found [unconfirmed], so SEV only`,
  },
  {
    id: "rhel-9",
    name: "Red Hat Enterprise Linux 9",
    family: "linux",
    kernelVersion: "5.14",
    sev: true,
    sevEs: true,
    sevSnp: false,
    ghcbProtocol: { min: 1, max: 1 },
    efiSecret: false,
    source:
      "kernel 5.14; RHEL 9.0 release notes: AMD SEV and SEV-ES for KVM virtual machines as a Technology Preview (https://docs.redhat.com/en/documentation/red_hat_enterprise_linux/9/html/9.0_release_notes/technology-preview_virtualization); Red Hat backports the SNP guest series into 5.14 (kernel-5.14.0-154.el9, BZ 2081424, https://gitlab.com/clrkwllms/kernel/-/tags/kernel-5.14.0-154.el9), so later 9.x kernels may speak GHCB v2 [unconfirmed]: v1 kept; efi_secret backport [unconfirmed], so false",
  },
  {
    id: "sles-15",
    name: "SUSE Linux Enterprise Server 15",
    family: "linux",
    kernelVersion: "4.12",
    sev: true,
    sevEs: false,
    sevSnp: false,
    efiSecret: false,
    source: `kernel 4.12 with SUSE's SEV guest backport [backport]: AMD lists SLES 15 as an SEV guest and host (${SEV_TOOL}), and SLES 12 SP4 already documents AMD memory encryption (https://www.suse.com/releasenotes/x86_64/SUSE-SLES/12-SP4/index.html, section 5.1); SEV-ES [unconfirmed before SP4], so SEV only`,
  },
  {
    id: "sles-15-sp4",
    name: "SUSE Linux Enterprise Server 15 SP4",
    family: "linux",
    kernelVersion: "5.14",
    sev: true,
    sevEs: true,
    sevSnp: false,
    ghcbProtocol: { min: 1, max: 1 },
    efiSecret: false,
    source:
      "kernel 5.14; SUSE documents SEV and SEV-ES guests for SP4 (https://documentation.suse.com/en-us/sles/15-SP4/html/SLES-all/article-amd-sev.html); GHCB v2 and efi_secret are upstream only from 5.19 and a SUSE backport is [unconfirmed], so v1 and false",
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
  mode: SecurityMode,
): { ok: true } | { ok: false; reason: string } {
  if (mode === "sev" && !p.sev) return { ok: false, reason: `guest OS ${p.name} does not support SEV` };
  if (mode === "sev-es" && !p.sevEs)
    return { ok: false, reason: `guest OS ${p.name} does not support SEV-ES` };
  if (mode === "sev-snp" && !p.sevSnp)
    return {
      ok: false,
      reason: `guest OS ${p.name} does not support SEV-SNP (upstream Linux 5.19 or later)`,
    };
  return { ok: true };
}
