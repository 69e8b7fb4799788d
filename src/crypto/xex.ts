/**
 * The memory-encryption cipher of SEV and SEV-ES (docs/sev-interface.md §13.2): AES-128 per 16-byte block with a tweak
 * taken from the **system physical address**:
 *
 * ```
 * T(pa) = XOR of t_i over every set bit i ≥ 4 of pa
 * XEX (Rome and later): C = AES_K(P ⊕ T(pa)) ⊕ T(pa)
 * XE  (Naples):         C = AES_K(P ⊕ T(pa))
 * ```
 *
 * Deterministic per (key, address) on purpose: that is what real hardware does, and what makes the ciphertext
 * side channels, replay and block moves of docs/threat-model.md reproducible.
 *
 * Two engines compute exactly this, byte for byte (src/crypto/xex-native.test.ts):
 *
 * - **native** (`NativeMemoryCipher`, the default where it loads): a Node-API addon in C with AES-NI,
 *   native/xex/xex.c, built by scripts/build-native.mjs on x64 and loaded by ./xex-native.ts. Eight blocks in
 *   flight, the tweak folded into AES's first and last round keys, key schedule and tweak tables in native memory
 *   (wiped when the cipher is collected). The machine encrypts and decrypts whole pages at every VMRUN/#VMEXIT, and
 *   `npm run bench` holds this engine to ≥ 0.5 × `openssl speed -evp aes-128-xts` on 4 KiB pages.
 * - **wasm** (`WasmMemoryCipher`, the reference and the fallback: other architectures, no AES-NI, an installed
 *   package, which ships no addon, or `CIPHERVISOR_XEX=js`): all blocks of a call go through one long-lived Node
 *   AES-128-ECB context, and the tweak is applied before and after by a small WebAssembly SIMD loop from
 *   precomputed per-page tables (see `TweakEngine`).
 *
 * Both use T's linearity: T(pa) = T(page base) ⊕ T(offset in page), from a 4 KiB in-page table and one table per
 * byte of the page number. `memoryEngineKind()` says which one `MemoryCipher` uses in this process.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { RandomSource } from "./random.ts";
import { type XexAddonCipher, type XexTweaksHandle, xexAddon } from "./xex-native.ts";

export type MemoryCipherMode = "xe" | "xex";

/** Number of address bits that feed the tweak (bits 4..51 of a 52-bit physical address). */
export const TWEAK_ADDRESS_BITS = 52;

/** The per-bit tweak constants t_0 … t_51, 16 bytes each (t_0..t_3 are zero: they are offsets inside a block). */
export type TweakConstants = Uint8Array[];

const PAGE = 4096;

/** Fresh random tweak constants (XEX draws them at every platform boot). */
export function randomTweakConstants(rng: RandomSource): TweakConstants {
  const t: Uint8Array[] = [];
  for (let i = 0; i < TWEAK_ADDRESS_BITS; i++) t.push(i < 4 ? new Uint8Array(16) : rng.bytes(16));
  return t;
}

/**
 * Fixed XE constants. The real Naples constants are not public; these are fixed, documented stand-ins with the
 * same property the published attacks use: linear in the address bits and identical across boots.
 */
export function fixedXeTweakConstants(): TweakConstants {
  const t: Uint8Array[] = [];
  for (let i = 0; i < TWEAK_ADDRESS_BITS; i++) {
    const c = new Uint8Array(16);
    if (i >= 4) for (let j = 0; j < 16; j++) c[j] = (i * 0x9d + j * 0x3b + ((i * j) & 0xff)) & 0xff;
    t.push(c);
  }
  return t;
}

/** T(pa) for the 16-byte block at `pa` (pa must be 16-byte aligned). The reference formula, one bit at a time. */
export function tweak(constants: TweakConstants, pa: number): Uint8Array {
  const out = new Uint8Array(16);
  let a = Math.floor(pa / 16);
  for (let bit = 4; a > 0 && bit < TWEAK_ADDRESS_BITS; bit++, a = Math.floor(a / 2)) {
    if (a % 2 === 1) {
      const c = constants[bit]!;
      for (let j = 0; j < 16; j++) out[j]! ^= c[j]!;
    }
  }
  return out;
}

/** Little-endian 32-bit words of a 16-byte value (XOR is byte-wise, so any fixed byte↔word mapping works). */
function words(b: Uint8Array): Int32Array {
  return new Int32Array(new Uint8Array(b).buffer);
}

/**
 * A 147-byte WebAssembly module with one SIMD loop, so the two tweak passes cost far less than the AES call
 * between them (a plain JavaScript XOR loop made the engine run at ~0.3 × raw ECB). Source:
 *
 * ```wat
 * (module
 *   (memory (export "memory") 1)
 *   (func (export "xorTweak") (param $dst i32) (param $tw i32) (param $len i32)
 *         (param $t0 i32) (param $t1 i32) (param $t2 i32) (param $t3 i32)
 *     (local $k v128) (local $end i32)
 *     ;; $k = T(page base) as four lanes; every 16-byte block of [dst, dst+len) ^= [tw] ^ $k, tw advancing too
 *     (local.set $k (i32x4.replace_lane 3 (i32x4.replace_lane 2 (i32x4.replace_lane 1
 *       (i32x4.splat (local.get $t0)) (local.get $t1)) (local.get $t2)) (local.get $t3)))
 *     (local.set $end (i32.add (local.get $dst) (local.get $len)))
 *     (block (br_if 0 (i32.ge_u (local.get $dst) (local.get $end)))
 *       (loop
 *         (v128.store (local.get $dst) (v128.xor (v128.xor (v128.load (local.get $dst))
 *           (v128.load (local.get $tw))) (local.get $k)))
 *         (local.set $tw (i32.add (local.get $tw) (i32.const 16)))
 *         (br_if 0 (i32.lt_u (local.tee $dst (i32.add (local.get $dst) (i32.const 16))) (local.get $end)))))))
 * ```
 */
const XOR_TWEAK_WASM =
  "AGFzbQEAAAABCwFgB39/f39/f38AAwIBAAUDAQABBxUCBm1lbW9yeQIACHhvclR3ZWFrAAAKXAFaAgF7AX8gA/0RIAT9HAEgBf0cAiAG/RwDIQcgACACaiEIAkAgACAITw0AA0AgACAA/QAEACAB/QAEAP1RIAf9Uf0LBAAgAUEQaiEBIABBEGoiACAISQ0ACwsL";

/**
 * The slice of the WebAssembly JS API used here. The project compiles against lib ES2022 + @types/node 20, which
 * do not declare the `WebAssembly` namespace, although every Node ≥ 8 provides it.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
/** Compiled at the first WebAssembly engine: a process on the native engine never needs it. */
let xorTweakModule: object | undefined;

type XorTweak = (
  dst: number,
  tw: number,
  len: number,
  t0: number,
  t1: number,
  t2: number,
  t3: number,
) => void;

/** Wasm memory layout: the 4 KiB table of in-page tweaks T(0), T(16), …, T(4080), then the scratch area. */
const SCRATCH = PAGE;
/** Page-number bytes that reach the tweak: address bits 12..51 are 40 bits. */
const PAGE_NUMBER_BYTES = 5;
const WASM_PAGE = 65536;

/**
 * Applies T(pa) to buffers for one set of tweak constants. Because T is linear, T(pa) = T(page base) ⊕ T(offset
 * in page): the in-page table is built once, and per page only four words of T(page base) are derived.
 */
class TweakEngine {
  readonly #memory: WasmMemory;
  readonly #xor: XorTweak;
  /**
   * T(page base) by bytes of the page number: for byte position j (page-number bits 8j..8j+7, address bits
   * 12+8j..) and value v, four words = XOR of t_(12+8j+i) over the set bits i of v. Five lookups replace a walk
   * over up to 40 address bits.
   */
  readonly #pageTables: Int32Array;

  constructor(constants: TweakConstants) {
    xorTweakModule ??= new wasm.Module(Buffer.from(XOR_TWEAK_WASM, "base64"));
    const instance = new wasm.Instance(xorTweakModule);
    this.#memory = instance.exports["memory"] as WasmMemory;
    this.#xor = instance.exports["xorTweak"] as XorTweak;
    const table = new Uint8Array(this.#memory.buffer, 0, PAGE);
    for (let off = 0; off < PAGE; off += 16) table.set(tweak(constants, off), off);
    this.#pageTables = new Int32Array(PAGE_NUMBER_BYTES * 256 * 4);
    for (let j = 0; j < PAGE_NUMBER_BYTES; j++) {
      for (let v = 1; v < 256; v++) {
        const at = (j * 256 + v) * 4;
        for (let i = 0; i < 8; i++) {
          const bit = 12 + 8 * j + i;
          if ((v >> i) & 1 && bit < TWEAK_ADDRESS_BITS) {
            const w = words(constants[bit]!);
            for (let k = 0; k < 4; k++) this.#pageTables[at + k]! ^= w[k]!;
          }
        }
      }
    }
  }

  /** Copies `input` into the scratch area (growing it when needed) and returns the scratch view. */
  load(input: Uint8Array): Uint8Array {
    const need = SCRATCH + input.length;
    const have = this.#memory.buffer.byteLength;
    if (need > have) this.#memory.grow(Math.ceil((need - have) / WASM_PAGE));
    const view = new Uint8Array(this.#memory.buffer, SCRATCH, input.length);
    view.set(input);
    return view;
  }

  /** XORs T(pa + 16·k) into block k of the first `n` scratch bytes. */
  apply(pa: number, n: number): void {
    const tables = this.#pageTables;
    let done = 0;
    while (done < n) {
      const addr = pa + done;
      const pageOff = addr % PAGE;
      const pageNo = (addr - pageOff) / PAGE;
      let t0 = 0;
      let t1 = 0;
      let t2 = 0;
      let t3 = 0;
      // Up to 40 page-number bits: the low 32 as an int, then the rest.
      let lo = (pageNo % 0x1_0000_0000) >>> 0;
      let hi = Math.floor(pageNo / 0x1_0000_0000) >>> 0;
      for (let j = 0; j < PAGE_NUMBER_BYTES; j++) {
        const at = (j * 256 + (lo & 0xff)) * 4;
        t0 ^= tables[at]!;
        t1 ^= tables[at + 1]!;
        t2 ^= tables[at + 2]!;
        t3 ^= tables[at + 3]!;
        lo = (lo >>> 8) | ((hi & 0xff) << 24);
        hi >>>= 8;
      }
      const count = Math.min(PAGE - pageOff, n - done);
      this.#xor(SCRATCH + done, pageOff, count, t0, t1, t2, t3);
      done += count;
    }
  }

  /** Copies the first `out.length` scratch bytes back into `out`. */
  store(out: Uint8Array): void {
    out.set(new Uint8Array(this.#memory.buffer, SCRATCH, out.length));
  }
}

/** One engine per set of constants: every key slot of a platform boot shares the same constants (docs/sev-interface.md §13.2). */
const engines = new WeakMap<TweakConstants, TweakEngine>();
function engineFor(constants: TweakConstants): TweakEngine {
  let e = engines.get(constants);
  if (!e) {
    e = new TweakEngine(constants);
    engines.set(constants, e);
  }
  return e;
}

/**
 * The cipher's output as a plain Uint8Array over its own ArrayBuffer: a view when OpenSSL's result already owns its
 * buffer (the usual case), otherwise a copy, so no caller ever sees a pooled buffer's neighbours.
 */
function owned(b: Buffer): Uint8Array {
  if (b.byteOffset === 0 && b.buffer.byteLength === b.length) return new Uint8Array(b.buffer, 0, b.length);
  return new Uint8Array(b);
}

function checkKey(key: Uint8Array, constants: TweakConstants): void {
  if (key.length !== 16) throw new RangeError("AES-128 key must be 16 bytes");
  if (constants.length !== TWEAK_ADDRESS_BITS) throw new RangeError("expected 52 tweak constants");
}

function checkBlocks(pa: number, data: Uint8Array): void {
  if (!Number.isSafeInteger(pa) || pa < 0 || pa % 16 !== 0 || data.length % 16 !== 0)
    throw new RangeError("memory cipher works on aligned 16-byte blocks");
}

function checkOutput(data: Uint8Array, out: Uint8Array): void {
  if (out.length !== data.length) throw new RangeError("output must be a Uint8Array of the input's length");
}

/** What both engines offer; `MemoryCipher` is one of them, picked per process. */
export interface MemoryCipherEngine {
  readonly mode: MemoryCipherMode;
  /** A fresh array over its own ArrayBuffer, which the caller owns; `plaintext` is not modified. */
  encrypt(pa: number, plaintext: Uint8Array): Uint8Array;
  decrypt(pa: number, ciphertext: Uint8Array): Uint8Array;
  /** The same bytes written into `out` (input's length; may be the input itself), for callers that have a buffer. */
  encryptInto(pa: number, plaintext: Uint8Array, out: Uint8Array): void;
  decryptInto(pa: number, ciphertext: Uint8Array, out: Uint8Array): void;
}

/**
 * The WebAssembly engine, one key's cipher: whole buffers go through a single AES call — the tweak is XORed into a
 * copy, the copy is encrypted as ECB, and (XEX) the tweak is XORed into the result again.
 */
export class WasmMemoryCipher implements MemoryCipherEngine {
  readonly mode: MemoryCipherMode;
  readonly #encryptor;
  readonly #decryptor;
  readonly #engine: TweakEngine;

  constructor(key: Uint8Array, constants: TweakConstants, mode: MemoryCipherMode) {
    checkKey(key, constants);
    this.mode = mode;
    // ECB is stateless across blocks, so one context serves every call as long as `final()` is never called and
    // every input is a whole number of blocks (auto-padding off: OpenSSL then returns all blocks at once).
    this.#encryptor = createCipheriv("aes-128-ecb", key, null).setAutoPadding(false);
    this.#decryptor = createDecipheriv("aes-128-ecb", key, null).setAutoPadding(false);
    this.#engine = engineFor(constants);
  }

  /**
   * `cipher(input ⊕ T)` when `pre`, then `⊕ T` again when `post`. The scratch area is only borrowed within this
   * synchronous call (the cipher copies its input), and the result is the cipher's own fresh output buffer, tweaked
   * in place: allocating another 4 KiB array would cost about half an AES call.
   */
  #run(
    pa: number,
    input: Uint8Array,
    pre: boolean,
    post: boolean,
    cipher: { update(b: Uint8Array): Buffer },
  ) {
    checkBlocks(pa, input);
    const e = this.#engine;
    let data = input;
    if (pre) {
      data = e.load(input);
      e.apply(pa, input.length);
    }
    const out = owned(cipher.update(data));
    if (post) {
      e.load(out);
      e.apply(pa, out.length);
      e.store(out);
    }
    return out;
  }

  encrypt(pa: number, plaintext: Uint8Array): Uint8Array {
    // XE: C = E(P ⊕ T). XEX: C = E(P ⊕ T) ⊕ T.
    return this.#run(pa, plaintext, true, this.mode === "xex", this.#encryptor);
  }

  decrypt(pa: number, ciphertext: Uint8Array): Uint8Array {
    // XE: P = D(C) ⊕ T. XEX: P = D(C ⊕ T) ⊕ T.
    return this.#run(pa, ciphertext, this.mode === "xex", true, this.#decryptor);
  }

  encryptInto(pa: number, plaintext: Uint8Array, out: Uint8Array): void {
    checkOutput(plaintext, out);
    out.set(this.encrypt(pa, plaintext));
  }

  decryptInto(pa: number, ciphertext: Uint8Array, out: Uint8Array): void {
    checkOutput(ciphertext, out);
    out.set(this.decrypt(pa, ciphertext));
  }
}

/** The addon's tweak tables per set of constants, shared by every key slot of a boot as `engines` is. */
const nativeTweaks = new WeakMap<TweakConstants, XexTweaksHandle>();

/**
 * A fresh Uint8Array over its own ArrayBuffer of `n` bytes, **not zero-filled**: only for outputs the addon then
 * overwrites whole (it writes every byte of a whole number of blocks, and arguments are checked before the
 * allocation). Measured on 4 KiB and 64 KiB outputs, this is the cheapest allocation Node offers: `new
 * Uint8Array(n)` and Node-API's `napi_create_arraybuffer` zero-fill, and a fresh buffer costs more than the AES-NI
 * pass over it (docs/performance.md, "Memory engine vs openssl").
 */
function uninitialized(n: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
}

/** The AES-NI engine (native/xex/xex.c), one key's cipher; throws when the addon is unavailable. */
export class NativeMemoryCipher implements MemoryCipherEngine {
  readonly mode: MemoryCipherMode;
  readonly #cipher: XexAddonCipher;

  constructor(key: Uint8Array, constants: TweakConstants, mode: MemoryCipherMode) {
    checkKey(key, constants);
    const status = xexAddon();
    if (!status.addon) throw new Error(`the AES-NI memory cipher is unavailable: ${status.reason}`);
    this.mode = mode;
    let tweaks = nativeTweaks.get(constants);
    if (!tweaks) {
      const flat = new Uint8Array(16 * TWEAK_ADDRESS_BITS);
      for (let i = 0; i < TWEAK_ADDRESS_BITS; i++) {
        const c = constants[i]!;
        if (c.length !== 16) throw new RangeError("tweak constants are 16 bytes each");
        flat.set(c, 16 * i);
      }
      tweaks = status.addon.createTweaks(flat);
      flat.fill(0);
      nativeTweaks.set(constants, tweaks);
    }
    this.#cipher = status.addon.createCipher(key, tweaks, mode === "xex");
  }

  encrypt(pa: number, plaintext: Uint8Array): Uint8Array {
    checkBlocks(pa, plaintext);
    const out = uninitialized(plaintext.length);
    this.#cipher.encrypt(pa, plaintext, out);
    return out;
  }

  decrypt(pa: number, ciphertext: Uint8Array): Uint8Array {
    checkBlocks(pa, ciphertext);
    const out = uninitialized(ciphertext.length);
    this.#cipher.decrypt(pa, ciphertext, out);
    return out;
  }

  encryptInto(pa: number, plaintext: Uint8Array, out: Uint8Array): void {
    checkBlocks(pa, plaintext);
    checkOutput(plaintext, out);
    this.#cipher.encrypt(pa, plaintext, out);
  }

  decryptInto(pa: number, ciphertext: Uint8Array, out: Uint8Array): void {
    checkBlocks(pa, ciphertext);
    checkOutput(ciphertext, out);
    this.#cipher.decrypt(pa, ciphertext, out);
  }
}

/** Which engine `MemoryCipher` uses in this process, and why not the native one when it is not. */
export function memoryEngineStatus(): { kind: "native" } | { kind: "wasm"; reason: string } {
  const s = xexAddon();
  return s.addon ? { kind: "native" } : { kind: "wasm", reason: s.reason };
}

export function memoryEngineKind(): "native" | "wasm" {
  return memoryEngineStatus().kind;
}

/**
 * One key's cipher, on the native engine when its addon loads (`memoryEngineKind()`), else on the WebAssembly one;
 * both compute the same bytes.
 */
export class MemoryCipher implements MemoryCipherEngine {
  readonly mode: MemoryCipherMode;
  readonly #engine: MemoryCipherEngine;

  constructor(key: Uint8Array, constants: TweakConstants, mode: MemoryCipherMode) {
    // Each engine checks the key and constants itself.
    this.mode = mode;
    this.#engine =
      memoryEngineKind() === "native"
        ? new NativeMemoryCipher(key, constants, mode)
        : new WasmMemoryCipher(key, constants, mode);
  }

  encrypt(pa: number, plaintext: Uint8Array): Uint8Array {
    return this.#engine.encrypt(pa, plaintext);
  }

  decrypt(pa: number, ciphertext: Uint8Array): Uint8Array {
    return this.#engine.decrypt(pa, ciphertext);
  }

  encryptInto(pa: number, plaintext: Uint8Array, out: Uint8Array): void {
    this.#engine.encryptInto(pa, plaintext, out);
  }

  decryptInto(pa: number, ciphertext: Uint8Array, out: Uint8Array): void {
    this.#engine.decryptInto(pa, ciphertext, out);
  }
}
