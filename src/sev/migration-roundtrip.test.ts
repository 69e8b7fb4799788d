/**
 * docs/threat-model.md §8 item 13 (E-MIGRATE), the round-trip subset: SEND_* on one emulated platform, RECEIVE_* on
 * another, 100 times over the same two platforms, and the directed refusals the firmware dictates.
 *
 * Per trial (seeded): an SEV or SEV-ES guest with 2–4 private regions of random length (multiple of 16, up to three
 * pages) at random 16-byte-aligned addresses (plus the VMSA for SEV-ES) is launched on A, sent to B and received at
 * other addresses. Then: B's memory decrypts to the same plaintext (hash preserved); A's context is SENT and refuses
 * SEND_START, SEND_UPDATE_DATA and ACTIVATE (state table); after teardown A's handle is gone (DECOMMISSION) and B's
 * is RUNNING, so each guest has exactly one owner; ASIDs go back through DEACTIVATE → WBINVD → DF_FLUSH and both
 * pools are whole again before the next trial. Plaintext is read with the key slots directly: test ground truth,
 * which neither host could do.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sha256 } from "../crypto/hash.ts";
import { type RandomSource, seededRandom } from "../crypto/random.ts";
import type { Packet } from "./client.ts";
import { createEmulatedPlatform, type EmulatedPlatform, GUEST_BASE } from "./emulated-platform.ts";
import { PolicyBit } from "./policy.ts";
import { SevStatus } from "./status.ts";
import { receiverCerts, statusOf } from "./test-support.ts";

const TRIALS = 100;
const PAGE = 4096;
/** Each region gets its own 16 KiB slot (the largest packet the firmware takes), far above the client scratch. */
const SLOT = 0x4000;
const SEND_BASE = GUEST_BASE + 0x100000;
const RECV_BASE = GUEST_BASE + 0x200000;
const VMSA_SLOT = 7;

interface Region {
  pa: number;
  plain: Uint8Array;
}

function int(rng: RandomSource, n: number): number {
  const b = rng.bytes(4);
  return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) % n;
}

/** Random regions: 2–4, each 16..3 pages long (multiple of 16), at a random 16-byte offset inside its slot. */
function randomRegions(rng: RandomSource, base: number): Region[] {
  const n = 2 + int(rng, 3);
  return Array.from({ length: n }, (_, i) => {
    const len = 16 * (1 + int(rng, (3 * PAGE) / 16));
    const off = 16 * int(rng, (SLOT - len) / 16 + 1);
    return { pa: base + i * SLOT + off, plain: rng.bytes(len) };
  });
}

function hashOf(parts: readonly Uint8Array[]): string {
  return Buffer.from(sha256(...parts)).toString("hex");
}

/** Launches a guest on `p` with `regions` (and a VMSA page for SEV-ES), up to RUNNING. */
function launch(p: EmulatedPlatform, policy: number, regions: readonly Region[], vmsa?: Region) {
  const es = (policy & PolicyBit.ES) !== 0;
  const { handle } = p.client.launchStart({ policy });
  const asid = p.asids.allocate(es ? "es" : "sev");
  p.client.activate(handle, asid);
  for (const r of regions) {
    p.dram.write(r.pa, r.plain);
    p.client.launchUpdateData(handle, r.pa, r.plain.length);
  }
  if (vmsa) {
    p.dram.write(vmsa.pa, vmsa.plain);
    p.client.launchUpdateVmsa(handle, vmsa.pa);
  }
  p.client.launchMeasure(handle);
  p.client.launchFinish(handle);
  return { handle, asid };
}

/** DEACTIVATE → DECOMMISSION, then the ASID goes through WBINVD on every core and DF_FLUSH. */
function retire(p: EmulatedPlatform, handle: number, asid: number): void {
  p.client.deactivate(handle);
  p.client.decommission(handle);
  p.asids.release(asid, true);
}

function poolsWhole(p: EmulatedPlatform): void {
  for (const pool of ["es", "sev"] as const) {
    const u = p.asids.usage(pool);
    assert.equal(u.inUse + u.reclaim, 0, `${pool} pool still holds ASIDs`);
  }
}

describe("SEND → RECEIVE round trips between two platforms (E-MIGRATE)", () => {
  const a = createEmulatedPlatform({ generation: "rome", seed: "mig-a" });
  const b = createEmulatedPlatform({ generation: "rome", seed: "mig-b" });
  const certsB = receiverCerts(b);
  const pdhA = a.client.pdhCertExport().pdh;

  /** A running guest on A sent to B up to (not including) RECEIVE_FINISH. */
  function sendToB(policy: number, rng: RandomSource, regions = randomRegions(rng, SEND_BASE)) {
    const es = (policy & PolicyBit.ES) !== 0;
    const vmsa = es ? { pa: SEND_BASE + VMSA_SLOT * SLOT, plain: rng.bytes(PAGE) } : undefined;
    const src = launch(a, policy, regions, vmsa);
    const { session } = a.client.sendStart(src.handle, certsB);
    const packets = regions.map((r) => a.client.sendUpdateData(src.handle, r.pa, r.plain.length));
    const vmsaPacket = vmsa ? a.client.sendUpdateVmsa(src.handle, vmsa.pa) : undefined;
    a.client.sendFinish(src.handle);
    const { handle } = b.client.receiveStart({ policy, senderPdh: pdhA, session });
    const asid = b.asids.allocate(es ? "es" : "sev");
    b.client.activate(handle, asid);
    return { src, regions, vmsa, packets, vmsaPacket, dst: { handle, asid } };
  }

  it(`${TRIALS} round trips of SEV and SEV-ES guests: plaintext preserved, sender dead, one owner, ASIDs clean`, () => {
    const rng = seededRandom("migration-roundtrip");
    let es = 0;
    for (let t = 0; t < TRIALS; t++) {
      const policy = int(rng, 2) === 1 ? PolicyBit.ES : 0;
      if (policy) es++;
      const m = sendToB(policy, rng);
      const want = hashOf([...m.regions.map((r) => r.plain), ...(m.vmsa ? [m.vmsa.plain] : [])]);
      // Received at other addresses: the packets carry no address, the VEK and the tweak are B's.
      const landed = m.regions.map((r, i) => ({
        pa: RECV_BASE + (i * SLOT + (r.pa % SLOT)),
        len: r.plain.length,
      }));
      for (const [i, pkt] of m.packets.entries())
        b.client.receiveUpdateData(m.dst.handle, pkt, landed[i]!.pa);
      const vmsaPa = RECV_BASE + VMSA_SLOT * SLOT;
      if (m.vmsaPacket) b.client.receiveUpdateVmsa(m.dst.handle, m.vmsaPacket, vmsaPa);
      b.client.receiveFinish(m.dst.handle);

      const got = landed.map((l) => b.sp.keySlots.decrypt(m.dst.asid, l.pa, b.dram.read(l.pa, l.len)));
      if (m.vmsaPacket) got.push(b.sp.keySlots.decrypt(m.dst.asid, vmsaPa, b.dram.read(vmsaPa, PAGE)));
      assert.equal(hashOf(got), want, `trial ${t}: memory hash changed`);
      // B stores ciphertext, not the plaintext.
      assert.notDeepEqual(b.dram.read(landed[0]!.pa, 16), m.regions[0]!.plain.subarray(0, 16));

      // The sender is SENT: it cannot be sent again, exported from, or brought back to life.
      assert.equal(a.client.guestStatus(m.src.handle).state, "SENT");
      assert.equal(
        statusOf(() => a.client.sendStart(m.src.handle, certsB)),
        SevStatus.INVALID_GUEST_STATE,
      );
      const r0 = m.regions[0]!;
      assert.equal(
        statusOf(() => a.client.sendUpdateData(m.src.handle, r0.pa, r0.plain.length)),
        SevStatus.INVALID_GUEST_STATE,
      );
      assert.equal(
        statusOf(() => a.client.activate(m.src.handle, m.src.asid)),
        SevStatus.INVALID_GUEST_STATE,
      );

      // One owner: the sender's context is decommissioned, the receiver's runs.
      retire(a, m.src.handle, m.src.asid);
      assert.equal(
        statusOf(() => a.client.guestStatus(m.src.handle)),
        SevStatus.INVALID_GUEST,
      );
      assert.deepEqual(b.client.guestStatus(m.dst.handle), {
        policy,
        asid: m.dst.asid,
        state: "RUNNING",
      });
      poolsWhole(a);
      // Tear the receiver down too so the next trial starts from the same two clean platforms.
      retire(b, m.dst.handle, m.dst.asid);
      poolsWhole(b);
    }
    // Both kinds of guest were exercised (seeded, so this is a fixed count, not luck).
    assert.ok(es > 20 && es < TRIALS - 20, `${es} SEV-ES trials`);
  });

  it("an ASID is reusable only after DEACTIVATE → WBINVD → DF_FLUSH", () => {
    const rng = seededRandom("asid-return");
    const src = launch(a, 0, randomRegions(rng, SEND_BASE));
    a.client.deactivate(src.handle);
    a.client.decommission(src.handle);
    const { handle } = a.client.launchStart({ policy: 0 });
    assert.equal(
      statusOf(() => a.client.activate(handle, src.asid)),
      SevStatus.DFFLUSH_REQUIRED,
    );
    assert.equal(
      statusOf(() => a.client.dfFlush()),
      SevStatus.WBINVD_REQUIRED,
    );
    a.sp.wbinvdAllCores();
    a.client.dfFlush();
    a.client.activate(handle, src.asid);
    retire(a, handle, src.asid);
    poolsWhole(a);
  });

  it("SEV ↔ SEV-ES: the policy bound into the session and the VMSA commands refuse the other kind", () => {
    const rng = seededRandom("kinds");
    for (const policy of [0, PolicyBit.ES]) {
      const regions = randomRegions(rng, SEND_BASE);
      const vmsa = policy ? { pa: SEND_BASE + VMSA_SLOT * SLOT, plain: rng.bytes(PAGE) } : undefined;
      const src = launch(a, policy, regions, vmsa);
      const { session } = a.client.sendStart(src.handle, certsB);
      // An SEV guest has no VMSA to send.
      if (!policy)
        assert.equal(
          statusOf(() => a.client.sendUpdateVmsa(src.handle, SEND_BASE)),
          SevStatus.UNSUPPORTED,
        );
      // The session's policy MAC binds the ES bit: a receiver context of the other kind cannot even start.
      const other = policy ^ PolicyBit.ES;
      assert.equal(
        statusOf(() => b.client.receiveStart({ policy: other, senderPdh: pdhA, session })),
        SevStatus.POLICY_FAILURE,
      );
      a.client.sendCancel(src.handle);
      retire(a, src.handle, src.asid);
    }
    // An SEV receiver context has no VMSA: RECEIVE_UPDATE_VMSA is UNSUPPORTED whatever the packet. The SEV guest
    // has a one-page region so its packet is VMSA-sized.
    const sev = sendToB(0, rng, [{ pa: SEND_BASE, plain: rng.bytes(PAGE) }]);
    const pkt = sev.packets[0]!;
    assert.equal(
      statusOf(() => b.client.receiveUpdateVmsa(sev.dst.handle, pkt, RECV_BASE)),
      SevStatus.UNSUPPORTED,
    );
    // An SEV-ES receiver context takes VMSA packets, but the SEV guest's packet (other TEK/TIK, data context)
    // fails its MAC: BAD_MEASUREMENT, not UNSUPPORTED.
    const es = sendToB(PolicyBit.ES, rng);
    assert.equal(
      statusOf(() => b.client.receiveUpdateVmsa(es.dst.handle, pkt, RECV_BASE)),
      SevStatus.BAD_MEASUREMENT,
    );
    for (const m of [sev, es]) {
      retire(a, m.src.handle, m.src.asid);
      retire(b, m.dst.handle, m.dst.asid);
    }
    poolsWhole(a);
    poolsWhole(b);
  });

  it("a packet replayed into a second receiver context (other TEK/TIK) is refused with BAD_MEASUREMENT", () => {
    const rng = seededRandom("replay");
    for (const policy of [0, PolicyBit.ES]) {
      const first = sendToB(policy, rng);
      const second = sendToB(policy, rng);
      const dst = RECV_BASE;
      const before = b.dram.read(dst, first.regions[0]!.plain.length);
      assert.equal(
        statusOf(() => b.client.receiveUpdateData(second.dst.handle, first.packets[0]!, dst)),
        SevStatus.BAD_MEASUREMENT,
      );
      assert.deepEqual(b.dram.read(dst, before.length), before, "a refused packet wrote memory");
      if (first.vmsaPacket) {
        assert.equal(
          statusOf(() => b.client.receiveUpdateVmsa(second.dst.handle, first.vmsaPacket!, dst)),
          SevStatus.BAD_MEASUREMENT,
        );
      }
      // The right context still accepts it (the refusal is about keys, not the packet).
      b.client.receiveUpdateData(first.dst.handle, first.packets[0]!, dst);
      for (const m of [first, second]) {
        retire(a, m.src.handle, m.src.asid);
        retire(b, m.dst.handle, m.dst.asid);
      }
    }
    poolsWhole(a);
    poolsWhole(b);
  });

  it("a VMSA packet applied as data, or a one-page data packet applied as a VMSA, is refused", () => {
    const rng = seededRandom("crossed");
    // A one-page data region next to the VMSA, in the same migration (same TEK/TIK): only the packet kind differs.
    const m = sendToB(PolicyBit.ES, rng, [{ pa: SEND_BASE, plain: rng.bytes(PAGE) }]);
    const onePage: Packet = m.packets[0]!;
    const vmsaPkt = m.vmsaPacket!;
    assert.equal(
      statusOf(() => b.client.receiveUpdateData(m.dst.handle, vmsaPkt, RECV_BASE)),
      SevStatus.BAD_MEASUREMENT,
    );
    assert.equal(
      statusOf(() => b.client.receiveUpdateVmsa(m.dst.handle, onePage, RECV_BASE)),
      SevStatus.BAD_MEASUREMENT,
    );
    // Each packet in its own command is accepted (so the refusals above are about the kind, nothing else).
    b.client.receiveUpdateVmsa(m.dst.handle, vmsaPkt, RECV_BASE + VMSA_SLOT * SLOT);
    b.client.receiveUpdateData(m.dst.handle, onePage, RECV_BASE);
    retire(a, m.src.handle, m.src.asid);
    retire(b, m.dst.handle, m.dst.asid);
    poolsWhole(a);
    poolsWhole(b);
  });
});
