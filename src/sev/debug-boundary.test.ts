/**
 * DBG_DECRYPT / DBG_ENCRYPT at chunk and page edges (docs/threat-model.md §8 item 12, mirroring KVM's sev_dbg_test):
 * source and destination offsets × sizes around 16 bytes and a page. With debug allowed, 16-byte granular requests
 * round-trip exactly and the others get the firmware's alignment codes; with NODBG every aligned call is
 * POLICY_FAILURE and the destination stays untouched.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../crypto/random.ts";
import { PolicyBit } from "./policy.ts";
import { formatStatus, SevStatus } from "./status.ts";
import { scenario, statusOf } from "./test-support.ts";

const PAGE = 4096;
const OFFSETS = [0, 1, 8, 15, 16, 23, 32, PAGE - 16];
const SIZES = [
  1,
  8,
  15,
  16,
  17,
  32,
  33,
  PAGE - 1,
  PAGE,
  PAGE + 1,
  PAGE + 15,
  PAGE + 16,
  2 * PAGE,
  2 * PAGE + 16,
];
/** Guest memory under test (private, encrypted) and a plaintext destination, both far from the scenario's data. */
const GUEST = 0x600000;
const HOST = 0x700000;

function expected(src: number, dst: number, len: number): number {
  if (src % 16 !== 0 || dst % 16 !== 0) return SevStatus.INVALID_ADDRESS;
  if (len === 0 || len % 16 !== 0) return SevStatus.INVALID_LENGTH;
  return SevStatus.SUCCESS;
}

for (const nodbg of [false, true]) {
  describe(`DBG boundaries, policy ${nodbg ? "NODBG" : "debug allowed"}`, () => {
    it(`${OFFSETS.length}² offsets × ${SIZES.length} sizes × 2 commands`, () => {
      const s = scenario("RUNNING", { policy: nodbg ? PolicyBit.NODBG : 0 });
      const { client, dram, sp } = s.a;
      // Fill the guest region with known plaintext, encrypted at its own addresses (what the guest would store).
      const plain = seededRandom("dbg-boundary").bytes(4 * PAGE);
      dram.write(GUEST, sp.keySlots.encrypt(s.asid, GUEST, plain));
      let cases = 0;
      for (const so of OFFSETS) {
        for (const doff of OFFSETS) {
          for (const len of SIZES) {
            const src = GUEST + so;
            const dst = HOST + doff;
            const want =
              nodbg && expected(src, dst, len) === SevStatus.SUCCESS
                ? SevStatus.POLICY_FAILURE
                : expected(src, dst, len);
            // DBG_DECRYPT: guest → plaintext destination.
            dram.write(HOST, new Uint8Array(3 * PAGE).fill(0xa5));
            const got = statusOf(() => client.dbgDecrypt(s.handle, src, dst, len));
            assert.equal(formatStatus(got), formatStatus(want), `decrypt src+${so} dst+${doff} len ${len}`);
            if (got === SevStatus.SUCCESS) {
              assert.deepEqual(dram.read(dst, len), plain.subarray(so, so + len), `round trip +${so}/${len}`);
            } else {
              assert.ok(
                dram.read(HOST, 3 * PAGE).every((b) => b === 0xa5),
                `destination untouched (+${doff}, ${len})`,
              );
            }
            // DBG_ENCRYPT: plaintext source → guest destination (the guest region shifted by a page).
            const gdst = GUEST + PAGE + doff;
            const wantEnc =
              nodbg && expected(HOST + so, gdst, len) === SevStatus.SUCCESS
                ? SevStatus.POLICY_FAILURE
                : expected(HOST + so, gdst, len);
            const before = dram.read(GUEST + PAGE, 3 * PAGE);
            const gotEnc = statusOf(() => client.dbgEncrypt(s.handle, HOST + so, gdst, len));
            assert.equal(
              formatStatus(gotEnc),
              formatStatus(wantEnc),
              `encrypt src+${so} dst+${doff} len ${len}`,
            );
            if (gotEnc === SevStatus.SUCCESS) {
              const back = sp.keySlots.decrypt(s.asid, gdst, dram.read(gdst, len));
              assert.deepEqual(back, dram.read(HOST + so, len));
              dram.write(GUEST + PAGE, before);
            } else {
              assert.deepEqual(dram.read(GUEST + PAGE, 3 * PAGE), before, "guest memory untouched");
            }
            cases += 2;
          }
        }
      }
      assert.equal(cases, OFFSETS.length * OFFSETS.length * SIZES.length * 2);
    });
  });
}
