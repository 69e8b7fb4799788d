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
      if (!f) {
        f = new Uint8Array(PAGE_SIZE);
        this.#frames.set(frame, f);
      }
      f.set(data.subarray(o, o + n), off);
      o += n;
    }
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
