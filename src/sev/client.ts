/**
 * A typed client for the emulated Secure Processor — the role of Linux's `ccp` driver and KVM's SEV code: it
 * places command buffers and blobs in a scratch region of system memory the host owns, issues the command, and
 * turns a non-SUCCESS status into a `SevFirmwareError` carrying the status number and name.
 *
 * @example
 * ```ts
 * const { handle } = client.launchStart({ policy: 0x05 });
 * client.activate(handle, 1);
 * client.launchUpdateData(handle, imagePa, image.length);
 * ```
 */
import { SEV_CERT_SIZE } from "../certs/sev-cert.ts";
import { PACKET_HEADER_SIZE } from "../crypto/packet.ts";
import { SESSION_SIZE } from "../crypto/session.ts";
import { ByteReader, ByteWriter } from "../lib/bytes.ts";
import { MEASUREMENT_BLOB_SIZE } from "../measure/measurement.ts";
import { CMD_BUFFER_SIZE, Cmd, type CmdName } from "./commands.ts";
import { SevFirmwareError } from "./errors.ts";
import type { FirmwareMemory } from "./firmware-state.ts";
import type { SecureProcessor } from "./secure-processor.ts";
import { type GuestStateName, guestStateName, type PlatformStateName } from "./state-tables.ts";
import { SevStatus } from "./status.ts";

export interface ScratchRegion {
  /** System physical address of host-owned memory the client may use for buffers (16-byte aligned). */
  base: number;
  size: number;
}

export interface PlatformStatus {
  apiMajor: number;
  apiMinor: number;
  build: number;
  state: PlatformStateName;
  /** true when an owner imported its OCA (PEK_CERT_IMPORT). */
  externallyOwned: boolean;
  configEs: boolean;
  guestCount: number;
}

export interface GuestStatus {
  policy: number;
  asid: number;
  state: GuestStateName;
}

export interface Packet {
  header: Uint8Array;
  payload: Uint8Array;
}

const PLATFORM_STATE_NAMES: PlatformStateName[] = ["UNINIT", "INIT", "WORKING"];

export class SevClient {
  #next = 0;

  constructor(
    readonly sp: SecureProcessor,
    private readonly memory: FirmwareMemory,
    private readonly scratch: ScratchRegion,
  ) {}

  /** Reserves `size` bytes of scratch (16-byte aligned) for the current command. */
  #alloc(size: number): number {
    const pa = this.scratch.base + this.#next;
    this.#next += Math.ceil(Math.max(size, 1) / 16) * 16;
    if (this.#next > this.scratch.size) throw new RangeError("SEV client scratch region exhausted");
    return pa;
  }

  #put(data: Uint8Array): number {
    const pa = this.#alloc(data.length);
    this.memory.write(pa, data);
    return pa;
  }

  /** Issues `name` with the given command-buffer bytes; returns the buffer as the firmware left it. */
  #run(name: CmdName, fill?: (w: ByteWriter) => void): ByteReader {
    this.#next = 0;
    const size = CMD_BUFFER_SIZE[name];
    const w = new ByteWriter(size);
    fill?.(w);
    const pa = size > 0 ? this.#put(w.bytes) : 0;
    const status = this.sp.issue(Cmd[name], pa);
    if (status !== SevStatus.SUCCESS) throw new SevFirmwareError(Cmd[name], status);
    return new ByteReader(size > 0 ? this.memory.read(pa, size) : new Uint8Array(), name);
  }

  /** Like #run, but allocations for blobs happen inside `fill` before the command buffer is placed. */
  #runWith(name: CmdName, prepare: () => (w: ByteWriter) => void): ByteReader {
    this.#next = 0;
    const fill = prepare();
    const size = CMD_BUFFER_SIZE[name];
    const w = new ByteWriter(size);
    fill(w);
    const pa = this.#put(w.bytes);
    const status = this.sp.issue(Cmd[name], pa);
    if (status !== SevStatus.SUCCESS) throw new SevFirmwareError(Cmd[name], status);
    return new ByteReader(this.memory.read(pa, size), name);
  }

  /** INIT; with `es`, a 1 MiB-aligned 1 MiB TMR at `tmrPa` is required (docs/sev-interface.md §2). */
  init(opts: { es: boolean; tmrPa?: number }): void {
    this.#run("INIT", (w) => {
      w.u32(0, opts.es ? 1 : 0);
      if (opts.es) w.u64(8, BigInt(opts.tmrPa ?? 0)).u32(0x10, 1024 * 1024);
    });
  }

  shutdown(): void {
    this.#run("SHUTDOWN");
  }

  platformReset(): void {
    this.#run("PLATFORM_RESET");
  }

  platformStatus(): PlatformStatus {
    const r = this.#run("PLATFORM_STATUS");
    return {
      apiMajor: r.u8(0),
      apiMinor: r.u8(1),
      state: PLATFORM_STATE_NAMES[r.u8(2)] ?? "UNINIT",
      externallyOwned: (r.u8(3) & 1) === 1,
      configEs: (r.u8(4) & 1) === 1,
      build: r.u8(7),
      guestCount: r.u32(8),
    };
  }

  pekGen(): void {
    this.#run("PEK_GEN");
  }

  pdhGen(): void {
    this.#run("PDH_GEN");
  }

  dfFlush(): void {
    this.#run("DF_FLUSH");
  }

  pekCsr(): Uint8Array {
    let out = 0;
    this.#runWith("PEK_CSR", () => {
      out = this.#alloc(SEV_CERT_SIZE);
      return (w) => w.u64(0, BigInt(out)).u32(8, SEV_CERT_SIZE);
    });
    return this.memory.read(out, SEV_CERT_SIZE);
  }

  pekCertImport(pek: Uint8Array, oca: Uint8Array): void {
    this.#runWith("PEK_CERT_IMPORT", () => {
      const p = this.#put(pek);
      const o = this.#put(oca);
      return (w) => w.u64(0, BigInt(p)).u32(8, pek.length).u64(0x10, BigInt(o)).u32(0x18, oca.length);
    });
  }

  /** PDH_CERT_EXPORT: the PDH and the chain PEK ‖ OCA ‖ CEK (CEK not ASK-signed). */
  pdhCertExport(): { pdh: Uint8Array; pek: Uint8Array; oca: Uint8Array; cek: Uint8Array } {
    let pdhPa = 0;
    let chainPa = 0;
    this.#runWith("PDH_CERT_EXPORT", () => {
      pdhPa = this.#alloc(SEV_CERT_SIZE);
      chainPa = this.#alloc(3 * SEV_CERT_SIZE);
      return (w) =>
        w
          .u64(0, BigInt(pdhPa))
          .u32(8, SEV_CERT_SIZE)
          .u64(0x10, BigInt(chainPa))
          .u32(0x18, 3 * SEV_CERT_SIZE);
    });
    const chain = this.memory.read(chainPa, 3 * SEV_CERT_SIZE);
    return {
      pdh: this.memory.read(pdhPa, SEV_CERT_SIZE),
      pek: chain.slice(0, SEV_CERT_SIZE),
      oca: chain.slice(SEV_CERT_SIZE, 2 * SEV_CERT_SIZE),
      cek: chain.slice(2 * SEV_CERT_SIZE),
    };
  }

  getId(): Uint8Array {
    let out = 0;
    this.#runWith("GET_ID", () => {
      out = this.#alloc(64);
      return (w) => w.u64(0, BigInt(out)).u32(8, 64);
    });
    return this.memory.read(out, 64);
  }

  /** LAUNCH_START. Without `godhCert`/`session` the firmware picks TEK/TIK. `shareWith` asks for key sharing. */
  launchStart(opts: { policy: number; godhCert?: Uint8Array; session?: Uint8Array; shareWith?: number }): {
    handle: number;
  } {
    const r = this.#runWith("LAUNCH_START", () => {
      const dh = opts.godhCert ? this.#put(opts.godhCert) : 0;
      const s = opts.session ? this.#put(opts.session) : 0;
      return (w) =>
        w
          .u32(0, opts.shareWith ?? 0)
          .u32(4, opts.policy)
          .u64(8, BigInt(dh))
          .u32(0x10, opts.godhCert?.length ?? 0)
          .u64(0x18, BigInt(s))
          .u32(0x20, opts.session?.length ?? 0);
    });
    return { handle: r.u32(0) };
  }

  activate(handle: number, asid: number): void {
    this.#run("ACTIVATE", (w) => w.u32(0, handle).u32(4, asid));
  }

  deactivate(handle: number): void {
    this.#run("DEACTIVATE", (w) => w.u32(0, handle));
  }

  decommission(handle: number): void {
    this.#run("DECOMMISSION", (w) => w.u32(0, handle));
  }

  guestStatus(handle: number): GuestStatus {
    const r = this.#run("GUEST_STATUS", (w) => w.u32(0, handle));
    return { policy: r.u32(4), asid: r.u32(8), state: guestStateName(r.u8(0xc)) };
  }

  /** LAUNCH_UPDATE_DATA over guest memory already in place at system physical address `pa`. */
  launchUpdateData(handle: number, pa: number, length: number): void {
    this.#run("LAUNCH_UPDATE_DATA", (w) => w.u32(0, handle).u64(8, BigInt(pa)).u32(0x10, length));
  }

  launchUpdateVmsa(handle: number, pa: number): void {
    this.#run("LAUNCH_UPDATE_VMSA", (w) => w.u32(0, handle).u64(8, BigInt(pa)).u32(0x10, 4096));
  }

  /** LAUNCH_MEASURE: the 48-byte MEASURE ‖ MNONCE blob. */
  launchMeasure(handle: number): Uint8Array {
    let out = 0;
    this.#runWith("LAUNCH_MEASURE", () => {
      out = this.#alloc(MEASUREMENT_BLOB_SIZE);
      return (w) => w.u32(0, handle).u64(8, BigInt(out)).u32(0x10, MEASUREMENT_BLOB_SIZE);
    });
    return this.memory.read(out, MEASUREMENT_BLOB_SIZE);
  }

  /** LAUNCH_SECRET: header (0x34) and payload from the guest owner, written at guest physical address `guestPa`. */
  launchSecret(handle: number, packet: Packet, guestPa: number): void {
    this.#inboundPacket("LAUNCH_SECRET", handle, packet, guestPa);
  }

  /** LAUNCH_SECRET and RECEIVE_UPDATE_*: header and payload in, written into guest memory at `guestPa` (docs/sev-interface.md §4.1). */
  #inboundPacket(
    name: "LAUNCH_SECRET" | "RECEIVE_UPDATE_DATA" | "RECEIVE_UPDATE_VMSA",
    handle: number,
    packet: Packet,
    guestPa: number,
  ): void {
    this.#runWith(name, () => {
      const h = this.#put(packet.header);
      const t = this.#put(packet.payload);
      return (w) =>
        w
          .u32(0, handle)
          .u64(0x08, BigInt(h))
          .u32(0x10, packet.header.length)
          .u64(0x18, BigInt(guestPa))
          .u32(0x20, packet.payload.length)
          .u64(0x28, BigInt(t))
          .u32(0x30, packet.payload.length);
    });
  }

  launchFinish(handle: number): void {
    this.#run("LAUNCH_FINISH", (w) => w.u32(0, handle));
  }

  dbgDecrypt(handle: number, srcPa: number, dstPa: number, length: number): void {
    this.#run("DBG_DECRYPT", (w) =>
      w.u32(0, handle).u64(8, BigInt(srcPa)).u64(0x10, BigInt(dstPa)).u32(0x18, length),
    );
  }

  dbgEncrypt(handle: number, srcPa: number, dstPa: number, length: number): void {
    this.#run("DBG_ENCRYPT", (w) =>
      w.u32(0, handle).u64(8, BigInt(srcPa)).u64(0x10, BigInt(dstPa)).u32(0x18, length),
    );
  }

  /**
   * SEND_START toward a receiver whose PDH, PEK ‖ OCA ‖ CEK and ASK ‖ ARK are given. Returns the session blob for
   * the receiver's RECEIVE_START and the guest policy.
   */
  sendStart(
    handle: number,
    receiver: { pdh: Uint8Array; platCerts: Uint8Array; amdCerts: Uint8Array },
  ): { session: Uint8Array; policy: number } {
    let sessionPa = 0;
    const r = this.#runWith("SEND_START", () => {
      const pdh = this.#put(receiver.pdh);
      const plat = this.#put(receiver.platCerts);
      const amd = this.#put(receiver.amdCerts);
      sessionPa = this.#alloc(SESSION_SIZE);
      return (w) =>
        w
          .u32(0, handle)
          .u64(0x08, BigInt(pdh))
          .u32(0x10, receiver.pdh.length)
          .u64(0x18, BigInt(plat))
          .u32(0x20, receiver.platCerts.length)
          .u64(0x28, BigInt(amd))
          .u32(0x30, receiver.amdCerts.length)
          .u64(0x38, BigInt(sessionPa))
          .u32(0x40, SESSION_SIZE);
    });
    return { session: this.memory.read(sessionPa, SESSION_SIZE), policy: r.u32(4) };
  }

  #sendUpdate(
    name: "SEND_UPDATE_DATA" | "SEND_UPDATE_VMSA",
    handle: number,
    guestPa: number,
    length: number,
  ): Packet {
    let hdr = 0;
    let trans = 0;
    this.#runWith(name, () => {
      hdr = this.#alloc(PACKET_HEADER_SIZE);
      trans = this.#alloc(length);
      return (w) =>
        w
          .u32(0, handle)
          .u64(0x08, BigInt(hdr))
          .u32(0x10, PACKET_HEADER_SIZE)
          .u64(0x18, BigInt(guestPa))
          .u32(0x20, length)
          .u64(0x28, BigInt(trans))
          .u32(0x30, length);
    });
    return { header: this.memory.read(hdr, PACKET_HEADER_SIZE), payload: this.memory.read(trans, length) };
  }

  sendUpdateData(handle: number, guestPa: number, length: number): Packet {
    return this.#sendUpdate("SEND_UPDATE_DATA", handle, guestPa, length);
  }

  sendUpdateVmsa(handle: number, vmsaPa: number): Packet {
    return this.#sendUpdate("SEND_UPDATE_VMSA", handle, vmsaPa, 4096);
  }

  sendFinish(handle: number): void {
    this.#run("SEND_FINISH", (w) => w.u32(0, handle));
  }

  sendCancel(handle: number): void {
    this.#run("SEND_CANCEL", (w) => w.u32(0, handle));
  }

  receiveStart(opts: { policy: number; senderPdh: Uint8Array; session: Uint8Array }): { handle: number } {
    const r = this.#runWith("RECEIVE_START", () => {
      const pdh = this.#put(opts.senderPdh);
      const s = this.#put(opts.session);
      return (w) =>
        w
          .u32(0, 0)
          .u32(4, opts.policy)
          .u64(8, BigInt(pdh))
          .u32(0x10, opts.senderPdh.length)
          .u64(0x18, BigInt(s))
          .u32(0x20, opts.session.length);
    });
    return { handle: r.u32(0) };
  }

  receiveUpdateData(handle: number, packet: Packet, guestPa: number): void {
    this.#inboundPacket("RECEIVE_UPDATE_DATA", handle, packet, guestPa);
  }

  receiveUpdateVmsa(handle: number, packet: Packet, vmsaPa: number): void {
    this.#inboundPacket("RECEIVE_UPDATE_VMSA", handle, packet, vmsaPa);
  }

  receiveFinish(handle: number): void {
    this.#run("RECEIVE_FINISH", (w) => w.u32(0, handle));
  }
}
