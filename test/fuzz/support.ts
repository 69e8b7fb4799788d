/**
 * Shared scaffolding for the fuzz suite (test/fuzz/*.test.ts): the run budget, the fixed seed, the "returns or
 * throws a typed error" check and the mutation arbitraries that turn a real input into a damaged one (bit flips,
 * truncation, extension). Not part of the library API.
 *
 * The budget is small so `npm test` stays fast; raise it for a deeper run, and change the seed to explore:
 * `FUZZ_RUNS=20000 FUZZ_SEED=7 node --import tsx --test test/fuzz/*.test.ts`.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { ERROR_CODES, isCiphervisorError } from "../../src/errors.ts";

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
}

/** Runs per property: `FUZZ_RUNS` when set, else `base` (each property picks a base that fits its cost). */
export function runs(base: number): number {
  return envInt("FUZZ_RUNS", base);
}

/** The fast-check parameters of one property: reproducible by default (fixed seed), deeper with FUZZ_RUNS. */
export function params(base: number): fc.Parameters<unknown> {
  return { numRuns: runs(base), seed: envInt("FUZZ_SEED", 0x13c1f3) };
}

/** What a parser did: returned a value, or threw a typed error with a code from ERROR_CODES. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; code: string };

/**
 * Calls `parse` and classifies the outcome. Anything thrown that is not a CiphervisorError with a known code (a
 * TypeError, a RangeError, a SyntaxError, a plain Error) is rethrown with its class and message, so fast-check
 * shrinks towards it and the report names what escaped.
 */
export function typed<T>(parse: () => T): Outcome<T> {
  try {
    return { ok: true, value: parse() };
  } catch (e) {
    if (isCiphervisorError(e) && Object.hasOwn(ERROR_CODES, e.code)) return { ok: false, code: e.code };
    const name = e instanceof Error ? e.constructor.name : typeof e;
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(`untyped ${name} escaped the parser: ${message}`, { cause: e });
  }
}

/** A file under test/fixtures/, as bytes. */
export function fixtureBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/${path}`, import.meta.url)));
}

/** A file under test/fixtures/, as UTF-8 text. */
export function fixtureText(path: string): string {
  return readFileSync(new URL(`../fixtures/${path}`, import.meta.url), "utf8");
}

/** Arbitrary bytes up to `maxLength` (default 4 KiB, enough to reach every fixed-size format here). */
export function bytes(maxLength = 4096): fc.Arbitrary<Uint8Array> {
  return fc.uint8Array({ maxLength });
}

/** One damage applied to a real input. */
type Damage =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "truncate"; keep: number }
  | { kind: "extend"; tail: Uint8Array };

const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip"), at: fc.nat(), bit: fc.nat(7) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("set"),
      at: fc.nat(),
      value: fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0x01),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate"), keep: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("extend"), tail: fc.uint8Array({ maxLength: 64 }) }),
  },
) as fc.Arbitrary<Damage>;

function apply(input: Uint8Array, d: Damage): Uint8Array {
  if (d.kind === "truncate") return input.slice(0, input.length === 0 ? 0 : d.keep % (input.length + 1));
  if (d.kind === "extend") {
    const out = new Uint8Array(input.length + d.tail.length);
    out.set(input);
    out.set(d.tail, input.length);
    return out;
  }
  const out = input.slice();
  if (out.length === 0) return out;
  const at = d.at % out.length;
  out[at] = d.kind === "flip" ? out[at]! ^ (1 << d.bit) : d.value;
  return out;
}

/** `input` with 1..`max` random damages: bit flips, byte sets, a truncation, an extension. */
export function mutated(input: Uint8Array, max = 8): fc.Arbitrary<Uint8Array> {
  return fc.array(damage, { minLength: 1, maxLength: max }).map((ds) => ds.reduce(apply, input));
}

/** `mutated` for text: the UTF-8 bytes damaged, decoded again (invalid sequences become U+FFFD). */
export function mutatedText(input: string, max = 8): fc.Arbitrary<string> {
  const enc = new TextEncoder().encode(input);
  return mutated(enc, max).map((b) => new TextDecoder().decode(b));
}

/** Damage confined to the byte range [from, to) of `input` (e.g. a header), so the rest stays well-formed. */
export function mutatedRange(input: Uint8Array, from: number, to: number, max = 4): fc.Arbitrary<Uint8Array> {
  return fc
    .array(fc.record({ at: fc.integer({ min: from, max: to - 1 }), value: fc.nat(255) }), {
      minLength: 1,
      maxLength: max,
    })
    .map((sets) => {
      const out = input.slice();
      for (const s of sets) out[s.at] = s.value;
      return out;
    });
}
