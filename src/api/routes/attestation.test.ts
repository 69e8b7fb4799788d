/**
 * The guest owner's attested launch through the REST API, on an emulated host: fetch sev-info, verify the chain
 * against the emulated root with the KDS-signed CEK, make a session, PUT it, power on (paused), read the raw
 * measurement, check it off-host against the expected digest of the built-in firmware, inject a secret (a tampered
 * one is refused by the firmware and the VM stays paused), and the VM runs. Also: the RBAC split, bad input, and
 * that no response, log line or audit record carries the session or the secret.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSevChain, verifySevChain } from "../../certs/chain.ts";
import { loadBuiltinRoots } from "../../certs/roots.ts";
import { seededRandom } from "../../crypto/random.ts";
import { builtinUefiImage } from "../../hypervisor/builtin-uefi.ts";
import { QEMU_VCPU_MODEL } from "../../hypervisor/launch.ts";
import type { Generation } from "../../machine/cpu-models.ts";
import { computeLaunchDigest } from "../../measure/launch-digest.ts";
import { vcpuSignatureOf } from "../../measure/vcpu-types.ts";
import { buildLaunchSecret } from "../../owner/secret.ts";
import { createLaunchSession, type LaunchSession } from "../../owner/session.ts";
import { checkLaunchMeasurement } from "../../owner/verify-measurement.ts";
import { emulatedRootCerts, kdsSignedCek } from "../../sev/manufacturer/emulated-amd.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

const GUID = "736869e5-84f0-4973-92ec-06879ce3da0b";
const bytes = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** The owner's side of sev-info: verify PDH → PEK → OCA/CEK → ASK → ARK against the emulated root. */
function verifyPlatform(info: Record<string, unknown>, generation: Generation): Uint8Array {
  const cek = kdsSignedCek(generation, new Uint8Array(Buffer.from(String(info.cpu0Id), "hex")));
  const { ark, ask } = emulatedRootCerts(generation);
  const pdh = bytes(String(info.pdh));
  const chain = bytes(String(info.certChain));
  assert.deepEqual(chain.subarray(0, 0x824), bytes(String(info.pek)));
  verifySevChain(
    parseSevChain({ ark, ask, cek, oca: bytes(String(info.oca)), pek: bytes(String(info.pek)), pdh }),
    { roots: loadBuiltinRoots("emulated") },
  );
  return pdh;
}

async function pausedVm(a: ApiFixture, seed: string) {
  const hostId = await a.host(`rome-${seed}`, "rome");
  const vm = await a.vm(`vault-${seed}`, "sev-es", { hostId, spec: { ...linuxish, vcpus: 2 } });
  const info = await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`);
  assert.equal(info.statusCode, 200, info.body);
  const pdh = verifyPlatform(json(info), "rome");
  const session = createLaunchSession(pdh, vm.policy, seededRandom(`owner-${seed}`));
  const put = await a.call("attestation-admin", "PUT", `/v1/vms/${vm.id}/launch-session`, {
    godhCert: b64(session.godhCert),
    session: b64(session.session),
  });
  assert.equal(put.statusCode, 200, put.body);
  assert.equal(json(put).attestationState, "session-set");
  assert.equal(json(put).policy, vm.policy);
  assert.equal(
    (await a.inventory.vms.get(vm.id))?.spec.launchSession?.session,
    b64(session.session),
    "stored",
  );
  for (const url of [`/v1/vms/${vm.id}`, "/v1/vms"]) {
    const read = await a.call("attestation-reader", "GET", url);
    assert.equal(read.statusCode, 200);
    assert.equal(read.body.includes(b64(session.session)), false, `${url} does not show the session`);
    assert.equal(read.body.includes("launchSession"), false);
  }
  const on = await a.call("operator", "POST", `/v1/vms/${vm.id}/power-on`);
  assert.equal(on.statusCode, 200, on.body);
  assert.equal((await a.inventory.vms.get(vm.id))?.powerState, "paused");
  return { vm, session, hostId };
}

const linuxish = {
  vcpus: 1,
  memoryMiB: 32,
  guestOs: "linux-5.19",
  firmware: "efi",
  hardwareVersion: 19,
} as const;

function expectedDigest(vcpus: number): Uint8Array {
  return computeLaunchDigest({
    mode: "sev-es",
    firmware: builtinUefiImage(),
    vcpus,
    vcpuSignature: vcpuSignatureOf(QEMU_VCPU_MODEL.rome),
    vmm: "qemu-legacy", // the host's default VMM profile (docs/sev-interface.md §8.5)
  });
}

function secretFor(session: LaunchSession, blob: Uint8Array, data = "CVSECRET: the disk key") {
  return buildLaunchSecret({
    tek: session.keys.tek,
    tik: session.keys.tik,
    measure: blob.subarray(0, 32),
    entries: [{ guid: GUID, data: new TextEncoder().encode(data) }],
    rng: seededRandom("iv"),
  });
}

/** Every audit record as text. */
async function auditText(a: ApiFixture): Promise<string> {
  return JSON.stringify((await a.inventory.audit.list({}, { limit: 5000 })).items);
}

describe("attestation API: the owner's flow", () => {
  it("sev-info → session → paused launch → raw measurement → owner check → secret → running", () =>
    withApi(async (a) => {
      const { vm, session } = await pausedVm(a, "flow");
      const m = await a.call("attestation-reader", "GET", `/v1/vms/${vm.id}/launch-measurement`);
      assert.equal(m.statusCode, 200, m.body);
      const facts = json(m);
      assert.equal(facts.policy, vm.policy);
      assert.equal(facts.attestationState, "measured");
      assert.doesNotMatch(m.body, /verified/i, "the control plane gives facts, never a verdict");
      const blob = bytes(String(facts.measurement));
      assert.equal(blob.length, 48);
      const check = checkLaunchMeasurement({
        tik: session.keys.tik,
        launchMeasureBlob: blob,
        apiMajor: Number(facts.apiMajor),
        apiMinor: Number(facts.apiMinor),
        build: Number(facts.build),
        policy: Number(facts.policy),
        launchDigest: expectedDigest(2),
      });
      assert.equal(check.match, true, "the owner's own check passes");

      const good = secretFor(session, blob);
      const tampered = good.payload.slice();
      tampered[0]! ^= 1;
      const bad = await a.call("attestation-admin", "POST", `/v1/vms/${vm.id}/launch-secret`, {
        header: b64(good.header),
        secret: b64(tampered),
      });
      assert.equal(bad.statusCode, 409, bad.body);
      assert.equal(json(bad).code, "BAD_MEASUREMENT");
      assert.equal((json(bad).firmware as Record<string, unknown>).statusName, "BAD_MEASUREMENT");
      assert.equal((await a.inventory.vms.get(vm.id))?.powerState, "paused", "still paused");

      const ok = await a.call("attestation-admin", "POST", `/v1/vms/${vm.id}/launch-secret`, {
        header: b64(good.header),
        secret: b64(good.payload),
      });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.deepEqual(json(ok), {
        vm: vm.id,
        name: vm.name,
        powerState: "running",
        attestationState: "secret-injected",
      });
      const after = await a.inventory.vms.get(vm.id);
      assert.equal(after?.spec.launchSession, undefined, "a used session is dropped");
      const st = await (await a.driver.connect("rome-flow")).status(vm.id);
      assert.equal(st?.power, "running");

      // The measurement is gone with the paused state.
      const late = await a.call("attestation-reader", "GET", `/v1/vms/${vm.id}/launch-measurement`);
      assert.equal(late.statusCode, 409);

      // Every call is audited — the failed injection with the firmware's code — and no record holds a secret.
      const audit = (await a.inventory.audit.list({ target: vm.id }, { limit: 5000 })).items;
      const actions = audit.map((r) => `${r.action}:${r.outcome}`);
      for (const x of [
        "vm.launch-session.set:ok",
        "vm.launch-measurement.read:ok",
        "vm.launch-secret.inject:failed",
        "vm.launch-secret.inject:ok",
      ]) {
        assert.ok(actions.includes(x), `${x} in ${actions.join(", ")}`);
      }
      const failed = audit.find((r) => r.action === "vm.launch-secret.inject" && r.outcome === "failed");
      assert.equal(failed?.details?.code, "BAD_MEASUREMENT");
      const text = `${await auditText(a)}\n${a.logs()}\n${ok.body}\n${bad.body}`;
      for (const secretBytes of [session.session, session.godhCert, good.payload, good.header, tampered]) {
        assert.equal(text.includes(b64(secretBytes)), false, "no session or secret bytes anywhere");
      }
    }));

  it("launch-finish runs the guest without a secret; power-off resets the state and the session is not reused", () =>
    withApi(async (a) => {
      const { vm } = await pausedVm(a, "finish");
      const fin = await a.call("attestation-admin", "POST", `/v1/vms/${vm.id}/launch-finish`);
      assert.equal(fin.statusCode, 200, fin.body);
      assert.equal(json(fin).attestationState, "finished");
      assert.equal(json(fin).powerState, "running");
      const again = await a.call("attestation-admin", "POST", `/v1/vms/${vm.id}/launch-finish`);
      assert.equal(again.statusCode, 409, "only a paused VM can be finished");
      const off = await a.call("operator", "POST", `/v1/vms/${vm.id}/power-off`);
      assert.equal(off.statusCode, 200, off.body);
      const v = await a.inventory.vms.get(vm.id);
      assert.equal(v?.attestationState, "none");
      assert.equal(v?.spec.attestation, true, "the VM still launches paused for its owner");
    }));

  it("RBAC: the reader cannot set a session or inject; the operator cannot read; denials are audited", () =>
    withApi(async (a) => {
      const { vm, session, hostId } = await pausedVm(a, "rbac");
      const body = { godhCert: b64(session.godhCert), session: b64(session.session) };
      const tries: [string, string, string, unknown][] = [
        ["attestation-reader", "PUT", `/v1/vms/${vm.id}/launch-session`, body],
        ["attestation-reader", "POST", `/v1/vms/${vm.id}/launch-secret`, { header: "AAAA", secret: "AAAA" }],
        ["attestation-reader", "POST", `/v1/vms/${vm.id}/launch-finish`, undefined],
        ["operator", "GET", `/v1/vms/${vm.id}/launch-measurement`, undefined],
        ["operator", "GET", `/v1/hosts/${hostId}/sev-info`, undefined],
        ["security-admin", "POST", `/v1/vms/${vm.id}/launch-finish`, undefined],
        ["viewer", "GET", `/v1/vms/${vm.id}/launch-measurement`, undefined],
      ];
      for (const [role, method, url, b] of tries) {
        const r = await a.call(role as "viewer", method, url, b);
        assert.equal(r.statusCode, 403, `${role} ${method} ${url}: ${r.body}`);
        assert.equal(json(r).code, "FORBIDDEN");
      }
      const denied = (await a.inventory.audit.list({ outcome: "denied" }, { limit: 5000 })).items;
      assert.ok(
        denied.some((r) => r.action === "vm.launch-measurement.read" && r.target === vm.id),
        "the operator's read was audited as denied",
      );
      assert.equal(denied.filter((r) => r.target === vm.id).length, 6);
      assert.equal((await a.inventory.vms.get(vm.id))?.powerState, "paused", "nothing changed");
      assert.equal(a.logs().includes(body.session), false);
    }));

  it("refuses bad sessions, ordinary and running VMs, unplaced VMs, with clear codes", () =>
    withApi(async (a) => {
      const hostId = await a.host("rome-bad", "rome");
      const plain = await a.vm("plain", "none", { hostId });
      const enc = await a.vm("enc", "sev", { hostId });
      const loose = await a.vm("loose", "sev");
      const info = json(await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`));
      const s = createLaunchSession(bytes(String(info.pdh)), enc.policy, seededRandom("bad"));
      const body = { godhCert: b64(s.godhCert), session: b64(s.session) };
      const put = (id: string, b: unknown) =>
        a.call("attestation-admin", "PUT", `/v1/vms/${id}/launch-session`, b);

      const ordinary = await put(plain.id, body);
      assert.equal(ordinary.statusCode, 409);
      assert.match(json(ordinary).detail as string, /ordinary VM/);
      const unplaced = await put(loose.id, body);
      assert.equal(unplaced.statusCode, 409);
      assert.match(json(unplaced).detail as string, /not placed/);

      const short = await put(enc.id, { ...body, session: b64(s.session.subarray(0, 0x40)) });
      assert.equal(short.statusCode, 400);
      assert.equal(json(short).code, "INVALID_INPUT");
      assert.match(json(short).detail as string, /session must be a session blob of 0x80 bytes, got 0x40/);
      const garbled = s.godhCert.slice();
      garbled[0] = 9; // version
      const notCert = await put(enc.id, { ...body, godhCert: b64(garbled) });
      assert.equal(notCert.statusCode, 400);
      assert.match(json(notCert).detail as string, /version/);
      const notB64 = await put(enc.id, { ...body, godhCert: "not base64!" });
      assert.equal(notB64.statusCode, 400);
      const extra = await put(enc.id, { ...body, tek: "AAAA" });
      assert.equal(extra.statusCode, 400);
      for (const r of [short, notCert, notB64, extra]) {
        assert.equal(r.body.includes(body.session), false, "problems do not echo the session");
        assert.doesNotMatch(r.body, /\bat .*\.ts:\d+/);
      }

      assert.equal((await put(enc.id, body)).statusCode, 200);
      const on = await a.call("operator", "POST", `/v1/vms/${enc.id}/power-on`);
      assert.equal(on.statusCode, 200, on.body);
      assert.equal(
        (await a.inventory.vms.get(enc.id))?.powerState,
        "paused",
        "a session means a paused launch",
      );
      const paused = await put(enc.id, body);
      assert.equal(paused.statusCode, 409, "no new session while paused");
      assert.equal(
        (await a.call("attestation-admin", "POST", `/v1/vms/${enc.id}/launch-finish`)).statusCode,
        200,
      );
      const running = await put(enc.id, body);
      assert.equal(running.statusCode, 409);
      assert.match(json(running).detail as string, /powered off/);
      const notPaused = await a.call("attestation-reader", "GET", `/v1/vms/${enc.id}/launch-measurement`);
      assert.equal(notPaused.statusCode, 409);
      const badHeader = await a.call("attestation-admin", "POST", `/v1/vms/${enc.id}/launch-secret`, {
        header: b64(new Uint8Array(8)),
        secret: b64(new Uint8Array(16)),
      });
      assert.equal(badHeader.statusCode, 400);
      assert.match(
        json(badHeader).detail as string,
        /header must be a LAUNCH_SECRET packet header of 0x34 bytes/,
      );
    }));

  it("a session made for another policy fails the power-on with the firmware's POLICY_FAILURE", () =>
    withApi(async (a) => {
      const hostId = await a.host("rome-pol", "rome");
      const vm = await a.vm("pol", "sev-es", { hostId });
      const info = json(await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`));
      const s = createLaunchSession(bytes(String(info.pdh)), vm.policy ^ 0x10, seededRandom("pol"));
      const put = await a.call("attestation-admin", "PUT", `/v1/vms/${vm.id}/launch-session`, {
        godhCert: b64(s.godhCert),
        session: b64(s.session),
      });
      assert.equal(put.statusCode, 200);
      assert.match(json(put).note as string, /POLICY_FAILURE/);
      const on = await a.call("operator", "POST", `/v1/vms/${vm.id}/power-on`);
      assert.match(on.body, /POLICY_FAILURE/, on.body);
      const v = await a.inventory.vms.get(vm.id);
      assert.equal(v?.powerState, "off");
      assert.equal(v?.attestationState, "none", "the session was spent on that launch");
      assert.equal(v?.spec.launchSession, undefined, "the failed launch dropped the stored session");
    }));
});
