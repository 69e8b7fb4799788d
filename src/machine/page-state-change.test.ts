/**
 * The page state change formats of GHCB 56421 version 2 (page-state-change.ts), bit for bit as Linux's
 * `struct psc_entry` / `struct psc_hdr` and `GHCB_MSR_PSC_*` lay them out: entry [11:0] cur_page, [51:12] GFN,
 * [55:52] operation, [56] page size; the 8-byte header and 253 entries fill the GHCB's 2032-byte shared buffer.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GHCB_SHARED_BUFFER_SIZE } from "./ghcb.ts";
import {
  decodePscEntry,
  decodePscMsrRequest,
  encodePscEntry,
  PSC_MAX_ENTRIES,
  PscDescriptor,
  PscOp,
  pscMsrRequest,
  pscMsrResponse,
  pscMsrResponseError,
} from "./page-state-change.ts";

describe("SNP page state change formats", () => {
  it("an entry's fields sit where Linux's bitfields put them, and decode back", () => {
    const e = { curPage: 0x1ff, gfn: 0xab_cdef_0123, op: PscOp.UNSMASH, pageSize: 1 as const };
    const v = encodePscEntry(e);
    assert.equal(v, 0x1ffn | (0xabcdef0123n << 12n) | (4n << 52n) | (1n << 56n));
    assert.deepEqual(decodePscEntry(v), e);
    assert.equal(decodePscEntry(v | (0x7fn << 57n)).pageSize, 1, "reserved bits 63:57 are not the page size");
  });

  it("header and 253 entries fill the 2032-byte shared buffer exactly; a 254th does not fit", () => {
    assert.equal(8 + 8 * PSC_MAX_ENTRIES, GHCB_SHARED_BUFFER_SIZE);
    const buf = new Uint8Array(GHCB_SHARED_BUFFER_SIZE);
    const entries = Array.from({ length: PSC_MAX_ENTRIES }, (_, i) => ({
      gfn: i,
      op: PscOp.SHARED,
      pageSize: 0 as const,
    }));
    const d = PscDescriptor.build(buf, entries);
    assert.deepEqual(d.header(), { curEntry: 0, endEntry: 252, reserved: 0 });
    assert.equal(d.entry(252).gfn, 252);
    assert.throws(() => PscDescriptor.build(buf, [...entries, entries[0]!]), RangeError);
  });

  it("MSR protocol: request [55:52] operation, [51:12] GFN; response [63:32] error", () => {
    const v = pscMsrRequest(0xf_ffff_ffff, PscOp.PRIVATE);
    assert.deepEqual(decodePscMsrRequest(v), { gfn: 0xf_ffff_ffff, op: PscOp.PRIVATE });
    assert.equal(v & 0xfffn, 0x014n);
    assert.equal(pscMsrResponseError(pscMsrResponse(0x22)), 0x22n);
    assert.equal(pscMsrResponse(0) & 0xfffn, 0x015n);
  });
});
