/**
 * Host physical memory (DRAM) as stored: a sparse set of 4 KiB frames, zero until written. It holds whatever bytes
 * were written — ciphertext for private guest pages, plaintext for shared ones. The memory-encryption engine sits
 * in front of it; the hypervisor's view reads it directly.
 */
export const PAGE_SIZE = 4096;

/** What the Secure Processor and the machine need from system memory: raw reads and writes by physical address. */
export interface SystemMemory {
  read(pa: number, length: number): Uint8Array;
  write(pa: number, data: Uint8Array): void;
  /**
   * The bytes of [pa, pa+length) themselves, when they are stored in one piece — a live view, so writing into it
   * writes memory; undefined otherwise (then read, change, write). Lets the Secure Processor measure and encrypt a
   * launch image where it lies instead of copying it out and back.
   */
  view?(pa: number, length: number): Uint8Array | undefined;
}

export class Dram implements SystemMemory {
  readonly #frames = new Map<number, Uint8Array>();

  constructor(readonly size: number) {}

  #check(pa: number, length: number): void {
    if (!Number.isSafeInteger(pa) || pa < 0 || length < 0 || pa + length > this.size) {
      throw new RangeError(
        `physical range 0x${pa.toString(16)}+${length} is outside DRAM (${this.size} bytes)`,
      );
    }
  }

  /** True when [pa, pa+length) lies inside DRAM. */
  contains(pa: number, length: number): boolean {
    return Number.isSafeInteger(pa) && pa >= 0 && length >= 0 && pa + length <= this.size;
  }

  read(pa: number, length: number): Uint8Array {
    this.#check(pa, length);
    const out = new Uint8Array(length);
    let o = 0;
    while (o < length) {
      const a = pa + o;
      const frame = Math.floor(a / PAGE_SIZE);
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, length - o);
      const f = this.#frames.get(frame);
      if (f) out.set(f.subarray(off, off + n), o);
      o += n;
    }
    return out;
  }

  write(pa: number, data: Uint8Array): void {
    this.#check(pa, data.length);
    let o = 0;
    while (o < data.length) {
      const a = pa + o;
      const frame = Math.floor(a / PAGE_SIZE);
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - o);
      let f = this.#frames.get(frame);
      if (!f && n === PAGE_SIZE) {
        o += this.#fillNewFrames(frame, data.subarray(o));
        continue;
      }
      if (!f) {
        f = new Uint8Array(PAGE_SIZE);
        this.#frames.set(frame, f);
      }
      f.set(data.subarray(o, o + n), off);
      o += n;
    }
  }

  /**
   * Writes the whole frames at the start of `data` that were never written, from `frame` on, as views of ONE copy
   * (a launch writes megabytes of firmware into fresh frames: one allocation and one copy instead of one per page).
   * Returns the bytes written.
   */
  #fillNewFrames(frame: number, data: Uint8Array): number {
    let k = 0;
    while ((k + 1) * PAGE_SIZE <= data.length && !this.#frames.has(frame + k)) k++;
    // A copy (Buffer's own slice would share the caller's bytes).
    const copy = new Uint8Array(data.subarray(0, k * PAGE_SIZE));
    for (let i = 0; i < k; i++)
      this.#frames.set(frame + i, copy.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    return k * PAGE_SIZE;
  }

  view(pa: number, length: number): Uint8Array | undefined {
    this.#check(pa, length);
    if (length === 0) return undefined;
    const first = Math.floor(pa / PAGE_SIZE);
    const f = this.#frames.get(first);
    if (!f) return undefined;
    let prev = f;
    for (let i = first + 1; i <= Math.floor((pa + length - 1) / PAGE_SIZE); i++) {
      const g = this.#frames.get(i);
      if (!g || g.buffer !== prev.buffer || g.byteOffset !== prev.byteOffset + PAGE_SIZE) return undefined;
      prev = g;
    }
    return new Uint8Array(f.buffer, f.byteOffset + (pa % PAGE_SIZE), length);
  }

  /** System physical addresses of every frame ever written, ascending (all others read as zero). */
  frameAddresses(): number[] {
    return [...this.#frames.keys()].sort((a, b) => a - b).map((f) => f * PAGE_SIZE);
  }

  /** Number of frames ever written (memory footprint of the emulation). */
  get framesInUse(): number {
    return this.#frames.size;
  }
}
