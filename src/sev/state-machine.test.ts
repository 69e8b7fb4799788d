/**
 * Every (guest state × guest command) and (platform state × command) pair, exhaustively: only the transitions of
 * docs/sev-interface.md §2/§3 succeed; every other pair returns INVALID_GUEST_STATE / INVALID_PLATFORM_STATE and changes
 * nothing (firmware snapshot, platform status and guest memory byte-identical).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { Algo, encodeSevCert, signSevCertEcdsa, Usage } from "../certs/sev-cert.ts";
import { generateEcKeyPair } from "../crypto/ec.ts";
import { seededRandom } from "../crypto/random.ts";
import { Cmd, type CmdName, GUEST_CMDS } from "./commands.ts";
import { createEmulatedPlatform, type EmulatedPlatform, GUEST_BASE, TMR_PA } from "./emulated-platform.ts";
import { GUEST_TABLE, type GuestStateName, PLATFORM_TABLE, type PlatformStateName } from "./state-tables.ts";
import { formatStatus, SevStatus } from "./status.ts";
import {
  DBG_DST,
  IMAGE_PA,
  RECV_PA,
  receiverCerts,
  type Scenario,
  SECRET_PA,
  scenario,
  secretPacket,
  statusOf,
  VMSA_PA,
} from "./test-support.ts";

const dummyPacket = { header: new Uint8Array(0x34), payload: new Uint8Array(16) };

/** For each guest command: optional preparation (run only when the pair is allowed) and the call itself. */
const guestCalls: Record<string, { prep?: (s: Scenario) => void; call: (s: Scenario) => void }> = {
  ACTIVATE: {
    prep: (s) => {
      s.on.client.deactivate(s.handle);
      s.on.sp.wbinvdAllCores();
      s.on.client.dfFlush();
    },
    call: (s) => s.on.client.activate(s.handle, s.asid),
  },
  DEACTIVATE: { call: (s) => s.on.client.deactivate(s.handle) },
  DECOMMISSION: {
    prep: (s) => s.on.client.deactivate(s.handle),
    call: (s) => s.on.client.decommission(s.handle),
  },
  GUEST_STATUS: { call: (s) => s.on.client.guestStatus(s.handle) },
  LAUNCH_UPDATE_DATA: { call: (s) => s.on.client.launchUpdateData(s.handle, IMAGE_PA, 16) },
  LAUNCH_UPDATE_VMSA: { call: (s) => s.on.client.launchUpdateVmsa(s.handle, VMSA_PA + 0x1000) },
  LAUNCH_MEASURE: { call: (s) => s.on.client.launchMeasure(s.handle) },
  LAUNCH_SECRET: {
    call: (s) =>
      s.on.client.launchSecret(
        s.handle,
        secretPacket(s.owner.keys, s.measure ?? new Uint8Array(32), new Uint8Array(32)),
        SECRET_PA,
      ),
  },
  LAUNCH_FINISH: { call: (s) => s.on.client.launchFinish(s.handle) },
  SEND_START: { call: (s) => s.on.client.sendStart(s.handle, receiverCerts(s.b)) },
  SEND_UPDATE_DATA: { call: (s) => s.on.client.sendUpdateData(s.handle, IMAGE_PA, 16) },
  SEND_UPDATE_VMSA: { call: (s) => s.on.client.sendUpdateVmsa(s.handle, VMSA_PA) },
  SEND_FINISH: { call: (s) => s.on.client.sendFinish(s.handle) },
  SEND_CANCEL: { call: (s) => s.on.client.sendCancel(s.handle) },
  RECEIVE_UPDATE_DATA: {
    call: (s) => s.on.client.receiveUpdateData(s.handle, s.inbound?.data ?? dummyPacket, RECV_PA),
  },
  RECEIVE_UPDATE_VMSA: {
    call: (s) => s.on.client.receiveUpdateVmsa(s.handle, s.inbound?.vmsa ?? dummyPacket, RECV_PA + 0x4000),
  },
  RECEIVE_FINISH: { call: (s) => s.on.client.receiveFinish(s.handle) },
  DBG_DECRYPT: { call: (s) => s.on.client.dbgDecrypt(s.handle, IMAGE_PA, DBG_DST, 32) },
  DBG_ENCRYPT: { call: (s) => s.on.client.dbgEncrypt(s.handle, DBG_DST, IMAGE_PA + 0x1000, 32) },
};

/** What must not change when a command is refused. */
function fingerprint(p: EmulatedPlatform): string {
  const mem = createHash("sha256").update(p.dram.read(GUEST_BASE, 0x50000)).digest("hex");
  return JSON.stringify({ snap: p.sp.snapshot(), status: p.client.platformStatus(), mem });
}

const guestStates = Object.keys(GUEST_TABLE) as Exclude<GuestStateName, "UNINIT">[];

describe("guest state × guest command (exhaustive)", () => {
  it("covers every guest command", () => {
    assert.deepEqual(Object.keys(guestCalls).sort(), [...GUEST_CMDS].sort());
  });

  for (const state of guestStates) {
    it(`from ${state}: only the table's commands succeed`, () => {
      for (const cmd of [...GUEST_CMDS] as CmdName[]) {
        const s = scenario(state);
        const spec = guestCalls[cmd]!;
        const next = GUEST_TABLE[state][cmd];
        if (next === undefined) {
          const before = fingerprint(s.on);
          const status = statusOf(() => spec.call(s));
          assert.equal(
            formatStatus(status),
            formatStatus(SevStatus.INVALID_GUEST_STATE),
            `${state} × ${cmd}`,
          );
          assert.equal(fingerprint(s.on), before, `${state} × ${cmd} changed the firmware or memory`);
        } else {
          spec.prep?.(s);
          const status = statusOf(() => spec.call(s));
          assert.equal(formatStatus(status), formatStatus(SevStatus.SUCCESS), `${state} × ${cmd}`);
          const expected = cmd === "DECOMMISSION" ? undefined : next === "same" ? state : next;
          assert.equal(s.on.sp.guestState(s.handle), expected, `${state} × ${cmd} → ${String(expected)}`);
        }
      }
    });
  }
});

/** A valid call for every command, for the platform-state table. */
function platformCall(p: EmulatedPlatform, cmd: CmdName, inbound: Inbound): () => unknown {
  const c = p.client;
  switch (cmd) {
    case "INIT":
      return () => c.init({ es: true, tmrPa: TMR_PA });
    case "SHUTDOWN":
      return () => c.shutdown();
    case "PLATFORM_RESET":
      return () => c.platformReset();
    case "PLATFORM_STATUS":
      return () => c.platformStatus();
    case "PEK_GEN":
      return () => c.pekGen();
    case "PEK_CSR":
      return () => c.pekCsr();
    case "PEK_CERT_IMPORT":
      return () => {
        const oca = generateEcKeyPair(seededRandom("owner-oca"));
        const ocaCert = signSevCertEcdsa(
          encodeSevCert({
            apiMajor: 0,
            apiMinor: 0,
            usage: Usage.OCA,
            algo: Algo.ECDSA_SHA256,
            pub: oca.pub,
          }),
          1,
          Usage.OCA,
          oca.d,
        );
        // The CSR is read with the platform in its current state (PEK_CSR is INIT-only, so outside INIT this
        // call fails at the CSR with the same status the import would get).
        const csr = c.pekCsr();
        c.pekCertImport(signSevCertEcdsa(csr, 1, Usage.OCA, oca.d), ocaCert);
      };
    case "PDH_CERT_EXPORT":
      return () => c.pdhCertExport();
    case "PDH_GEN":
      return () => c.pdhGen();
    case "DF_FLUSH":
      return () => c.dfFlush();
    case "GET_ID":
      return () => c.getId();
    case "LAUNCH_START":
      return () => c.launchStart({ policy: 0 });
    case "RECEIVE_START":
      return () => c.receiveStart({ policy: 0, senderPdh: inbound.senderPdh, session: inbound.session });
    default:
      // Guest commands with handle 0 (no such guest).
      return () => p.sp.issue(0, 0);
  }
}

interface Inbound {
  senderPdh: Uint8Array;
  session: Uint8Array;
}

/**
 * A platform in `state`, plus a migration session a peer made for it (made while the platform is INIT, since its
 * PDH persists across SHUTDOWN).
 */
function platformIn(state: PlatformStateName): { p: EmulatedPlatform; inbound: Inbound } {
  const p = createEmulatedPlatform({ seed: `plat-${state}` });
  const peer = createEmulatedPlatform({ seed: "peer" });
  const { handle } = peer.client.launchStart({ policy: 0 });
  peer.client.activate(handle, peer.asids.allocate("sev"));
  peer.client.launchMeasure(handle);
  peer.client.launchFinish(handle);
  const { session } = peer.client.sendStart(handle, receiverCerts(p));
  const inbound = { senderPdh: peer.client.pdhCertExport().pdh, session };
  if (state === "UNINIT") p.client.shutdown();
  if (state === "WORKING") p.client.launchStart({ policy: 0 });
  return { p, inbound };
}

describe("platform state × command (exhaustive)", () => {
  for (const state of ["UNINIT", "INIT", "WORKING"] as PlatformStateName[]) {
    it(`in ${state}: commands outside the table get INVALID_PLATFORM_STATE and change nothing`, () => {
      for (const cmd of Object.keys(PLATFORM_TABLE) as CmdName[]) {
        const { p, inbound } = platformIn(state);
        const allowed = PLATFORM_TABLE[cmd].includes(state);
        const before = fingerprint(p);
        if (GUEST_CMDS.has(cmd)) {
          // Handle 0 is never a guest: allowed platform state → INVALID_GUEST; otherwise the state error first.
          const buf = new Uint8Array(0x40);
          p.dram.write(0x180000, buf);
          const status = p.sp.issue(cmdId(cmd), 0x180000);
          const expected = allowed ? SevStatus.INVALID_GUEST : SevStatus.INVALID_PLATFORM_STATE;
          // DBG_* check 16-byte granularity before the handle: a zero length is INVALID_LENGTH.
          const dbgExpected = allowed ? SevStatus.INVALID_LENGTH : SevStatus.INVALID_PLATFORM_STATE;
          const want = cmd.startsWith("DBG_") ? dbgExpected : expected;
          assert.equal(formatStatus(status), formatStatus(want), `${state} × ${cmd}`);
          assert.equal(fingerprint(p), before, `${state} × ${cmd} changed something`);
          continue;
        }
        const status = statusOf(platformCall(p, cmd, inbound));
        if (allowed) {
          assert.equal(formatStatus(status), formatStatus(SevStatus.SUCCESS), `${state} × ${cmd}`);
        } else {
          assert.equal(
            formatStatus(status),
            formatStatus(SevStatus.INVALID_PLATFORM_STATE),
            `${state} × ${cmd}`,
          );
          assert.equal(fingerprint(p), before, `${state} × ${cmd} changed something`);
        }
      }
    });
  }

  it("an unknown command id gets INVALID_COMMAND", () => {
    const { p } = platformIn("INIT");
    for (const id of [0x00, 0x0b, 0x0d, 0x26, 0x36, 0x45, 0x54, 0x62, 0x81, 0xffff]) {
      assert.equal(p.sp.issue(id, 0), SevStatus.INVALID_COMMAND, `0x${id.toString(16)}`);
    }
  });
});

function cmdId(name: CmdName): number {
  return Cmd[name];
}
