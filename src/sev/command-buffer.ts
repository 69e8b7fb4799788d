/**
 * A command buffer read from system memory at the address the host gave. Handlers read inputs with the LE reader
 * and stage outputs; outputs reach memory only through `commit` (on SUCCESS) or `commitLengths` (the needed
 * lengths written back with INVALID_LENGTH), so a failed command changes nothing else.
 */
import { ByteReader, ByteWriter } from "../lib/bytes.ts";
import type { FirmwareMemory } from "./firmware-state.ts";

export class CommandBuffer {
  readonly r: ByteReader;
  readonly #out: ByteWriter;
  readonly #dirty = new Set<number>();
  readonly #lengthFields = new Set<number>();

  constructor(
    private readonly memory: FirmwareMemory,
    readonly pa: number,
    bytes: Uint8Array,
  ) {
    this.r = new ByteReader(bytes, "command buffer");
    this.#out = new ByteWriter(bytes.length);
    this.#out.set(0, bytes);
  }

  /** A 64-bit address field as a safe number, or undefined when it cannot be a system address. */
  addr(offset: number): number | undefined {
    const v = this.r.u64(offset);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  }

  setU32(offset: number, v: number): void {
    this.#out.u32(offset, v);
    this.#dirty.add(offset);
  }

  setU8(offset: number, v: number): void {
    this.#out.u8(offset, v);
    this.#dirty.add(offset);
  }

  /** Stages a needed-length write-back that survives an INVALID_LENGTH failure. */
  setLength(offset: number, v: number): void {
    this.setU32(offset, v);
    this.#lengthFields.add(offset);
  }

  commit(): void {
    if (this.#dirty.size > 0) this.memory.write(this.pa, this.#out.bytes);
  }

  commitLengths(): void {
    if (this.#lengthFields.size === 0) return;
    const merged = this.r.slice(0, this.r.length);
    for (const o of this.#lengthFields) merged.set(this.#out.bytes.subarray(o, o + 4), o);
    this.memory.write(this.pa, merged);
  }
}
