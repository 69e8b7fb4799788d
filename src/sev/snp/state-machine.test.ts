/**
 * Every (SNP guest state × guest command) and (SNP platform state × command) pair, against the tables of
 * `state-tables.ts` (SNP ABI 56860, its platform and guest state chapters): a pair the table refuses returns
 * INVALID_GUEST_STATE / INVALID_PLATFORM_STATE and changes nothing; an allowed pair is not refused for its state.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { ByteWriter } from "../../lib/bytes.ts";
import { SevStatus } from "../status.ts";
import { SnpClient } from "./client.ts";
import { SNP_GCTX_CMDS, SnpCmd, type SnpCmdName } from "./commands.ts";
import { SnpMsgType, sealGuestMessage } from "./guest-message.ts";
import { encodeReportRequest } from "./guest-request-messages.ts";
import {
  SNP_GUEST_STATES,
  SNP_GUEST_TABLE,
  SNP_PLATFORM_STATES,
  SNP_PLATFORM_TABLE,
  type SnpGuestStateName,
} from "./state-tables.ts";
import { GCTX_PA, putPage, type SnpHost, snpHost } from "./test-support.ts";

const OUT = 0x3f0000;
const REQ = 0x3e0000;

function guestIn(state: SnpGuestStateName): SnpHost {
  const h = snpHost();
  h.client.gctxCreate(GCTX_PA);
  if (state === "INIT") return h;
  h.client.launchStart(GCTX_PA, { policy: 0x30000n });
  h.client.activate(GCTX_PA, 1);
  putPage(h, GCTX_PA, "NORMAL", 0xfff00000n);
  if (state === "RUNNING") h.client.launchFinish(GCTX_PA);
  return h;
}

/** A plausible buffer for each command (its own checks may still refuse it; the state check comes first). */
const FILL: Record<SnpCmdName, (w: ByteWriter, h: SnpHost) => void> = {
  SNP_INIT: () => {},
  SNP_INIT_EX: (w) => void w.u32(0, 1),
  SNP_SHUTDOWN: () => {},
  SNP_SHUTDOWN_EX: (w) => void w.u32(0, 8),
  SNP_PLATFORM_STATUS: (w) => void w.u64(0, BigInt(OUT)),
  SNP_DF_FLUSH: () => {},
  SNP_GCTX_CREATE: (w) => void w.u64(0, 0x3d0000n),
  SNP_DECOMMISSION: (w) => void w.u64(0, BigInt(GCTX_PA)),
  SNP_ACTIVATE: (w) => void w.u64(0, BigInt(GCTX_PA)).u32(8, 2),
  SNP_GUEST_STATUS: (w) => void w.u64(0, BigInt(GCTX_PA)).u64(8, BigInt(OUT)),
  SNP_GUEST_REQUEST: (w, h) => {
    const msg = sealGuestMessage(new Uint8Array(32), {
      seqno: 1n,
      msgType: SnpMsgType.REPORT_REQ,
      msgVersion: 1,
      vmpck: 0,
      payload: encodeReportRequest({}),
    });
    h.dram.write(REQ, msg);
    w.u64(0, BigInt(GCTX_PA)).u64(8, BigInt(REQ)).u64(0x10, BigInt(OUT));
  },
  SNP_LAUNCH_START: (w) => void w.u64(0, BigInt(GCTX_PA)).u64(8, 0x30000n),
  SNP_LAUNCH_UPDATE: (w, h) => {
    h.dram.write(0x3c0000, new Uint8Array(4096).fill(7));
    SnpClient.launchUpdateBuffer(GCTX_PA, { pa: 0x3c0000, type: "NORMAL" })(w);
  },
  SNP_LAUNCH_FINISH: (w) => void w.u64(0, BigInt(GCTX_PA)),
  SNP_PAGE_RECLAIM: (w) => void w.u64(0, BigInt(GCTX_PA)),
};

function issue(h: SnpHost, name: SnpCmdName): number {
  return h.client.status(name, (w) => FILL[name](w, h));
}

function fingerprint(h: SnpHost): string {
  // Guest memory and the context page; the pages the fillers write (0x3C0000 and up) are the host's inputs.
  const mem = createHash("sha256")
    .update(h.dram.read(0x300000, 0xc0000))
    .update(h.dram.read(0x400000, 0x500000))
    .digest("hex");
  return JSON.stringify({ snap: h.sp.snpSnapshot(), mem }, (_k, v) =>
    typeof v === "bigint" ? v.toString() : v,
  );
}

describe("SNP guest state table, every pair", () => {
  for (const state of SNP_GUEST_STATES) {
    for (const cmd of SNP_GCTX_CMDS) {
      const cell = SNP_GUEST_TABLE[state][cmd];
      it(`${state} × ${cmd} → ${typeof cell === "number" ? "INVALID_GUEST_STATE" : cell}`, () => {
        const h = guestIn(state);
        const before = fingerprint(h);
        const status = issue(h, cmd);
        if (typeof cell === "number") {
          assert.equal(status, SevStatus.INVALID_GUEST_STATE);
          assert.equal(fingerprint(h), before, "nothing changed");
          return;
        }
        assert.notEqual(status, SevStatus.INVALID_GUEST_STATE);
        if (status === SevStatus.SUCCESS && cmd !== "SNP_DECOMMISSION") {
          const want = cell === "same" ? state : cell;
          assert.equal(h.sp.snpSnapshot()?.guests[0]?.state, want);
        }
      });
    }
  }
  it("the table is complete and an unknown GCTX is INVALID_GUEST", () => {
    for (const s of SNP_GUEST_STATES)
      assert.deepEqual(Object.keys(SNP_GUEST_TABLE[s]).sort(), [...SNP_GCTX_CMDS].sort());
    const h = snpHost();
    assert.equal(issue(h, "SNP_LAUNCH_START"), SevStatus.INVALID_GUEST);
  });
});

describe("SNP platform state table, every pair", () => {
  for (const state of SNP_PLATFORM_STATES) {
    for (const cmd of Object.keys(SnpCmd) as SnpCmdName[]) {
      const allowed = SNP_PLATFORM_TABLE[cmd].includes(state);
      it(`${state} × ${cmd} → ${allowed ? "accepted" : "INVALID_PLATFORM_STATE"}`, () => {
        const h = state === "UNINIT" ? snpHost({ init: false }) : guestIn("RUNNING");
        const before = fingerprint(h);
        const status = issue(h, cmd);
        if (!allowed) {
          assert.equal(status, SevStatus.INVALID_PLATFORM_STATE);
          assert.equal(fingerprint(h), before);
        } else assert.notEqual(status, SevStatus.INVALID_PLATFORM_STATE);
      });
    }
  }
  it("Rome has no SNP firmware: every SNP id is INVALID_COMMAND", () => {
    const h = snpHost({ init: false });
    assert.equal(h.sp.issue(0x95, 0), SevStatus.INVALID_COMMAND, "an SNP id not implemented");
  });
});
