/**
 * Test support: an independent scanner for 64-bit canaries in bytes a hypervisor can read — at every offset
 * (aligned or not), in either byte order. It shares no code with the experiment it checks.
 *
 * A 2^26-bit filter on the first four bytes of each encoding keeps the byte loop cheap; candidates are confirmed
 * byte by byte.
 */

const FILTER_BITS = 26;
const FILTER_MASK = (1 << FILTER_BITS) - 1;

function encodings(v: bigint): Uint8Array[] {
  const le = new Uint8Array(8);
  new DataView(le.buffer).setBigUint64(0, v, true);
  return [le, le.slice().reverse()];
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

export class CanaryScanner {
  readonly #filter = new Uint8Array(1 << (FILTER_BITS - 3));
  readonly #candidates = new Map<number, { bytes: Uint8Array; value: bigint }[]>();
  #count = 0;

  get size(): number {
    return this.#count;
  }

  add(value: bigint): void {
    this.#count++;
    for (const enc of encodings(value)) {
      const p = u32le(enc, 0);
      this.#filter[(p & FILTER_MASK) >>> 3]! |= 1 << (p & 7);
      const key = p & 0x3fff_ffff;
      const list = this.#candidates.get(key);
      if (list) list.push({ bytes: enc, value });
      else this.#candidates.set(key, [{ bytes: enc, value }]);
    }
  }

  /** Every added value that occurs in `bytes`, with the offset of each occurrence. */
  scan(bytes: Uint8Array): { value: bigint; offset: number }[] {
    const hits: { value: bigint; offset: number }[] = [];
    const filter = this.#filter;
    const n = bytes.length - 8;
    if (n < 0) return hits;
    let w = u32le(bytes, 0);
    for (let i = 0; i <= n; i++) {
      if (i > 0) w = ((w >>> 8) | (bytes[i + 3]! << 24)) >>> 0;
      if ((filter[(w & FILTER_MASK) >>> 3]! & (1 << (w & 7))) === 0) continue;
      const list = this.#candidates.get(w & 0x3fff_ffff);
      if (!list) continue;
      for (const c of list) {
        let same = true;
        for (let k = 0; k < 8 && same; k++) same = bytes[i + k] === c.bytes[k];
        if (same) hits.push({ value: c.value, offset: i });
      }
    }
    return hits;
  }
}
