/**
 * Everything the emulated SEV-SNP firmware holds, beside the SEV firmware state it shares (system memory, the
 * memory controller's key slots, the ASID table, the chip identity). Internal to src/sev: no key in here is ever
 * returned by a command — VEKs stay in key slots, VMPCKs reach only the guest's encrypted secrets page, and the
 * VCEK is derived inside `report-signer.ts` and dropped.
 */
import type { RandomSource } from "../../crypto/random.ts";
import type { FirmwareState } from "../firmware-state.ts";
import type { EmulatedSnpGeneration } from "../manufacturer/emulated-snp.ts";
import type { SevStatusCode } from "../status.ts";
import type { FirmwareLaunchDigest, SnpLaunchPageTypeName } from "./page-info.ts";
import type { SnpGuestStateName, SnpPlatformStateName } from "./state-tables.ts";

/** A page SNP_LAUNCH_UPDATE is about to take into the guest. */
export interface SnpLaunchPage {
  /** System physical address of the (4 KiB or 2 MiB) page. */
  pa: number;
  size: 4096 | 0x200000;
  /** The guest's ASID: the RMP entry must be assigned to it. */
  asid: number;
  pageType: SnpLaunchPageTypeName;
}

/**
 * The narrow hook where the RMP (another piece, not implemented here) joins the firmware. SNP_LAUNCH_UPDATE calls
 * `launchUpdate` once per command, after every check of its own and before it changes anything:
 *
 * - the RMP checks the page is assigned to `asid` as a guest-private page of that size (AMD's firmware answers
 *   INVALID_PAGE_STATE, INVALID_PAGE_SIZE or INVALID_PAGE_OWNER otherwise: return that status and the command
 *   fails with nothing changed);
 * - on success it returns the GPA recorded in the page's RMP entry (what PAGE_INFO measures; a VMSA page's is
 *   0xFFFFFFFFF000 under KVM) and marks the page validated and immutable (and a VMSA page as a VMSA), which the
 *   firmware does at that point (SNP ABI 56860, section 8.17, its actions).
 *
 * Without a hook the firmware measures every page at GPA = its system physical address.
 */
export interface SnpRmpHook {
  launchUpdate(page: SnpLaunchPage): { gpa: bigint } | { status: SevStatusCode };
  /**
   * SNP_PAGE_RECLAIM reads the RMP entry of the (first 4 KiB of the) page, as the firmware does before it decides
   * (handlers/page-reclaim.ts). Optional: without it the firmware sees every page as hypervisor-owned.
   */
  pageEntry?(pa: number): SnpRmpEntryView;
  /**
   * SNP_PAGE_RECLAIM's change, after every check of the firmware's: the Assigned, Immutable page of `size` goes to
   * the Reclaim state (Assigned, ASID 0, not Immutable, not Validated), from which the host's RMPUPDATE returns it to
   * the hypervisor. False when the RMP refuses (a page not Assigned and Immutable at that size); nothing changes.
   */
  pageReclaim?(pa: number, size: 4096 | 0x200000): boolean;
}

/** What the firmware reads of an RMP entry (APM vol. 2 section 15.36.3, the RMP entry's fields). */
export interface SnpRmpEntryView {
  assigned: boolean;
  /** 0 for a firmware page (and the Reclaim state). */
  asid: number;
  immutable: boolean;
  validated: boolean;
  vmsa: boolean;
  size: 4096 | 0x200000;
}

/** What an SNP platform is, beyond the CPU generation (BIOS and board facts the policy is checked against). */
export interface SnpPlatformConfig {
  /** SMT enabled on the host (default true). */
  smt?: boolean;
  /** Sockets (default 1). */
  sockets?: number;
  /** The TCB the firmware runs at (default: `emulatedSnpTcb` of the generation), a TCB u64 in its layout. */
  currentTcb?: bigint;
  rmp?: SnpRmpHook;
}

export interface SnpGuestContext {
  gctxPa: number;
  state: SnpGuestStateName;
  policy: bigint;
  keyGroup: number;
  vek: Uint8Array;
  asid: number;
  active: boolean;
  imiEn: boolean;
  gosvw: Uint8Array;
  ld: FirmwareLaunchDigest;
  /** VMPCK0–3, 32 bytes each: generated at SNP_LAUNCH_START, placed only in the guest's secrets page. */
  vmpck: Uint8Array[];
  /** Per VMPCK: the sequence number of the last response (the next request must carry this + 1). */
  msgSeqno: bigint[];
  secretsPages: number;
  vmsaCount: number;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  launchTcb: bigint;
  // Set by SNP_LAUNCH_FINISH:
  measurement: Uint8Array | undefined;
  hostData: Uint8Array;
  familyId: Uint8Array;
  imageId: Uint8Array;
  guestSvn: number;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  authorKeyEn: boolean;
  vcekDisabled: boolean;
}

export interface SnpFirmwareState {
  sev: FirmwareState;
  generation: EmulatedSnpGeneration;
  state: SnpPlatformStateName;
  rmpInitialized: boolean;
  raplDisabled: boolean;
  /** SNP_INIT_EX CIPHERTEXT_HIDING_EN (only on a model with `ciphertextHiding`). */
  ciphertextHiding: boolean;
  /** With ciphertext hiding, SNP guests take ASIDs 1..maxSnpAsid (SNP_INIT_EX MAX_SNP_ASID); 0 without it. */
  maxSnpAsid: number;
  smt: boolean;
  sockets: number;
  tcb: { current: bigint; reported: bigint; committed: bigint };
  guests: Map<number, SnpGuestContext>;
  rmp: SnpRmpHook | undefined;
  rng: RandomSource;
  /** The chip-unique secret MSG_KEY_REQ derives VCEK-rooted keys from. */
  keyRoot: Uint8Array;
}

export type SnpHandler = (
  snp: SnpFirmwareState,
  buf: import("../command-buffer.ts").CommandBuffer,
  guest: SnpGuestContext | undefined,
) => SevStatusCode;
