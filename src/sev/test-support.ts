/**
 * Test scaffolding shared by the firmware test files: a guest owner (session + secret packets) and a pair of
 * platforms so a guest can be brought into every state. Not part of the library API.
 */
import { Algo, encodeSevCert, parseSevCert, Usage } from "../certs/sev-cert.ts";
import { aes128Ctr } from "../crypto/aes.ts";
import { ecdh, generateEcKeyPair } from "../crypto/ec.ts";
import { encodePacketHeader, launchSecretMac } from "../crypto/packet.ts";
import { seededRandom } from "../crypto/random.ts";
import { encodeSession, type TransportKeys, wrapSession } from "../crypto/session.ts";
import { concat } from "../lib/bytes.ts";
import type { Generation } from "../machine/cpu-models.ts";
import type { Packet } from "./client.ts";
import { createEmulatedPlatform, type EmulatedPlatform, GUEST_BASE } from "./emulated-platform.ts";
import { SevFirmwareError } from "./errors.ts";
import { exportFullChain } from "./export.ts";
import { PolicyBit } from "./policy.ts";
import type { GuestStateName } from "./state-tables.ts";
import { SevStatus } from "./status.ts";

export interface OwnerSession {
  keys: TransportKeys;
  godhCert: Uint8Array;
  session: Uint8Array;
}

/** What a guest owner does for a platform's PDH (docs/sev-interface.md §9). */
export function ownerSession(pdhCert: Uint8Array, policy: number, seed: string | number = 7): OwnerSession {
  const rng = seededRandom(`owner-${seed}`);
  const godh = generateEcKeyPair(rng);
  const pdh = parseSevCert(pdhCert);
  if (pdh.key.kind !== "ecc") throw new Error("PDH is not ECC");
  const z = ecdh(godh.d, pdh.key.pub);
  const keys = { tek: rng.bytes(16), tik: rng.bytes(16) };
  const session = wrapSession(z, keys, policy, rng.bytes(16), rng.bytes(16));
  const godhCert = encodeSevCert({
    apiMajor: 0,
    apiMinor: 0,
    usage: Usage.PDH,
    algo: Algo.ECDH_SHA256,
    pub: godh.pub,
  });
  return { keys, godhCert, session: encodeSession(session) };
}

/** A LAUNCH_SECRET packet for `secret` (a multiple of 16 bytes) bound to MEASURE. */
export function secretPacket(keys: TransportKeys, measure: Uint8Array, secret: Uint8Array, seed = 1): Packet {
  const iv = seededRandom(`iv-${seed}`).bytes(16);
  const payload = aes128Ctr(keys.tek, iv, secret);
  const mac = launchSecretMac(keys.tik, 0, iv, secret.length, payload, measure);
  return { header: encodePacketHeader({ flags: 0, iv, mac }), payload };
}

/** The status a client call ended with (SUCCESS when it returned). */
export function statusOf(f: () => unknown): number {
  try {
    f();
    return SevStatus.SUCCESS;
  } catch (e) {
    if (e instanceof SevFirmwareError) return e.status;
    throw e;
  }
}

export const IMAGE_PA = GUEST_BASE;
export const IMAGE_LEN = 0x2000;
export const VMSA_PA = GUEST_BASE + 0x10000;
export const SECRET_PA = GUEST_BASE + 0x20000;
export const DBG_DST = GUEST_BASE + 0x30000;
export const RECV_PA = GUEST_BASE + 0x40000;

/** The receiver's certificates as SEND_START takes them. */
export function receiverCerts(p: EmulatedPlatform): {
  pdh: Uint8Array;
  platCerts: Uint8Array;
  amdCerts: Uint8Array;
} {
  const c = exportFullChain(p.client);
  return { pdh: c.pdh, platCerts: concat(c.pek, c.oca, c.cek), amdCerts: concat(c.ask, c.ark) };
}

export interface Scenario {
  a: EmulatedPlatform;
  b: EmulatedPlatform;
  /** The guest under test: on `a`, or on `b` for RUPDATE. */
  on: EmulatedPlatform;
  handle: number;
  asid: number;
  policy: number;
  owner: OwnerSession;
  measure?: Uint8Array;
  /** A valid sender packet for RECEIVE_UPDATE_DATA / _VMSA when the guest is in RUPDATE. */
  inbound?: { data: Packet; vmsa: Packet };
}

/**
 * Builds a guest in `state` (an SEV-ES guest on rome, so every command has a valid form). A second platform `b`
 * is the migration peer.
 */
export function scenario(
  state: Exclude<GuestStateName, "UNINIT">,
  opts: { policy?: number; generation?: Generation } = {},
): Scenario {
  const policy = opts.policy ?? PolicyBit.ES;
  const a = createEmulatedPlatform({ generation: opts.generation ?? "rome", seed: "a" });
  const b = createEmulatedPlatform({ generation: opts.generation ?? "rome", seed: "b" });
  const owner = ownerSession(a.client.pdhCertExport().pdh, policy);
  const es = (policy & PolicyBit.ES) !== 0;
  const launch = (p: EmulatedPlatform) => {
    const { handle } = p.client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
    const asid = p.asids.allocate(es ? "es" : "sev");
    p.client.activate(handle, asid);
    p.dram.write(IMAGE_PA, seededRandom("image").bytes(IMAGE_LEN));
    p.client.launchUpdateData(handle, IMAGE_PA, IMAGE_LEN);
    if (es) {
      p.dram.write(VMSA_PA, seededRandom("vmsa").bytes(4096));
      p.client.launchUpdateVmsa(handle, VMSA_PA);
    }
    return { handle, asid };
  };
  if (state === "RUPDATE") {
    const { handle: h } = launch(a);
    a.client.launchMeasure(h);
    a.client.launchFinish(h);
    const { session } = a.client.sendStart(h, receiverCerts(b));
    const data = a.client.sendUpdateData(h, IMAGE_PA, IMAGE_LEN);
    const vmsa = es ? a.client.sendUpdateVmsa(h, VMSA_PA) : data;
    const { handle } = b.client.receiveStart({ policy, senderPdh: a.client.pdhCertExport().pdh, session });
    const asid = b.asids.allocate(es ? "es" : "sev");
    b.client.activate(handle, asid);
    return { a, b, on: b, handle, asid, policy, owner, inbound: { data, vmsa } };
  }
  const { handle, asid } = launch(a);
  const sc: Scenario = { a, b, on: a, handle, asid, policy, owner };
  if (state === "LUPDATE") return sc;
  sc.measure = a.client.launchMeasure(handle).slice(0, 32);
  if (state === "LSECRET") return sc;
  a.client.launchFinish(handle);
  if (state === "RUNNING") return sc;
  a.client.sendStart(handle, receiverCerts(b));
  if (state === "SUPDATE") return sc;
  a.client.sendFinish(handle);
  return sc;
}
