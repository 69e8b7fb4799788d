/**
 * A minimal, strict DER reader: just enough ASN.1 to read the X.509 certificates of the SEV-SNP chain (VCEK, ASK,
 * ARK; docs/sev-interface.md §14). Definite lengths only, single-byte tags only, every length checked against the
 * buffer in plain Numbers (no 32-bit wrap, docs/threat-model.md §6). Anything else is a CERT_INVALID error naming `what`.
 */
import { CiphervisorError } from "../errors.ts";

export const Tag = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
  /** Context-specific, constructed: [0] … [3]. */
  CTX0: 0xa0,
  CTX1: 0xa1,
  CTX2: 0xa2,
  CTX3: 0xa3,
} as const;

export interface DerElement {
  tag: number;
  /** The whole encoding: tag, length and content. */
  bytes: Uint8Array;
  content: Uint8Array;
}

function bad(what: string, msg: string): never {
  throw new CiphervisorError("CERT_INVALID", `${what}: malformed DER: ${msg}`);
}

/** Reads the element starting at `offset`; `next` is the offset just after it. */
export function readDer(buf: Uint8Array, offset: number, what: string): { el: DerElement; next: number } {
  if (offset + 2 > buf.length) bad(what, `element at ${offset} runs past the end`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) bad(what, `multi-byte tag at ${offset}`);
  let len = buf[offset + 1]!;
  let hdr = 2;
  if (len === 0x80) bad(what, `indefinite length at ${offset}`);
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4) bad(what, `length of ${n} bytes at ${offset}`);
    if (offset + 2 + n > buf.length) bad(what, `length at ${offset} runs past the end`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    if (len < 0x80 || buf[offset + 2] === 0) bad(what, `non-minimal length at ${offset}`);
    hdr += n;
  }
  const end = offset + hdr + len;
  if (end > buf.length)
    bad(what, `element at ${offset} claims ${len} bytes, ${buf.length - offset - hdr} remain`);
  return {
    el: { tag, bytes: buf.subarray(offset, end), content: buf.subarray(offset + hdr, end) },
    next: end,
  };
}

/** Parses exactly one element filling `buf`. */
export function parseDer(buf: Uint8Array, what: string): DerElement {
  const { el, next } = readDer(buf, 0, what);
  if (next !== buf.length) bad(what, `${buf.length - next} trailing bytes`);
  return el;
}

/** The elements inside a constructed element. */
export function derChildren(el: DerElement, what: string): DerElement[] {
  if ((el.tag & 0x20) === 0) bad(what, `tag 0x${el.tag.toString(16)} is not constructed`);
  const out: DerElement[] = [];
  for (let o = 0; o < el.content.length; ) {
    const { el: child, next } = readDer(el.content, o, what);
    out.push(child);
    o = next;
  }
  return out;
}

/** Checks the tag and returns the element (for destructuring with a clear error). */
export function expectTag(el: DerElement | undefined, tag: number, what: string, field: string): DerElement {
  if (!el) bad(what, `${field} is missing`);
  if (el.tag !== tag) bad(what, `${field} has tag 0x${el.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return el;
}

/** An OBJECT IDENTIFIER in dotted form. */
export function derOid(el: DerElement, what: string): string {
  const c = el.content;
  if (el.tag !== Tag.OID || c.length === 0) bad(what, "not an OBJECT IDENTIFIER");
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (v === 0 && b === 0x80) bad(what, "non-minimal OID arc");
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) bad(what, "OID arc too large");
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    } else if (i === c.length - 1) {
      bad(what, "truncated OID arc");
    }
  }
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

/** A non-negative INTEGER as big-endian bytes without sign padding. Negative integers are refused. */
export function derUnsigned(el: DerElement, what: string): Uint8Array {
  const c = el.content;
  if (el.tag !== Tag.INTEGER || c.length === 0) bad(what, "not an INTEGER");
  if ((c[0]! & 0x80) !== 0) bad(what, "negative INTEGER");
  return c[0] === 0 && c.length > 1 ? c.subarray(1) : c;
}

/** A small non-negative INTEGER as a number. */
export function derSmallInt(el: DerElement, what: string): number {
  const b = derUnsigned(el, what);
  if (b.length > 6) bad(what, "INTEGER too large");
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** The content of a BIT STRING with no unused bits (keys and signatures). */
export function derBitString(el: DerElement, what: string): Uint8Array {
  if (el.tag !== Tag.BIT_STRING || el.content.length === 0 || el.content[0] !== 0) {
    bad(what, "not a whole-byte BIT STRING");
  }
  return el.content.subarray(1);
}

/** A character string (UTF8String, PrintableString, IA5String) as text. */
export function derText(el: DerElement, what: string): string {
  if (el.tag !== Tag.UTF8_STRING && el.tag !== Tag.PRINTABLE_STRING && el.tag !== Tag.IA5_STRING) {
    bad(what, `tag 0x${el.tag.toString(16)} is not a string`);
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(el.content);
}

/** UTCTime or GeneralizedTime as an ISO-8601 string (UTC). */
export function derTime(el: DerElement, what: string): string {
  const t = new TextDecoder().decode(el.content);
  const m =
    el.tag === Tag.UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(t)
      : el.tag === Tag.GENERALIZED_TIME
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(t)
        : null;
  if (!m) bad(what, `unsupported time '${t.replace(/[^ -~]/g, "?")}'`);
  const y = m[1]!.length === 2 ? (Number(m[1]) < 50 ? 2000 : 1900) + Number(m[1]) : Number(m[1]);
  return `${String(y).padStart(4, "0")}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}
