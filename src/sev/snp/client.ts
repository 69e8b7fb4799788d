/**
 * A typed host-side client for the emulated SEV-SNP firmware — the role of Linux's ccp driver and KVM's SNP code:
 * it places command buffers in a scratch region of host memory, issues the command, and turns a non-SUCCESS status
 * into a `SevFirmwareError` (its hint names the SNP command). Buffer layouts: `commands.ts`.
 *
 * @example
 * ```ts
 * const snp = new SnpClient(sp, dram, SCRATCH);
 * snp.init();
 * snp.gctxCreate(gctx);
 * snp.launchStart(gctx, { policy: 0x30000n });
 * snp.activate(gctx, 1);
 * ```
 */
import { ByteReader, ByteWriter } from "../../lib/bytes.ts";
import type { ScratchRegion } from "../client.ts";
import { SevFirmwareError } from "../errors.ts";
import type { FirmwareMemory } from "../firmware-state.ts";
import type { SecureProcessor } from "../secure-processor.ts";
import { SevStatus } from "../status.ts";
import { SNP_CMD_BUFFER_SIZE, SnpCmd, type SnpCmdName } from "./commands.ts";
import { SNP_GUEST_STATUS_SIZE } from "./handlers/guest-lifecycle.ts";
import { SNP_PLATFORM_STATUS_SIZE } from "./handlers/platform.ts";
import { ID_AUTH_SIZE, ID_BLOCK_SIZE } from "./id-block.ts";
import { SnpLaunchPageType, type SnpLaunchPageTypeName } from "./page-info.ts";
import {
  SNP_GUEST_STATES,
  SNP_PLATFORM_STATES,
  type SnpGuestStateName,
  type SnpPlatformStateName,
} from "./state-tables.ts";

export interface SnpPlatformStatus {
  apiMajor: number;
  apiMinor: number;
  state: SnpPlatformStateName;
  rmpInitialized: boolean;
  build: number;
  raplDisabled: boolean;
  /** The part offers ciphertext hiding (CIPHERTEXT_HIDING_CAP) and SNP_INIT_EX enabled it (_EN). */
  ciphertextHidingCap: boolean;
  ciphertextHidingEn: boolean;
  guestCount: number;
  currentTcb: bigint;
  reportedTcb: bigint;
}

export interface SnpGuestStatus {
  policy: bigint;
  asid: number;
  state: SnpGuestStateName;
}

export interface SnpLaunchUpdateInput {
  pa: number;
  type: SnpLaunchPageTypeName;
  largePage?: boolean;
  imi?: boolean;
  /** VMPL1, VMPL2, VMPL3 permission masks. */
  vmplPerms?: readonly [number, number, number];
}

export interface SnpLaunchFinishInput {
  /** The 0x60-byte ID block and its 0x1000-byte authentication structure. */
  idBlock?: Uint8Array;
  idAuth?: Uint8Array;
  authorKeyEn?: boolean;
  vcekDisabled?: boolean;
  hostData?: Uint8Array;
}

export class SnpClient {
  #next = 0;

  constructor(
    readonly sp: SecureProcessor,
    private readonly memory: FirmwareMemory,
    private readonly scratch: ScratchRegion,
  ) {}

  /** `size` bytes of scratch, aligned to `align`. */
  #alloc(size: number, align = 16): number {
    const start = Math.ceil((this.scratch.base + this.#next) / align) * align;
    this.#next = start - this.scratch.base + Math.ceil(Math.max(size, 1) / 16) * 16;
    if (this.#next > this.scratch.size) throw new RangeError("SNP client scratch region exhausted");
    return start;
  }

  #put(data: Uint8Array, align = 16): number {
    const pa = this.#alloc(data.length, align);
    this.memory.write(pa, data);
    return pa;
  }

  /** The status a command returns, without throwing (tests of refusals use this). */
  status(name: SnpCmdName, fill?: (w: ByteWriter) => void): number {
    this.#next = 0;
    const size = SNP_CMD_BUFFER_SIZE[name];
    const w = new ByteWriter(size);
    fill?.(w);
    const pa = size > 0 ? this.#put(w.bytes) : 0;
    return this.sp.issue(SnpCmd[name], pa);
  }

  #run(name: SnpCmdName, fill?: (w: ByteWriter) => void, prepare?: () => void): void {
    this.#next = 0;
    prepare?.();
    const size = SNP_CMD_BUFFER_SIZE[name];
    const w = new ByteWriter(size);
    fill?.(w);
    const pa = size > 0 ? this.#put(w.bytes) : 0;
    const status = this.sp.issue(SnpCmd[name], pa);
    if (status !== SevStatus.SUCCESS) throw new SevFirmwareError(SnpCmd[name], status, name);
  }

  init(): void {
    this.#run("SNP_INIT");
  }

  /** SNP_INIT_EX; `maxSnpAsid` sets CIPHERTEXT_HIDING_EN with that MAX_SNP_ASID (Linux's `ciphertext_hiding_asids`). */
  initEx(opts: { initRmp?: boolean; raplDis?: boolean; maxSnpAsid?: number } = {}): void {
    this.#run("SNP_INIT_EX", SnpClient.initExBuffer(opts));
  }

  /** The command-buffer filler of SNP_INIT_EX (shared with `status`). */
  static initExBuffer(opts: {
    initRmp?: boolean;
    raplDis?: boolean;
    maxSnpAsid?: number;
  }): (w: ByteWriter) => void {
    const cth = opts.maxSnpAsid !== undefined;
    return (w) => {
      w.u32(0, ((opts.initRmp ?? true) ? 1 : 0) | (opts.raplDis ? 4 : 0) | (cth ? 8 : 0));
      if (cth) w.u16(0x10, opts.maxSnpAsid!);
    };
  }

  shutdown(): void {
    this.#run("SNP_SHUTDOWN");
  }

  shutdownEx(opts: { iommu?: boolean } = {}): void {
    this.#run("SNP_SHUTDOWN_EX", (w) => {
      w.u32(0, 8).u32(4, opts.iommu ? 1 : 0);
    });
  }

  dfFlush(): void {
    this.#run("SNP_DF_FLUSH");
  }

  platformStatus(): SnpPlatformStatus {
    let out = 0;
    this.#run(
      "SNP_PLATFORM_STATUS",
      (w) => {
        w.u64(0, BigInt(out));
      },
      () => {
        out = this.#alloc(SNP_PLATFORM_STATUS_SIZE);
      },
    );
    const r = new ByteReader(this.memory.read(out, SNP_PLATFORM_STATUS_SIZE), "SNP_PLATFORM_STATUS");
    return {
      apiMajor: r.u8(0),
      apiMinor: r.u8(1),
      state: SNP_PLATFORM_STATES[r.u8(2)] ?? "UNINIT",
      rmpInitialized: (r.u8(3) & 1) === 1,
      build: r.u32(4),
      raplDisabled: (r.u32(8) & 0x10) !== 0,
      ciphertextHidingCap: (r.u32(8) & 0x20) !== 0,
      ciphertextHidingEn: (r.u32(8) & 0x40) !== 0,
      guestCount: r.u32(0xc),
      currentTcb: r.u64(0x10),
      reportedTcb: r.u64(0x18),
    };
  }

  gctxCreate(gctxPa: number): void {
    this.#run("SNP_GCTX_CREATE", (w) => {
      w.u64(0, BigInt(gctxPa));
    });
  }

  decommission(gctxPa: number): void {
    this.#run("SNP_DECOMMISSION", (w) => {
      w.u64(0, BigInt(gctxPa));
    });
  }

  /**
   * SNP_PAGE_RECLAIM of the page at `pa` (bit 0 of PADDR: a 2 MiB page), returning the firmware's status: a host
   * that cannot reclaim a page keeps it out of use (Linux's `snp_leak_pages`) rather than fail, so it needs the status.
   */
  pageReclaimStatus(pa: number, opts: { largePage?: boolean } = {}): number {
    return this.status("SNP_PAGE_RECLAIM", (w) => {
      w.u64(0, BigInt(pa) | (opts.largePage ? 1n : 0n));
    });
  }

  activate(gctxPa: number, asid: number): void {
    this.#run("SNP_ACTIVATE", (w) => {
      w.u64(0, BigInt(gctxPa)).u32(8, asid);
    });
  }

  guestStatus(gctxPa: number): SnpGuestStatus {
    let out = 0;
    this.#run(
      "SNP_GUEST_STATUS",
      (w) => {
        w.u64(0, BigInt(gctxPa)).u64(8, BigInt(out));
      },
      () => {
        out = this.#alloc(SNP_GUEST_STATUS_SIZE);
      },
    );
    const r = new ByteReader(this.memory.read(out, SNP_GUEST_STATUS_SIZE), "SNP_GUEST_STATUS");
    return { policy: r.u64(0), asid: r.u32(8), state: SNP_GUEST_STATES[r.u8(0xc)] ?? "INIT" };
  }

  launchStart(
    gctxPa: number,
    opts: { policy: bigint; gosvw?: Uint8Array; maEn?: boolean; imiEn?: boolean },
  ): void {
    this.#run("SNP_LAUNCH_START", (w) => {
      w.u64(0, BigInt(gctxPa))
        .u64(8, opts.policy)
        .u32(0x18, (opts.maEn ? 1 : 0) | (opts.imiEn ? 2 : 0));
      if (opts.gosvw) w.set(0x20, opts.gosvw);
    });
  }

  /** The command-buffer filler of SNP_LAUNCH_UPDATE (shared with `status`). */
  static launchUpdateBuffer(gctxPa: number, p: SnpLaunchUpdateInput): (w: ByteWriter) => void {
    const perms = p.vmplPerms ?? [0, 0, 0];
    return (w) => {
      w.u64(0, BigInt(gctxPa))
        .u32(8, (p.largePage ? 1 : 0) | (SnpLaunchPageType[p.type] << 1) | (p.imi ? 0x10 : 0))
        .u64(0x10, BigInt(p.pa))
        .u32(0x18, ((perms[0] & 0xff) << 8) | ((perms[1] & 0xff) << 16) | ((perms[2] & 0xff) << 24));
    };
  }

  launchUpdate(gctxPa: number, p: SnpLaunchUpdateInput): void {
    this.#run("SNP_LAUNCH_UPDATE", SnpClient.launchUpdateBuffer(gctxPa, p));
  }

  launchFinish(gctxPa: number, opts: SnpLaunchFinishInput = {}): void {
    this.#runFinish(gctxPa, opts, true);
  }

  /** SNP_LAUNCH_FINISH's status, without throwing. */
  launchFinishStatus(gctxPa: number, opts: SnpLaunchFinishInput = {}): number {
    return this.#runFinish(gctxPa, opts, false);
  }

  #runFinish(gctxPa: number, opts: SnpLaunchFinishInput, raise: boolean): number {
    this.#next = 0;
    const idEn = opts.idBlock !== undefined;
    const block = idEn ? this.#put(opts.idBlock!.subarray(0, ID_BLOCK_SIZE)) : 0;
    const auth = idEn && opts.idAuth ? this.#put(opts.idAuth.subarray(0, ID_AUTH_SIZE)) : 0;
    const w = new ByteWriter(SNP_CMD_BUFFER_SIZE.SNP_LAUNCH_FINISH)
      .u64(0, BigInt(gctxPa))
      .u64(8, BigInt(block))
      .u64(0x10, BigInt(auth))
      .u64(0x18, (idEn ? 1n : 0n) | (opts.authorKeyEn ? 2n : 0n) | (opts.vcekDisabled ? 4n : 0n));
    if (opts.hostData) w.set(0x20, opts.hostData);
    const pa = this.#put(w.bytes);
    const status = this.sp.issue(SnpCmd.SNP_LAUNCH_FINISH, pa);
    if (raise && status !== SevStatus.SUCCESS) {
      throw new SevFirmwareError(SnpCmd.SNP_LAUNCH_FINISH, status, "SNP_LAUNCH_FINISH");
    }
    return status;
  }

  /** SNP_GUEST_REQUEST: relays the message page at `requestPa`; the firmware writes its response at `responsePa`. */
  guestRequest(gctxPa: number, requestPa: number, responsePa: number): number {
    return this.status("SNP_GUEST_REQUEST", (w) => {
      w.u64(0, BigInt(gctxPa)).u64(8, BigInt(requestPa)).u64(0x10, BigInt(responsePa));
    });
  }
}
