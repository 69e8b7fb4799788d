import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aes128Ctr } from "../crypto/aes.ts";
import { sha256 } from "../crypto/hash.ts";
import { encodePacketHeader, launchSecretMac } from "../crypto/packet.ts";
import { seededRandom } from "../crypto/random.ts";
import { measurementMac } from "../measure/measurement.ts";
import { createEmulatedPlatform, GUEST_BASE } from "./emulated-platform.ts";
import { SevFirmwareError } from "./errors.ts";
import { SevStatus } from "./status.ts";
import { ownerSession } from "./test-support.ts";

describe("launch with a guest-owner session", () => {
  it("measures what an owner computes, accepts its secret, and the guest key decrypts it", () => {
    const { dram, client, asids, sp } = createEmulatedPlatform();
    const policy = 0x01; // NODBG
    const { pdh } = client.pdhCertExport();
    const owner = ownerSession(pdh, policy);
    const { handle } = client.launchStart({ policy, godhCert: owner.godhCert, session: owner.session });
    const asid = asids.allocate("sev");
    client.activate(handle, asid);
    const image = seededRandom("fw").bytes(64 * 1024);
    dram.write(GUEST_BASE, image);
    client.launchUpdateData(handle, GUEST_BASE, image.length);
    // In place: DRAM now holds ciphertext.
    assert.notDeepEqual(dram.read(GUEST_BASE, 64), image.subarray(0, 64));
    assert.deepEqual(sp.keySlots.decrypt(asid, GUEST_BASE, dram.read(GUEST_BASE, image.length)), image);

    const blob = client.launchMeasure(handle);
    const status = client.platformStatus();
    const expected = measurementMac(owner.keys.tik, {
      apiMajor: status.apiMajor,
      apiMinor: status.apiMinor,
      build: status.build,
      policy,
      launchDigest: sha256(image),
      mnonce: blob.subarray(32),
    });
    assert.deepEqual(blob.subarray(0, 32), expected);

    const secret = new TextEncoder().encode("MY-LUKS-PASSPHRASE-AND-PADDING!!");
    const iv = seededRandom("iv").bytes(16);
    const trans = aes128Ctr(owner.keys.tek, iv, secret);
    const mac = launchSecretMac(owner.keys.tik, 0, iv, secret.length, trans, blob.subarray(0, 32));
    const secretPa = GUEST_BASE + 0x20000;
    client.launchSecret(
      handle,
      { header: encodePacketHeader({ flags: 0, iv, mac }), payload: trans },
      secretPa,
    );
    assert.deepEqual(sp.keySlots.decrypt(asid, secretPa, dram.read(secretPa, secret.length)), secret);

    const badMac = mac.slice();
    badMac[0]! ^= 1;
    assert.throws(
      () =>
        client.launchSecret(
          handle,
          { header: encodePacketHeader({ flags: 0, iv, mac: badMac }), payload: trans },
          secretPa,
        ),
      (e: unknown) => e instanceof SevFirmwareError && e.status === SevStatus.BAD_MEASUREMENT,
    );
    client.launchFinish(handle);
    assert.equal(client.guestStatus(handle).state, "RUNNING");
  });

  it("refuses a session whose wrap_mac has one flipped byte, and changes nothing", () => {
    const { client } = createEmulatedPlatform();
    const { pdh } = client.pdhCertExport();
    const owner = ownerSession(pdh, 0x05);
    const bad = owner.session.slice();
    bad[0x40]! ^= 0x80;
    assert.throws(
      () => client.launchStart({ policy: 0x05, godhCert: owner.godhCert, session: bad }),
      (e: unknown) => e instanceof SevFirmwareError && e.status === SevStatus.BAD_MEASUREMENT,
    );
    assert.equal(client.platformStatus().guestCount, 0);
    assert.equal(client.platformStatus().state, "INIT");
    const { handle } = client.launchStart({ policy: 0x05, godhCert: owner.godhCert, session: owner.session });
    assert.ok(handle > 0);
  });
});
