/**
 * Little-endian byte helpers shared by every binary codec (docs/sev-interface.md §0.2: every multi-byte integer in a
 * firmware buffer is little-endian, and so are the big numbers of AMD formats).
 */
import { timingSafeEqual } from "node:crypto";
import { CiphervisorError } from "../errors.ts";

/** Reads fixed-offset little-endian fields from a buffer, refusing to read past its end. */
export class ByteReader {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly what = "buffer",
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number {
    return this.bytes.length;
  }
  private check(offset: number, size: number): void {
    if (offset < 0 || offset + size > this.bytes.length) {
      throw new CiphervisorError(
        "TRUNCATED",
        `${this.what} is ${this.bytes.length} bytes; reading ${size} bytes at offset 0x${offset.toString(16)} needs ${offset + size}`,
      );
    }
  }
  u8(offset: number): number {
    this.check(offset, 1);
    return this.view.getUint8(offset);
  }
  u16(offset: number): number {
    this.check(offset, 2);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number): number {
    this.check(offset, 4);
    return this.view.getUint32(offset, true);
  }
  u64(offset: number): bigint {
    this.check(offset, 8);
    return this.view.getBigUint64(offset, true);
  }
  /** A copy of `size` bytes at `offset`. */
  slice(offset: number, size: number): Uint8Array {
    this.check(offset, size);
    return this.bytes.slice(offset, offset + size);
  }
}

/** Writes fixed-offset little-endian fields into a zero-filled buffer of fixed size. */
export class ByteWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(offset: number, v: number): this {
    this.view.setUint8(offset, v);
    return this;
  }
  u16(offset: number, v: number): this {
    this.view.setUint16(offset, v, true);
    return this;
  }
  u32(offset: number, v: number): this {
    this.view.setUint32(offset, v >>> 0, true);
    return this;
  }
  u64(offset: number, v: bigint): this {
    this.view.setBigUint64(offset, BigInt.asUintN(64, v), true);
    return this;
  }
  set(offset: number, data: Uint8Array): this {
    if (offset + data.length > this.bytes.length) {
      throw new RangeError(
        `write of ${data.length} bytes at 0x${offset.toString(16)} overflows ${this.bytes.length}`,
      );
    }
    this.bytes.set(data, offset);
    return this;
  }
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/**
 * Strict hex decoding: an optional `0x` prefix, an even number of hex digits, optionally an exact byte length.
 * @throws CiphervisorError INVALID_INPUT naming `what`.
 */
export function fromHex(s: string, what = "hex value", length?: number): Uint8Array {
  const t = s.trim().replace(/^0x/i, "");
  if (t.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(t)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${what} is not hex: '${s.length > 40 ? `${s.slice(0, 40)}…` : s}'`,
    );
  }
  const out = new Uint8Array(Buffer.from(t, "hex"));
  if (length !== undefined && out.length !== length) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${what} must be ${length} bytes (${length * 2} hex digits), got ${out.length}`,
    );
  }
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u32le(v: number): Uint8Array {
  return new ByteWriter(4).u32(0, v).bytes;
}

export function u16le(v: number): Uint8Array {
  return new ByteWriter(2).u16(0, v).bytes;
}

/** Constant-time equality for MACs and digests (length mismatch is simply false). */
export function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Unsigned big integer from little-endian bytes (AMD stores key material this way, docs/sev-interface.md §15 pitfall 1). */
export function bigFromLE(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

/** Little-endian bytes of `v`, zero-filled to `size` bytes. */
export function bigToLE(v: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = v;
  for (let i = 0; i < size; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  if (x !== 0n) throw new RangeError(`integer does not fit in ${size} bytes`);
  return out;
}

export function bigFromBE(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${toHex(b)}`);
}

export function bigToBE(v: bigint, size: number): Uint8Array {
  return bigToLE(v, size).reverse();
}

/** A reversed copy (little-endian field ↔ big-endian integer encoding). */
export function reversed(b: Uint8Array): Uint8Array {
  return b.slice().reverse();
}

export function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/**
 * EFI GUID text ↔ bytes in mixed-endian (`bytes_le`) order, as every OVMF, hashes and secret table uses
 * (docs/sev-interface.md §8.3, §15 pitfall 10).
 */
export function guidToBytes(guid: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(guid.trim());
  if (!m)
    throw new CiphervisorError(
      "INVALID_INPUT",
      `not a GUID: '${guid}' (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`,
    );
  const [, a, b, c, d, e] = m as unknown as [string, string, string, string, string, string];
  return concat(reversed(fromHex(a)), reversed(fromHex(b)), reversed(fromHex(c)), fromHex(d), fromHex(e));
}

export function guidFromBytes(b: Uint8Array): string {
  if (b.length !== 16) throw new RangeError("a GUID is 16 bytes");
  const h = (x: Uint8Array) => toHex(x);
  return [
    h(reversed(b.subarray(0, 4))),
    h(reversed(b.subarray(4, 6))),
    h(reversed(b.subarray(6, 8))),
    h(b.subarray(8, 10)),
    h(b.subarray(10, 16)),
  ].join("-");
}
