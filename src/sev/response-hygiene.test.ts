/**
 * Variable-length outputs (docs/threat-model.md §8 item 16): PDH_CERT_EXPORT, GET_ID, LAUNCH_MEASURE and SEND_START with
 * declared lengths from 0 to twice what they need, on sentinel-filled buffers. A short buffer gets INVALID_LENGTH and
 * the length it needs, and nothing else is written; a long enough one is filled with exactly the output, and not a
 * byte past it changes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ByteReader, ByteWriter } from "../lib/bytes.ts";
import { Cmd } from "./commands.ts";
import type { EmulatedPlatform } from "./emulated-platform.ts";
import { createEmulatedPlatform } from "./emulated-platform.ts";
import { formatStatus, SevStatus } from "./status.ts";
import { receiverCerts, scenario } from "./test-support.ts";

const SENTINEL = 0xa5;
const CMD_PA = 0x1f0000;
const OUT_PA = 0x500000;

function issue(p: EmulatedPlatform, cmd: number, size: number, fill: (w: ByteWriter) => void) {
  const w = new ByteWriter(size);
  fill(w);
  p.dram.write(CMD_PA, w.bytes);
  return { status: p.sp.issue(cmd, CMD_PA), out: new ByteReader(p.dram.read(CMD_PA, size)) };
}

function sentinel(p: EmulatedPlatform, pa: number, n: number): void {
  p.dram.write(pa, new Uint8Array(n).fill(SENTINEL));
}

function untouchedFrom(p: EmulatedPlatform, pa: number, from: number, to: number): boolean {
  return p.dram.read(pa + from, to - from).every((b) => b === SENTINEL);
}

describe("variable-length outputs never overrun", () => {
  it("GET_ID with every length 0..128", () => {
    const p = createEmulatedPlatform({ seed: "hyg-id" });
    for (let len = 0; len <= 128; len++) {
      sentinel(p, OUT_PA, 256);
      const r = issue(p, Cmd.GET_ID, 0x0c, (w) => w.u64(0, BigInt(OUT_PA)).u32(8, len));
      assert.equal(r.out.u32(8), 64, `len ${len}: needed length written back`);
      if (len < 64) {
        assert.equal(formatStatus(r.status), formatStatus(SevStatus.INVALID_LENGTH));
        assert.ok(untouchedFrom(p, OUT_PA, 0, 256), `len ${len}: nothing written`);
      } else {
        assert.equal(r.status, SevStatus.SUCCESS);
        assert.ok(untouchedFrom(p, OUT_PA, 64, 256), `len ${len}: nothing past 64 bytes`);
      }
    }
  });

  it("PDH_CERT_EXPORT with PDH and chain lengths across 0..2× what they need", () => {
    const p = createEmulatedPlatform({ seed: "hyg-pdh" });
    const PDH = 0x824;
    const CHAIN = 0x186c;
    const chainPa = OUT_PA + 0x4000;
    let calls = 0;
    for (let pdhLen = 0; pdhLen <= 2 * PDH; pdhLen += 97) {
      for (let chainLen = 0; chainLen <= 2 * CHAIN; chainLen += 331) {
        sentinel(p, OUT_PA, 2 * PDH + 64);
        sentinel(p, chainPa, 2 * CHAIN + 64);
        const r = issue(p, Cmd.PDH_CERT_EXPORT, 0x1c, (w) =>
          w.u64(0, BigInt(OUT_PA)).u32(8, pdhLen).u64(0x10, BigInt(chainPa)).u32(0x18, chainLen),
        );
        assert.deepEqual([r.out.u32(8), r.out.u32(0x18)], [PDH, CHAIN]);
        if (pdhLen < PDH || chainLen < CHAIN) {
          assert.equal(formatStatus(r.status), formatStatus(SevStatus.INVALID_LENGTH));
          assert.ok(
            untouchedFrom(p, OUT_PA, 0, 2 * PDH + 64) && untouchedFrom(p, chainPa, 0, 2 * CHAIN + 64),
          );
        } else {
          assert.equal(r.status, SevStatus.SUCCESS);
          assert.ok(
            untouchedFrom(p, OUT_PA, PDH, 2 * PDH + 64) && untouchedFrom(p, chainPa, CHAIN, 2 * CHAIN + 64),
          );
        }
        calls++;
      }
    }
    assert.ok(calls > 500);
  });

  it("LAUNCH_MEASURE with every length 0..96", () => {
    for (let len = 0; len <= 96; len++) {
      // Success moves the guest to LSECRET, so each length gets its own guest (LUPDATE).
      const s = scenario("LUPDATE", { policy: 0 });
      sentinel(s.a, OUT_PA, 160);
      const r = issue(s.a, Cmd.LAUNCH_MEASURE, 0x14, (w) =>
        w.u32(0, s.handle).u64(8, BigInt(OUT_PA)).u32(0x10, len),
      );
      assert.equal(r.out.u32(0x10), 48);
      if (len < 48) {
        assert.equal(formatStatus(r.status), formatStatus(SevStatus.INVALID_LENGTH));
        assert.ok(untouchedFrom(s.a, OUT_PA, 0, 160));
        assert.equal(s.a.client.guestStatus(s.handle).state, "LUPDATE");
      } else {
        assert.equal(r.status, SevStatus.SUCCESS);
        assert.ok(untouchedFrom(s.a, OUT_PA, 48, 160));
      }
      if (len > 52) len += 5; // a sample of the longer lengths keeps the test quick
    }
  });

  it("SEND_START session length across 0..256", () => {
    const s = scenario("RUNNING", { policy: 0 });
    const certs = receiverCerts(s.b);
    const put = (pa: number, b: Uint8Array) => {
      s.a.dram.write(pa, b);
      return pa;
    };
    const pdhPa = put(0x520000, certs.pdh);
    const platPa = put(0x522000, certs.platCerts);
    const amdPa = put(0x528000, certs.amdCerts);
    for (let len = 0; len <= 256; len += 3) {
      sentinel(s.a, OUT_PA, 320);
      const r = issue(s.a, Cmd.SEND_START, 0x44, (w) =>
        w
          .u32(0, s.handle)
          .u64(0x08, BigInt(pdhPa))
          .u32(0x10, certs.pdh.length)
          .u64(0x18, BigInt(platPa))
          .u32(0x20, certs.platCerts.length)
          .u64(0x28, BigInt(amdPa))
          .u32(0x30, certs.amdCerts.length)
          .u64(0x38, BigInt(OUT_PA))
          .u32(0x40, len),
      );
      assert.equal(r.out.u32(0x40), 0x80);
      if (len < 0x80) {
        assert.equal(formatStatus(r.status), formatStatus(SevStatus.INVALID_LENGTH));
        assert.ok(untouchedFrom(s.a, OUT_PA, 0, 320));
        assert.equal(s.a.client.guestStatus(s.handle).state, "RUNNING");
      } else {
        assert.equal(r.status, SevStatus.SUCCESS);
        assert.ok(untouchedFrom(s.a, OUT_PA, 0x80, 320));
        s.a.client.sendCancel(s.handle);
      }
    }
  });
});
