/*
 * The memory controller's cipher of SEV and SEV-ES (docs/sev-interface.md §13.2) with AES-NI, as a Node-API addon
 * loaded by src/crypto/xex-native.ts. One concern: AES-128 with the linear physical-address tweak
 *
 *   T(pa) = XOR of t_i over every set bit i >= 4 of pa
 *   XEX (Rome and later): C = AES_K(P ^ T(pa)) ^ T(pa)       P = AES_K^-1(C ^ T(pa)) ^ T(pa)
 *   XE  (Naples):         C = AES_K(P ^ T(pa))                P = AES_K^-1(C) ^ T(pa)
 *
 * over any whole number of 16-byte blocks at a 16-byte-aligned physical address. Why native: the machine encrypts
 * and decrypts whole pages at every VMRUN/#VMEXIT, and through Node's AES-128-ECB plus two WebAssembly tweak passes
 * a 4 KiB page cost more per call than openssl's whole 4 KiB AES-XTS (docs/performance.md, "Memory engine vs
 * openssl"). Here the tweak costs two XORs per block, folded into AES's first and last round keys, and eight blocks
 * are in flight at once so the AES unit never waits on one block's round latency.
 *
 * The src/crypto/xex.ts WebAssembly path is the reference and the fallback: `available()` is false when the CPU
 * lacks AES-NI (checked with CPUID at run time), and JavaScript then uses that path.
 *
 * Key material (round keys, and the tweak tables, which are as secret as the t_i of a boot) lives in native memory
 * only and is wiped through a volatile pointer before it is freed, when JavaScript's garbage collector finalizes the
 * functions that use it (or when the Node environment shuts down).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <cpuid.h>
#include <emmintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <wmmintrin.h>

#define PAGE 4096
#define BLOCKS_PER_PAGE (PAGE / 16)
/* Address bits 4..51 feed the tweak (docs/sev-interface.md §13.2); t_0..t_3 are offsets inside a block. */
#define TWEAK_ADDRESS_BITS 52
/* Page-number bits 0..39 (address bits 12..51), one table per byte of the page number. */
#define PAGE_NUMBER_BYTES 5
/* Blocks processed interleaved: AESENC has a latency of ~4 cycles and a throughput of 1-2 per cycle, so about
 * eight independent blocks keep the unit busy. */
#define LANES 8

/*
 * T(offset) for the 256 blocks of a page, and T(page base) by page-number byte: T is linear, so
 * T(pa) = T(pa mod 4096) ^ XOR over j of page_no[j][byte j of (pa >> 12)] — five lookups per page, one per block.
 * Shared by every key of a platform boot (the t_i are per boot, not per key); freed when the last user is.
 */
typedef struct {
  __m128i in_page[BLOCKS_PER_PAGE];
  __m128i page_no[PAGE_NUMBER_BYTES][256];
  unsigned refs;
} tweaks_t;

/* One key: encryption round keys, and the decryption round keys of the equivalent inverse cipher. */
typedef struct {
  __m128i enc[11];
  __m128i dec[11];
  tweaks_t* tweaks;
  int xex;
  unsigned refs;
} cipher_t;

/* Tags the Tweaks handle so createCipher never unwraps an object some other code wrapped. */
static const napi_type_tag TWEAKS_TAG = {0x6369706865727669ULL, 0x736f722d74776b31ULL};

/* memset that the compiler may not drop as a dead store before free(). */
static void wipe(void* p, size_t n) {
  volatile unsigned char* v = (volatile unsigned char*)p;
  while (n--) *v++ = 0;
}

static void* alloc16(size_t n) {
  /* 16-byte alignment for the __m128i members (aligned loads in the hot loop); size rounded as C11 requires. */
  return aligned_alloc(16, (n + 15) & ~(size_t)15);
}

static void tweaks_release(tweaks_t* t) {
  if (--t->refs > 0) return;
  wipe(t, sizeof *t);
  free(t);
}

static void cipher_release(cipher_t* c) {
  if (--c->refs > 0) return;
  tweaks_t* t = c->tweaks;
  wipe(c, sizeof *c);
  free(c);
  tweaks_release(t);
}

/* ---- AES-128 key schedule (FIPS-197 §5.2) with AESKEYGENASSIST ---- */

/* The next round key from the previous one: w[i] = w[i-1] ^ w[i-4] rolled up as a prefix XOR of the four words,
 * then XORed with SubWord(RotWord(last word)) ^ rcon, which AESKEYGENASSIST leaves in its top word. */
static __m128i next_round_key(__m128i prev, __m128i assist) {
  assist = _mm_shuffle_epi32(assist, 0xff);
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 8));
  return _mm_xor_si128(prev, assist);
}

/* The round constant must be an immediate, hence a macro. */
#define ROUND_KEY(k, i, rcon) (k)[i] = next_round_key((k)[(i) - 1], _mm_aeskeygenassist_si128((k)[(i) - 1], rcon))

static void expand_key(cipher_t* c, const uint8_t key[16]) {
  __m128i* k = c->enc;
  k[0] = _mm_loadu_si128((const __m128i*)key);
  ROUND_KEY(k, 1, 0x01);
  ROUND_KEY(k, 2, 0x02);
  ROUND_KEY(k, 3, 0x04);
  ROUND_KEY(k, 4, 0x08);
  ROUND_KEY(k, 5, 0x10);
  ROUND_KEY(k, 6, 0x20);
  ROUND_KEY(k, 7, 0x40);
  ROUND_KEY(k, 8, 0x80);
  ROUND_KEY(k, 9, 0x1b);
  ROUND_KEY(k, 10, 0x36);
  /* Equivalent inverse cipher (FIPS-197 §5.3.5): the round keys in reverse, InvMixColumns applied to the inner nine,
   * which is what AESDEC expects. */
  c->dec[0] = k[10];
  for (int i = 1; i < 10; i++) c->dec[i] = _mm_aesimc_si128(k[10 - i]);
  c->dec[10] = k[0];
}

/* ---- Tweak tables ---- */

static void build_tweaks(tweaks_t* t, const uint8_t* constants /* 52 × 16 bytes: t_0 … t_51 */) {
  __m128i c[TWEAK_ADDRESS_BITS];
  for (int i = 0; i < TWEAK_ADDRESS_BITS; i++) c[i] = _mm_loadu_si128((const __m128i*)(constants + 16 * i));
  /* In-page: block b (offset 16·b) sets address bits 4..11 as the bits of b. Each entry is a smaller one plus one
   * constant: T(b) = T(b without its top bit) ^ t_(4 + top bit). */
  t->in_page[0] = _mm_setzero_si128();
  for (int b = 1; b < BLOCKS_PER_PAGE; b++) {
    int top = 31 - __builtin_clz((unsigned)b);
    t->in_page[b] = _mm_xor_si128(t->in_page[b ^ (1 << top)], c[4 + top]);
  }
  for (int j = 0; j < PAGE_NUMBER_BYTES; j++) {
    t->page_no[j][0] = _mm_setzero_si128();
    for (int v = 1; v < 256; v++) {
      int top = 31 - __builtin_clz((unsigned)v);
      int bit = 12 + 8 * j + top; /* always < 52: 12 + 8·4 + 7 = 51 */
      t->page_no[j][v] = _mm_xor_si128(t->page_no[j][v ^ (1 << top)], c[bit]);
    }
  }
  wipe(c, sizeof c);
}

/* T(page base) for page number `page` (address bits 52 and up are not part of the tweak and are dropped). */
static inline __m128i page_tweak(const tweaks_t* t, uint64_t page) {
  __m128i x = t->page_no[0][page & 0xff];
  x = _mm_xor_si128(x, t->page_no[1][(page >> 8) & 0xff]);
  x = _mm_xor_si128(x, t->page_no[2][(page >> 16) & 0xff]);
  x = _mm_xor_si128(x, t->page_no[3][(page >> 24) & 0xff]);
  return _mm_xor_si128(x, t->page_no[4][(page >> 32) & 0xff]);
}

/* ---- The cipher ---- */

/*
 * One kernel for the four operations, specialised by constant arguments (always_inline): `decrypt` picks AESDEC
 * and the inverse round keys, `pre` XORs T before AES, `post` after it. Both XORs are free: the first round key is
 * XORed into the block anyway (P ^ T ^ k0), and AESENCLAST/AESDECLAST end with an XOR of their round key, so
 * passing k10 ^ T (or k0 ^ T) yields AES(...) ^ T.
 */
static inline __attribute__((always_inline)) void run(const cipher_t* c, int decrypt, int pre, int post,
                                                      uint64_t pa, const uint8_t* in, uint8_t* out,
                                                      size_t blocks) {
  const __m128i* rk = decrypt ? c->dec : c->enc;
  const tweaks_t* tw = c->tweaks;
  const __m128i first = rk[0];
  const __m128i last = rk[10];
  uint64_t page = pa >> 12;
  size_t b = (size_t)(pa >> 4) & (BLOCKS_PER_PAGE - 1);
  while (blocks > 0) {
    const __m128i tp = page_tweak(tw, page);
    size_t n = BLOCKS_PER_PAGE - b;
    if (n > blocks) n = blocks;
    const __m128i* tin = tw->in_page + b;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
      /* Only the eight states stay live through the rounds; T is read again (from L1) for the last round rather
       * than held in eight more registers, which would spill. */
      __m128i x[LANES];
#pragma GCC unroll 8
      for (int l = 0; l < LANES; l++) {
        const __m128i k = pre ? _mm_xor_si128(first, _mm_xor_si128(tin[i + l], tp)) : first;
        x[l] = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(in + 16 * (i + l))), k);
      }
#pragma GCC unroll 9
      for (int r = 1; r < 10; r++) {
        const __m128i k = rk[r];
#pragma GCC unroll 8
        for (int l = 0; l < LANES; l++) x[l] = decrypt ? _mm_aesdec_si128(x[l], k) : _mm_aesenc_si128(x[l], k);
      }
#pragma GCC unroll 8
      for (int l = 0; l < LANES; l++) {
        const __m128i k = post ? _mm_xor_si128(last, _mm_xor_si128(tin[i + l], tp)) : last;
        x[l] = decrypt ? _mm_aesdeclast_si128(x[l], k) : _mm_aesenclast_si128(x[l], k);
        _mm_storeu_si128((__m128i*)(out + 16 * (i + l)), x[l]);
      }
    }
    /* The rest of the run inside this page (fewer than LANES blocks), one at a time. */
    for (; i < n; i++) {
      __m128i t = _mm_xor_si128(tin[i], tp);
      __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(in + 16 * i)), pre ? _mm_xor_si128(first, t) : first);
      for (int r = 1; r < 10; r++) x = decrypt ? _mm_aesdec_si128(x, rk[r]) : _mm_aesenc_si128(x, rk[r]);
      const __m128i k = post ? _mm_xor_si128(last, t) : last;
      x = decrypt ? _mm_aesdeclast_si128(x, k) : _mm_aesenclast_si128(x, k);
      _mm_storeu_si128((__m128i*)(out + 16 * i), x);
    }
    in += 16 * n;
    out += 16 * n;
    blocks -= n;
    b = 0;
    page++;
  }
}

static void xex_encrypt(const cipher_t* c, uint64_t pa, const uint8_t* in, uint8_t* out, size_t blocks) {
  run(c, 0, 1, 1, pa, in, out, blocks);
}
static void xex_decrypt(const cipher_t* c, uint64_t pa, const uint8_t* in, uint8_t* out, size_t blocks) {
  run(c, 1, 1, 1, pa, in, out, blocks);
}
static void xe_encrypt(const cipher_t* c, uint64_t pa, const uint8_t* in, uint8_t* out, size_t blocks) {
  run(c, 0, 1, 0, pa, in, out, blocks);
}
static void xe_decrypt(const cipher_t* c, uint64_t pa, const uint8_t* in, uint8_t* out, size_t blocks) {
  run(c, 1, 0, 1, pa, in, out, blocks);
}

/* ---- Node-API glue ---- */

static napi_value throw_range(napi_env env, const char* message) {
  napi_throw_range_error(env, NULL, message);
  return NULL;
}

static napi_value throw_type(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* A Uint8Array's bytes (Buffers included); 0 when `v` is anything else. */
static int bytes_of(napi_env env, napi_value v, uint8_t** data, size_t* length) {
  napi_typedarray_type type;
  void* p;
  if (napi_get_typedarray_info(env, v, &type, length, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  *data = (uint8_t*)p;
  return 1;
}

/* A multiple of 16 up to 2^53 - 1, as a JavaScript safe integer can be. The JavaScript side checks first (and throws
 * the same RangeError); this keeps the native side safe on its own. */
static int address_of(napi_env env, napi_value v, uint64_t* pa) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 9007199254740991.0)) return 0;
  uint64_t a = (uint64_t)d;
  if ((double)a != d || (a & 15) != 0) return 0;
  *pa = a;
  return 1;
}

typedef void (*kernel_t)(const cipher_t*, uint64_t, const uint8_t*, uint8_t*, size_t);

/*
 * fn(pa, input, output) → undefined: writes every byte of `output`, a Uint8Array of input's length (it may be input
 * itself). The caller allocates the output: measured here, a JavaScript allocation without zero-fill is as fast as
 * or faster than any allocation Node-API offers (napi_create_arraybuffer zero-fills; see docs/performance.md).
 */
static napi_value call(napi_env env, napi_callback_info info, int decrypt) {
  size_t argc = 3;
  napi_value argv[3];
  void* data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok) return NULL;
  const cipher_t* c = (const cipher_t*)data;
  uint64_t pa;
  uint8_t *in, *out;
  size_t n, m;
  if (argc < 3 || !address_of(env, argv[0], &pa) || !bytes_of(env, argv[1], &in, &n) || (n & 15) != 0)
    return throw_range(env, "memory cipher works on aligned 16-byte blocks");
  if (!bytes_of(env, argv[2], &out, &m) || m != n)
    return throw_range(env, "output must be a Uint8Array of the input's length");
  kernel_t k = decrypt ? (c->xex ? xex_decrypt : xe_decrypt) : (c->xex ? xex_encrypt : xe_encrypt);
  if (n > 0) k(c, pa, in, out, n / 16);
  return NULL;
}

static napi_value encrypt_fn(napi_env env, napi_callback_info info) { return call(env, info, 0); }
static napi_value decrypt_fn(napi_env env, napi_callback_info info) { return call(env, info, 1); }

static void finalize_cipher(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  cipher_release((cipher_t*)data);
}

static void finalize_tweaks(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  tweaks_release((tweaks_t*)data);
}

/* createTweaks(constants: Uint8Array of 52 × 16 bytes) → an opaque handle for createCipher. */
static napi_value create_tweaks(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  uint8_t* constants;
  size_t n;
  if (argc < 1 || !bytes_of(env, argv[0], &constants, &n) || n != 16 * TWEAK_ADDRESS_BITS)
    return throw_range(env, "expected 52 tweak constants of 16 bytes as one Uint8Array");
  tweaks_t* t = alloc16(sizeof *t);
  if (!t) return throw_range(env, "out of memory");
  build_tweaks(t, constants);
  t->refs = 1;
  napi_value handle;
  if (napi_create_object(env, &handle) != napi_ok || napi_type_tag_object(env, handle, &TWEAKS_TAG) != napi_ok ||
      napi_wrap(env, handle, t, finalize_tweaks, NULL, NULL) != napi_ok) {
    tweaks_release(t);
    return NULL;
  }
  return handle;
}

/*
 * Sets result[name] to a function carrying `c` as its data pointer, with its own hold on `c` that its finalizer
 * releases. 0 when any step fails (the hold is then not taken).
 */
static int add_cipher_fn(napi_env env, napi_value result, const char* name, napi_callback cb, cipher_t* c) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, c, &fn) != napi_ok) return 0;
  c->refs++;
  if (napi_add_finalizer(env, fn, c, finalize_cipher, NULL, NULL) != napi_ok) {
    c->refs--;
    return 0;
  }
  return napi_set_named_property(env, result, name, fn) == napi_ok;
}

/*
 * createCipher(key: 16-byte Uint8Array, tweaks: a createTweaks handle, xex: boolean) → { encrypt, decrypt }. Each
 * function carries the key as its own data pointer, so a call needs no unwrap and cannot be pointed at another
 * object; the key is freed (and wiped) once both functions are collected.
 */
static napi_value create_cipher(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  uint8_t* key;
  size_t n;
  if (argc < 3 || !bytes_of(env, argv[0], &key, &n) || n != 16) return throw_range(env, "AES-128 key must be 16 bytes");
  bool tagged = false;
  void* tw = NULL;
  napi_valuetype type;
  if (napi_typeof(env, argv[1], &type) != napi_ok) return NULL;
  if (type == napi_object && napi_check_object_type_tag(env, argv[1], &TWEAKS_TAG, &tagged) != napi_ok) return NULL;
  if (!tagged || napi_unwrap(env, argv[1], &tw) != napi_ok) return throw_type(env, "expected a createTweaks() handle");
  bool xex;
  if (napi_get_value_bool(env, argv[2], &xex) != napi_ok) return throw_type(env, "xex must be a boolean");

  cipher_t* c = alloc16(sizeof *c);
  if (!c) return throw_range(env, "out of memory");
  expand_key(c, key);
  c->xex = xex;
  c->tweaks = (tweaks_t*)tw;
  c->tweaks->refs++;
  c->refs = 1; /* this function's own hold, released below */

  napi_value result;
  int ok = napi_create_object(env, &result) == napi_ok && add_cipher_fn(env, result, "encrypt", encrypt_fn, c) &&
           add_cipher_fn(env, result, "decrypt", decrypt_fn, c);
  cipher_release(c);
  return ok ? result : NULL;
}

/* AES-NI (CPUID.1:ECX bit 25) and SSE4.1 (bit 19, which -msse4.1 lets the compiler use anywhere in this file). */
static int cpu_has_aesni(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  return (c & bit_AES) && (c & bit_SSE4_1);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const int aesni = cpu_has_aesni();
  napi_value available;
  if (napi_get_boolean(env, aesni, &available) != napi_ok ||
      napi_set_named_property(env, exports, "available", available) != napi_ok)
    return NULL;
  /* Without AES-NI the functions are not exported at all: nothing can reach an AESENC the CPU would fault on. */
  if (!aesni) return exports;
  napi_property_descriptor props[] = {
      {"createTweaks", NULL, create_tweaks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createCipher", NULL, create_cipher, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
