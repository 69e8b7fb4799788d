/**
 * The hypervisor host's public vocabulary (ESXi's role): what a VM is, what a host reports, and what each lifecycle
 * call returns. The control plane's emulated driver speaks exactly this.
 */
import type { Generation } from "../machine/cpu-models.ts";
import type { HostVmmProfile } from "../measure/vmsa.ts";
import type { SecurityMode } from "./operation-rules.ts";

/** Devices a VM can have. `pci-passthrough` cannot work encrypted (the device would DMA into private memory). */
export type DeviceKind = "virtio-disk" | "virtio-net" | "sata-disk" | "usb-controller" | "pci-passthrough";

export interface DeviceSpec {
  kind: DeviceKind;
  /** e.g. a host PCI address for passthrough, a disk size, … (informational). */
  detail?: string;
}

export type FirmwareSpec =
  | {
      kind: "efi";
      /**
       * The UEFI image to load and measure. Omitted: the small built-in emulated UEFI. A real OVMF (e.g. Debian's
       * `OVMF_CODE.fd`) may be given as bytes.
       */
      image?: Uint8Array;
      /** A name for reports (file path or "builtin"). */
      imageName?: string;
    }
  | { kind: "bios" };

export interface DirectBootSpec {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
}

export interface GuestOwnerSession {
  /** The guest owner's GODH certificate (0x824 bytes). */
  godhCert: Uint8Array;
  /** The 0x80-byte session buffer. */
  session: Uint8Array;
}

/**
 * What one host needs to define and launch a VM: the hypervisor's own spec, with the firmware and kernel bytes and
 * the guest owner's session (the control plane's `VmSpec` is what it stores; `control/compat.ts` turns one into
 * the other).
 */
export interface LaunchSpec {
  name: string;
  vcpus: number;
  memoryMiB: number;
  firmware: FirmwareSpec;
  /** Virtual hardware version (vSphere's vmx-NN); SEV-ES needs 18 or later, as vSphere 7U1 requires. */
  hardwareVersion: number;
  /** A guest OS profile id (src/guest/os-profiles). */
  guestOs: string;
  devices: DeviceSpec[];
  security: SecurityMode;
  /**
   * The guest policy: for SEV and SEV-ES the u32 of docs/sev-interface.md §6 (default NODBG|NOKS, plus ES for
   * sev-es); for SEV-SNP the policy of SNP_LAUNCH_START (docs/sev-interface.md §14; default 0x30000 as QEMU's
   * `sev-snp-guest`: SMT allowed and the must-be-one bit 17).
   */
  policy?: number;
  /** A guest owner's session; without it the firmware chooses the transport keys. */
  session?: GuestOwnerSession;
  /** Pause after LAUNCH_MEASURE until the guest owner checks the measurement (and may inject a secret). */
  attestation?: boolean;
  directBoot?: DirectBootSpec;
  /**
   * SEV-SNP launch options, with the meaning of QEMU's `sev-snp-guest` properties (SNP ABI 56860 section 8.18
   * SNP_LAUNCH_FINISH): `hostData` (host-data, 32 bytes the report carries as HOST_DATA), `idBlock` (id-block, the
   * 0x60-byte ID block), `idAuth` (id-auth, its 0x1000-byte authentication information) and `authorKeyEnabled`
   * (author-key-enabled: the ID key is signed by an author key in `idAuth`).
   */
  snp?: SnpLaunchOptions;
  /**
   * The guest program the OS runs, in the guest ISA's assembly (docs/guest-isa.md). Default: a small workload that
   * counts in private memory, writes "OK" to the serial port and idles.
   */
  program?: string;
}

export interface SnpLaunchOptions {
  hostData?: Uint8Array;
  idBlock?: Uint8Array;
  idAuth?: Uint8Array;
  authorKeyEnabled?: boolean;
}

export type SevState = "uninitialized" | "initialized" | "working";

export interface PoolReport {
  /** First and last ASID of the pool; size 0 when the pool is empty. */
  first: number;
  last: number;
  size: number;
  used: number;
  free: number;
}

/** Like vSphere's HostSevInfo and libvirt's `domcapabilities <sev>` / `nodesevinfo`. */
export interface HostCapabilities {
  name: string;
  generation: Generation;
  family: string;
  sevSupported: boolean;
  sevEsSupported: boolean;
  /** The CPU and firmware run SEV-SNP guests (Milan and later). */
  sevSnpSupported: boolean;
  /** Why SEV-ES is unavailable (CPU generation, or BIOS min_sev_asid = 1). */
  sevEsUnavailableReason?: string;
  sevState: SevState;
  firmware: { apiMajor: number; apiMinor: number; build: number };
  cBit: number;
  reducedPhysBits: number;
  minSevAsid: number;
  maxSevGuests: number;
  maxSevEsGuests: number;
  /**
   * Per pool. `snp` is its own range under Ciphertext Hiding (`ciphertextHidingAsids` > 0); otherwise it reports
   * the ES range that SEV-ES and SEV-SNP guests share (docs/sev-interface.md §7.2).
   */
  pools: { sev: PoolReport; sevEs: PoolReport; snp: PoolReport };
  /** ASIDs 1..N set apart for SEV-SNP under Ciphertext Hiding (Linux 6.18 `ciphertext_hiding_asids`); 0 when off. */
  ciphertextHidingAsids: number;
  /** base64 of the PDH certificate and of the chain PEK ‖ OCA ‖ CEK, as `virsh nodesevinfo` reports them. */
  pdh: string;
  certChain: string;
  /** hex of GET_ID (cpu0-id). */
  cpu0Id: string;
  /**
   * How the host's QEMU initialises SEV and SEV-ES VMs, and so which reset-state VMSA every SEV-ES launch on it
   * measures (docs/sev-interface.md §8.5, §12.2).
   */
  vmmProfile: HostVmmProfile;
  /** The vCPU its guests see, when the host reports it (the emulated hosts do; QEMU's CPU model per generation). */
  guestCpu?: GuestCpu;
}

/** A host's platform facts without its certificates (`Host.platform()`): cheap, no firmware identity needed. */
export type HostPlatform = Omit<HostCapabilities, "pdh" | "certChain">;

/** The vCPU a guest sees: QEMU's CPU model and its CPUID(1).EAX identity, which the SEV-ES VMSA's RDX carries. */
export interface GuestCpu {
  /** QEMU's CPU model name (`owner measure --vcpu-type`). */
  type: string;
  family: number;
  model: number;
  stepping: number;
  /** CPUID(1).EAX = the VMSA's RDX at reset (`owner measure --vcpu-sig`). */
  signature: number;
}

/**
 * What one encrypted launch fed the firmware's launch digest (docs/sev-interface.md §8.1, §8.3, §12.2): with these a
 * guest owner rebuilds the digest from their own copies of the images. Hashes are hex SHA-256.
 */
export interface LaunchInputs {
  security: "sev" | "sev-es" | "sev-snp";
  /**
   * The VMSA profile measured. SEV-SNP VMs are always created through KVM_SEV_INIT2, so an SNP launch measures the
   * `qemu` profile on every host (sev-snp-measure's `--vmm-type QEMU`).
   */
  vmmProfile: HostVmmProfile;
  /** SEV-SNP: the VMSAs' SEV_FEATURES (sev-snp-measure `--guest-features`; 0x1 = SNPActive). */
  guestFeatures?: number;
  vcpus: number;
  cpu: GuestCpu;
  images: {
    firmware: { name: string; sha256: string };
    /** The entries of QEMU's kernel-hashes table, for a measured direct boot only (cmdline: with its NUL). */
    kernel?: { sha256: string };
    initrd?: { sha256: string };
    cmdline?: { sha256: string };
  };
}

/**
 * defined/stopped: powered off; running: launched (possibly idle); paused: launched and waiting for the guest
 * owner (attestation); suspended: state saved (ordinary VMs only); crashed: stopped by a guest fault or a refused
 * VMRUN, with the reason. (Not the control plane's `PowerState`: this is the VM as one host runs it.)
 */
export type RunState = "defined" | "running" | "paused" | "suspended" | "crashed" | "stopped";

export interface VmStatus {
  name: string;
  security: SecurityMode;
  power: RunState;
  /** Present while launched: the firmware handle and ASID (encrypted VMs). */
  handle?: number;
  asid?: number;
  policy?: number;
  /** hex SHA-256 of the measured launch (what LAUNCH_MEASURE's MEASURE binds). */
  launchDigest?: string;
  /** While launched (encrypted VMs): what that launch measured, when the host reports it. */
  launchInputs?: LaunchInputs;
  /**
   * While paused for attestation, from a host that does not record its launches (libvirt): the SHA-256 of the files
   * the domain boots — its loader, and for a measured direct boot the kernel-hashes entries — hashed on the host.
   */
  bootImages?: LaunchInputs["images"];
  /** Why the VM stopped or idles, in words a person understands (halt, guest fault, unsupported OS …). */
  reason?: string;
  /** What the guest wrote to its serial console (the last 64 KiB). */
  console?: string;
  /** Console bytes dropped from the front to keep that bound. */
  consoleDropped?: number;
  /** Guest exits handled since power-on. */
  exits?: number;
}

export interface StartResult {
  status: VmStatus;
  /** When paused for attestation: MEASURE ‖ MNONCE, base64 (what `virsh domlaunchsecinfo` gives). */
  launchMeasurement?: string;
}

/** Per VM, how a drain moves it (ordinary VMs live-migrate; encrypted VMs restart elsewhere). */
export interface DrainStep {
  vm: string;
  security: SecurityMode;
  power: RunState;
  path: "live-migrate" | "restart-elsewhere" | "nothing-to-do";
  reason: string;
  /** Pool an encrypted VM needs on its new host. */
  pool?: "sev" | "sev-es";
  /** True when the VM expects a guest owner to attest and inject again after a restart. */
  needsOwner?: boolean;
}
