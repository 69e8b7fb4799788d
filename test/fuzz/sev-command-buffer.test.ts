/**
 * Fuzzing the emulated Secure Processor's command-buffer parsing (src/sev/command-buffer.ts and the handlers it
 * feeds): every firmware command, issued with an arbitrary command buffer whose address and length fields are biased
 * towards the interesting values (inside and outside DRAM, zero, huge, the handle of a live guest), answers with a
 * documented SEV status, and never with the HWERROR_PLATFORM that SecureProcessor.issue gives an internal fault
 * (a thrown exception inside a handler is an emulator bug, so `lastInternalFault` stays unset). Budget and seed:
 * test/fuzz/support.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { CMD_BUFFER_SIZE, Cmd } from "../../src/sev/commands.ts";
import { GUEST_BASE } from "../../src/sev/emulated-platform.ts";
import { formatStatus, SevStatus, statusName } from "../../src/sev/status.ts";
import { scenario } from "../../src/sev/test-support.ts";
import { params } from "./support.ts";

const CMD_PA = 0x1f0000;
// SHUTDOWN and PLATFORM_RESET are left out: after either, every later command would only meet INVALID_PLATFORM_STATE.
const NAMES = (Object.keys(CMD_BUFFER_SIZE) as (keyof typeof CMD_BUFFER_SIZE)[]).filter(
  (n) => n !== "SHUTDOWN" && n !== "PLATFORM_RESET",
);

describe("fuzz: SEV command buffers (sev/command-buffer.ts, sev/handlers)", () => {
  it("every command with an arbitrary buffer answers a documented status, never an internal fault", () => {
    const s = scenario("LUPDATE", {});
    const p = s.a;
    const handle = s.handle;
    const u64 = fc.oneof(
      fc.constantFrom(
        0n,
        BigInt(GUEST_BASE),
        BigInt(GUEST_BASE + 0x1000),
        0x3fff000n,
        2n ** 63n,
        2n ** 64n - 1n,
      ),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    );
    const u32 = fc.oneof(
      fc.constantFrom(0, 1, 16, 0x1000, 0x7fffffff, 0xffffffff, handle),
      fc.nat(0xffffffff),
    );
    const field = fc.oneof(
      u64.map((v) => ({ width: 8 as const, v })),
      u32.map((v) => ({ width: 4 as const, v })),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...NAMES),
        fc.array(field, { maxLength: 12 }),
        fc.boolean(),
        (name, fields, h) => {
          const size = Math.max(CMD_BUFFER_SIZE[name], 4);
          const w = new ByteWriter(size);
          let o = 0;
          for (const f of fields) {
            if (o + f.width > size) break;
            if (f.width === 8) w.u64(o, f.v);
            else w.u32(o, f.v);
            o += f.width;
          }
          if (h) w.u32(0, handle);
          p.dram.write(CMD_PA, w.bytes);
          p.sp.lastInternalFault = undefined;
          const status = p.sp.issue(Cmd[name], CMD_PA);
          assert.notEqual(statusName(status), "UNKNOWN", `${name}: ${formatStatus(status)}`);
          assert.equal(p.sp.lastInternalFault, undefined, `${name}: ${formatStatus(status)}`);
          assert.notEqual(status, SevStatus.HWERROR_PLATFORM);
        },
      ),
      params(300),
    );
  });
});
