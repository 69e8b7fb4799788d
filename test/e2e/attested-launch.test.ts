/**
 * The guest owner's whole flow against an emulated host (issues "guest owner's toolkit" and "hypervisor host"):
 * verify the platform chain against the emulated root, make a session for its PDH, let the host launch the VM
 * paused, check the measurement against the digest computed from the same firmware, inject a secret, and watch the
 * guest read it from its secret area. A tampered firmware image changes the measurement and the owner refuses.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { parseSevChain, verifySevChain } from "../../src/certs/chain.ts";
import { loadBuiltinRoots } from "../../src/certs/roots.ts";
import { seededRandom } from "../../src/crypto/random.ts";
import { builtinUefiImage } from "../../src/hypervisor/builtin-uefi.ts";
import { Host } from "../../src/hypervisor/host.ts";
import { QEMU_VCPU_MODEL } from "../../src/hypervisor/launch.ts";
import type { LaunchSpec } from "../../src/hypervisor/types.ts";
import { computeLaunchDigest } from "../../src/measure/launch-digest.ts";
import { vcpuSignatureOf } from "../../src/measure/vcpu-types.ts";
import { buildLaunchSecret } from "../../src/owner/secret.ts";
import { createLaunchSession } from "../../src/owner/session.ts";
import { checkLaunchMeasurement } from "../../src/owner/verify-measurement.ts";
import { emulatedRootCerts, kdsSignedCek } from "../../src/sev/manufacturer/emulated-amd.ts";

const SECRET_GUID = "736869e5-84f0-4973-92ec-06879ce3da0b";
/** "CVSECRET" as the guest reads it (little-endian u64). */
const SECRET_WORD = 0x5445524345535643n;
/** The secret table header GUID 1e74f542-…, first 8 bytes in EFI order, as a little-endian u64. */
const TABLE_WORD = 0x4d6671dd1e74f542n;

/** The guest checks the secret table at the firmware's secret area and prints Y or N on its serial port. */
const READER = `
.entry start
start:
    load rax, [0x80c000]
    mov rbx, ${TABLE_WORD}
    cmp rax, rbx
    jnz bad
    load rax, [0x80c028]
    mov rbx, ${SECRET_WORD}
    cmp rax, rbx
    jnz bad
    mov rax, 0x59
    out8 0x3f8
    jmp done
bad:
    mov rax, 0x4e
    out8 0x3f8
done:
    hlt
    jmp done
`;

function ownerView(host: Host) {
  const { pdh, pek, oca } = host.firmware.pdhCertExport();
  // What an owner fetches: the ASK-signed CEK from the (emulated) KDS by GET_ID, and the emulated ASK/ARK.
  const cek = kdsSignedCek(host.model.generation, host.firmware.getId());
  const { ark, ask } = emulatedRootCerts(host.model.generation);
  verifySevChain(parseSevChain({ ark, ask, cek, oca, pek, pdh }), { roots: loadBuiltinRoots("emulated") });
  return pdh;
}

function spec(
  name: string,
  firmware: Uint8Array,
  session: { godhCert: Uint8Array; session: Uint8Array },
): LaunchSpec {
  return {
    name,
    vcpus: 2,
    memoryMiB: 64,
    firmware: { kind: "efi", image: firmware },
    hardwareVersion: 19,
    guestOs: "linux-5.19",
    devices: [],
    security: "sev-es",
    policy: 0x07,
    session,
    attestation: true,
    program: READER,
  };
}

describe("attested launch, end to end", () => {
  const expectedFirmware = builtinUefiImage();

  function launch(firmware: Uint8Array, seed: string) {
    const host = new Host({ name: `rome-${seed}`, generation: "rome", seed });
    const pdh = ownerView(host);
    const session = createLaunchSession(pdh, 0x07, seededRandom(`owner-${seed}`));
    host.define(spec("vault", firmware, { godhCert: session.godhCert, session: session.session }));
    const started = host.start("vault");
    assert.equal(started.status.power, "paused");
    const blob = new Uint8Array(Buffer.from(started.launchMeasurement!, "base64"));
    const st = host.firmware.platformStatus();
    const check = checkLaunchMeasurement({
      tik: session.keys.tik,
      launchMeasureBlob: blob,
      apiMajor: st.apiMajor,
      apiMinor: st.apiMinor,
      build: st.build,
      policy: 0x07,
      launchDigest: computeLaunchDigest({
        mode: "sev-es",
        firmware: expectedFirmware,
        vcpus: 2,
        vcpuSignature: vcpuSignatureOf(QEMU_VCPU_MODEL.rome),
        vmm: "qemu-legacy", // the host's default VMM profile (docs/sev-interface.md §8.5)
      }),
    });
    return { host, session, blob, check };
  }

  it("the owner verifies the measurement, injects a secret, and the guest reads it", () => {
    const { host, session, blob, check } = launch(expectedFirmware, "good");
    assert.equal(check.match, true);
    const data = new TextEncoder().encode("CVSECRET: the disk key");
    const packet = buildLaunchSecret({
      tek: session.keys.tek,
      tik: session.keys.tik,
      measure: blob.subarray(0, 32),
      entries: [{ guid: SECRET_GUID, data }],
      rng: seededRandom("iv"),
    });
    const status = host.finishLaunch("vault", { header: packet.header, payload: packet.payload });
    assert.equal(status.power, "running", status.reason);
    // The kernel's efi_secret driver prints the entry's hash at boot; then the program finds the secret itself.
    const digest = createHash("sha256").update(data).digest("hex");
    assert.equal(
      status.console,
      `efi_secret: secret ${SECRET_GUID} (${data.length} bytes) sha256 ${digest}\nY`,
      "the guest found its secret in its secret area",
    );
    // The hypervisor sees only ciphertext there.
    const seen = host.view("vault")!.readGuestPhysical(0x80c000, 64);
    assert.equal(Buffer.from(seen).includes(Buffer.from("CVSECRET")), false);
  });

  it("without the secret the guest finds nothing; a forged secret is refused and the VM stays paused", () => {
    const { host, session, blob } = launch(expectedFirmware, "forged");
    const packet = buildLaunchSecret({
      tek: session.keys.tek,
      tik: session.keys.tik,
      measure: blob.subarray(0, 32),
      entries: [{ guid: SECRET_GUID, data: new TextEncoder().encode("CVSECRET") }],
      rng: seededRandom("iv"),
    });
    const forged = packet.payload.slice();
    forged[0]! ^= 1;
    assert.throws(
      () => host.finishLaunch("vault", { header: packet.header, payload: forged }),
      /BAD_MEASUREMENT/,
    );
    assert.equal(host.status("vault").power, "paused");
    assert.equal(host.finishLaunch("vault").console, "N");
  });

  it("a tampered firmware image changes the measurement, so the owner releases no secret", () => {
    const tampered = expectedFirmware.slice();
    tampered[0x100]! ^= 0x01;
    const { host, check } = launch(tampered, "tampered");
    assert.equal(check.match, false);
    // The owner's rule: no match, no secret. The VM waits, paused, with nothing injected.
    assert.equal(host.status("vault").power, "paused");
  });
});
