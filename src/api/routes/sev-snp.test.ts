/**
 * SEV-SNP through the control plane and the API (issue 14): the host's pools — three under Ciphertext Hiding, or
 * the ES range serving one mode per host (CVE-2025-48514) — an SNP VM and an SEV-ES VM running side by side on a
 * Turin host that splits them, each pool running out with a reason that names it, and a guest's signed report
 * fetched with the owner's REPORT_DATA that the owner's own verifier accepts against the emulated AMD roots.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { linuxSpec } from "../../control/testing/control-fixture.ts";
import { isCiphervisorError } from "../../errors.ts";
import { DEFAULT_SNP_POLICY } from "../../hypervisor/vm-spec.ts";
import { toHex } from "../../lib/bytes.ts";
import { verifySnpReport } from "../../owner/verify-report.ts";
import { encodeIdBlock, encodeSnpPublicKey, signIdAuth, snpKeyDigest } from "../../sev/snp/id-block.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

async function register(a: ApiFixture, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await a.call("admin", "POST", "/v1/hosts", body);
  assert.equal(r.statusCode, 201, r.body);
  return json(r);
}

async function powerOn(a: ApiFixture, id: string) {
  return a.call("operator", "POST", `/v1/vms/${id}/power-on`);
}

type Pools = Record<"sev" | "sevEs" | "snp", { first: number; last: number; size: number; used: number }>;

async function pools(a: ApiFixture, hostId: string): Promise<Pools> {
  const r = await a.call("viewer", "GET", `/v1/hosts/${hostId}`);
  assert.equal(r.statusCode, 200, r.body);
  return json(r).pools as Pools;
}

describe("SEV-SNP in the control plane", () => {
  it("a Turin host with Ciphertext Hiding runs SNP and SEV-ES VMs side by side, each pool full on its own", () =>
    withApi(async (a) => {
      // min_sev_asid = 5: ASIDs 1..4 are the low range; Ciphertext Hiding gives SNP 1..2 and SEV-ES 3..4.
      const host = await register(a, {
        name: "turin-1",
        emulated: { generation: "turin", minSevAsid: 5, ciphertextHidingAsids: 2 },
      });
      const hostId = String(host.id);
      const p0 = await pools(a, hostId);
      assert.deepEqual(
        [p0.snp.first, p0.snp.last, p0.sevEs.first, p0.sevEs.last, p0.sev.first],
        [1, 2, 3, 4, 5],
      );
      const snp = await Promise.all(
        ["s1", "s2", "s3"].map((n) => a.vm(n, "sev-snp", { hostId, spec: linuxSpec })),
      );
      const es = await Promise.all(
        ["e1", "e2", "e3"].map((n) => a.vm(n, "sev-es", { hostId, spec: linuxSpec })),
      );
      for (const vm of [snp[0], es[0], snp[1], es[1]]) {
        const on = await powerOn(a, vm!.id);
        assert.equal(on.statusCode, 200, on.body);
        assert.equal((await a.inventory.vms.get(vm!.id))?.powerState, "running");
      }
      const p1 = await pools(a, hostId);
      assert.deepEqual([p1.snp.used, p1.sevEs.used, p1.sev.used], [2, 2, 0]);
      // Each pool runs out on its own, and the refusal names the pool.
      for (const [vm, pool] of [
        [snp[2], "SEV-SNP"],
        [es[2], "SEV-ES"],
      ] as const) {
        const full = await powerOn(a, vm!.id);
        assert.equal(full.statusCode, 409, full.body);
        const p = json(full);
        assert.equal(p.code, "NO_VALID_HOST", full.body);
        assert.match(String(p.detail), new RegExp(`turin-1.*${pool}`), full.body);
      }
      // The firmware agrees with the inventory: the host's own pools report the same usage.
      const info = await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`);
      assert.equal(info.statusCode, 200, info.body);
      const hw = json(info).pools as Pools;
      assert.deepEqual([hw.snp.used, hw.sevEs.used], [2, 2]);
    }));

  it("without Ciphertext Hiding the ES range serves one mode per host (CVE-2025-48514)", () =>
    withApi(async (a) => {
      const esHost = String((await register(a, { name: "genoa-es", emulated: { generation: "genoa" } })).id);
      const esPools = await pools(a, esHost);
      assert.equal(esPools.snp.size, 0);
      // The only host's ES range serves SEV-ES guests: an SNP VM has nowhere to go, and the reason says why.
      const snpVm = await a.vm("snp-1", "sev-snp", { spec: linuxSpec });
      const r1 = await powerOn(a, snpVm.id);
      assert.equal(r1.statusCode, 409, r1.body);
      assert.equal(json(r1).code, "NO_VALID_HOST", r1.body);
      assert.match(String(json(r1).detail), /genoa-es: host genoa-es runs SEV-ES guests in its ES pool/);

      const snpHost = String(
        (await register(a, { name: "genoa-snp", emulated: { generation: "genoa" }, esMode: "snp" })).id,
      );
      await register(a, { name: "rome-snp", emulated: { generation: "rome" }, esMode: "snp" });
      const snpPools = await pools(a, snpHost);
      assert.equal(snpPools.sevEs.size, 0);
      assert.equal(snpPools.snp.size, esPools.sevEs.size, "the same range, serving SNP");
      // Now the SNP host takes it (Rome has no SNP at all, whatever its mode).
      assert.equal((await powerOn(a, snpVm.id)).statusCode, 200);
      assert.equal((await a.inventory.vms.get(snpVm.id))?.hostId, snpHost);
      assert.equal((await pools(a, snpHost)).snp.used, 1);
      // An SEV-ES VM is never placed on the SNP host: a dry run of its power-on names that host's refusal.
      const esVm = await a.vm("es-1", "sev-es", { spec: linuxSpec });
      const plan = await a.call("operator", "POST", `/v1/vms/${esVm.id}/power-on?dryRun=true`);
      assert.equal(plan.statusCode, 200, plan.body);
      const on = await powerOn(a, esVm.id);
      assert.equal(on.statusCode, 200, on.body);
      assert.equal((await a.inventory.vms.get(esVm.id))?.hostId, esHost);
      // With the SEV-ES host in maintenance, the SEV-ES VM is refused on the SNP host by its mode.
      const es2 = await a.vm("es-2", "sev-es", { spec: linuxSpec });
      const m = await a.call("all", "POST", `/v1/hosts/${esHost}/enter-maintenance`, {});
      assert.ok(m.statusCode < 300, m.body);
      const r2 = await powerOn(a, es2.id);
      assert.equal(r2.statusCode, 409, r2.body);
      assert.match(String(json(r2).detail), /genoa-snp: host genoa-snp runs SEV-SNP guests in its ES pool/);
      assert.match(String(json(r2).detail), /rome-snp/);
    }));

  it("a running SNP guest's report carries the owner's REPORT_DATA and verifies against the emulated roots", () =>
    withApi(async (a) => {
      const hostId = String(
        (await register(a, { name: "milan-snp", emulated: { generation: "milan" }, esMode: "snp" })).id,
      );
      const vm = await a.vm("enclave", "sev-snp", { hostId, spec: linuxSpec });
      const nonce = "ab".repeat(64);
      const before = await a.call("attestation-reader", "POST", `/v1/vms/${vm.id}/attestation-report`, {
        reportData: nonce,
      });
      assert.equal(before.statusCode, 409, "powered off: no guest to ask");
      assert.equal((await powerOn(a, vm.id)).statusCode, 200);

      const denied = await a.call("viewer", "POST", `/v1/vms/${vm.id}/attestation-report`, {
        reportData: nonce,
      });
      assert.equal(denied.statusCode, 403, denied.body);
      const bad = await a.call("attestation-reader", "POST", `/v1/vms/${vm.id}/attestation-report`, {
        reportData: "ab",
      });
      assert.equal(bad.statusCode, 400, bad.body);
      assert.equal(json(bad).code, "INVALID_INPUT");

      const r = await a.call("attestation-reader", "POST", `/v1/vms/${vm.id}/attestation-report`, {
        reportData: nonce,
      });
      assert.equal(r.statusCode, 200, r.body);
      const body = json(r) as {
        report: string;
        fields: { reportData: string; measurement: string; hostData: string };
        certificates: { vcek: string; vcekPath: string; certChain: string };
      };
      assert.equal(body.fields.reportData, nonce);
      // The owner's check, on the owner's side: genuine (VCEK → ASK → ARK, emulated roots), the expected measurement.
      const v = verifySnpReport({
        report: new Uint8Array(Buffer.from(body.report, "base64")),
        vcek: new Uint8Array(Buffer.from(body.certificates.vcek, "base64")),
        chain: new Uint8Array(Buffer.from(body.certificates.certChain)),
        trust: "emulated",
        policy: { measurement: new Uint8Array(Buffer.from(body.fields.measurement, "hex")) },
      });
      assert.equal(v.ok, true, JSON.stringify(v.links));
      // The same VCEK is where the emulated KDS serves it.
      const kds = await a.call(null, "GET", body.certificates.vcekPath);
      assert.equal(kds.statusCode, 200, kds.body);
      assert.deepEqual(
        new Uint8Array(kds.rawPayload),
        new Uint8Array(Buffer.from(body.certificates.vcek, "base64")),
      );
      // A report tampered with in transit no longer verifies.
      const tampered = new Uint8Array(Buffer.from(body.report, "base64"));
      tampered[0x50] = (tampered[0x50] ?? 0) ^ 1;
      assert.throws(
        () =>
          verifySnpReport({
            report: tampered,
            vcek: new Uint8Array(Buffer.from(body.certificates.vcek, "base64")),
            chain: new Uint8Array(Buffer.from(body.certificates.certChain)),
            trust: "emulated",
          }),
        (e: unknown) => isCiphervisorError(e, "REPORT_INVALID"),
      );
      // An SEV-ES VM has no report: it is attested through its launch measurement.
      const es = await a.vm("es-vm", "sev-es", { spec: linuxSpec });
      const notSnp = await a.call("attestation-reader", "POST", `/v1/vms/${es.id}/attestation-report`, {});
      assert.equal(notSnp.statusCode, 409);
      assert.match(notSnp.body, /launch-measurement/);
      const audited = await a.inventory.audit.list({}, { limit: 500 });
      assert.ok(
        audited.items.some(
          (x) => x.action === "vm.attestation-report.read" && x.outcome === "ok" && x.target === vm.id,
        ),
      );
    }));

  it("SNP launch options with QEMU's names: HOST_DATA in every report, an owner-signed ID block, and launches it does not describe refused", () =>
    withApi(async (a) => {
      const hostId = String(
        (await register(a, { name: "milan-id", emulated: { generation: "milan" }, esMode: "snp" })).id,
      );
      const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
      const hostData = new Uint8Array(32).fill(0x5a);
      const report = async (id: string) => {
        const r = await a.call("attestation-reader", "POST", `/v1/vms/${id}/attestation-report`, {
          reportData: "00".repeat(64),
        });
        assert.equal(r.statusCode, 200, r.body);
        return (json(r) as { fields: Record<string, string> }).fields;
      };
      const plain = await a.vm("plain", "sev-snp", {
        hostId,
        spec: { ...linuxSpec, snp: { hostData: b64(hostData) } },
      });
      assert.equal((await powerOn(a, plain.id)).statusCode, 200);
      const first = await report(plain.id);
      assert.equal(first.hostData, "5a".repeat(32));
      assert.equal(first.idKeyDigest, "00".repeat(48), "no ID block: no ID key");

      // The owner signs what this launch must be: its digest and policy.
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
      const jwk = privateKey.export({ format: "jwk" }) as { d: string; x: string; y: string };
      const u = (s: string) => new Uint8Array(Buffer.from(s, "base64url"));
      const idKey = { d: u(jwk.d), pub: { x: u(jwk.x), y: u(jwk.y) } };
      const idBlock = (ld: Uint8Array, policy = BigInt(DEFAULT_SNP_POLICY)) =>
        encodeIdBlock({
          ld,
          familyId: new Uint8Array(16),
          imageId: new Uint8Array(16),
          version: 1,
          guestSvn: 0,
          policy,
        });
      const measured = new Uint8Array(Buffer.from(first.measurement ?? "", "hex"));
      const good = idBlock(measured);
      const signed = await a.vm("signed", "sev-snp", {
        hostId,
        spec: { ...linuxSpec, snp: { idBlock: b64(good), idAuth: b64(signIdAuth(good, idKey)) } },
      });
      assert.equal((await powerOn(a, signed.id)).statusCode, 200);
      const second = await report(signed.id);
      assert.equal(second.measurement, first.measurement);
      assert.equal(second.idKeyDigest, toHex(snpKeyDigest(encodeSnpPublicKey(idKey.pub))));

      // The firmware refuses what the ID block does not describe: another digest, another policy, a bad signature.
      const other = new Uint8Array(measured);
      other[0] = (other[0] ?? 0) ^ 1;
      const wrongPolicy = idBlock(measured, BigInt(DEFAULT_SNP_POLICY) | 1n);
      const cases: [string, Record<string, string>, RegExp][] = [
        [
          "digest",
          { idBlock: b64(idBlock(other)), idAuth: b64(signIdAuth(idBlock(other), idKey)) },
          /launch digest is not this launch/,
        ],
        [
          "policy",
          { idBlock: b64(wrongPolicy), idAuth: b64(signIdAuth(wrongPolicy, idKey)) },
          /policy is not the guest's/,
        ],
        [
          "signature",
          { idBlock: b64(good), idAuth: b64(signIdAuth(other.slice(0, 0x60), idKey)) },
          /signature does not verify/,
        ],
      ];
      for (const [name, snp, why] of cases) {
        const vm = await a.vm(`bad-${name}`, "sev-snp", { hostId, spec: { ...linuxSpec, snp } });
        const on = await powerOn(a, vm.id);
        assert.notEqual(on.statusCode, 200, `${name}: ${on.body}`);
        assert.match(on.body, why, name);
        assert.equal((await a.inventory.vms.get(vm.id))?.powerState, "off", `${name}: back off`);
      }

      // The API checks the options before anything is created.
      const refused: [Record<string, unknown>, string, string][] = [
        [
          { securityMode: "sev-es", spec: { ...linuxSpec, snp: { hostData: b64(hostData) } } },
          "spec.snp",
          "not SNP",
        ],
        [
          { securityMode: "sev-snp", spec: { ...linuxSpec, snp: { hostData: b64(hostData.slice(1)) } } },
          "spec.snp.hostData",
          "31 bytes",
        ],
        [
          { securityMode: "sev-snp", spec: { ...linuxSpec, snp: { idBlock: b64(good) } } },
          "spec.snp.idAuth",
          "no id-auth",
        ],
      ];
      for (const [body, field, what] of refused) {
        const r = await a.call("all", "POST", "/v1/vms", { name: "refused", ...body });
        assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
        assert.equal(json(r).code, "INVALID_INPUT", what);
        assert.match(r.body, new RegExp(field.replace(/\./g, "\\.")), what);
      }
      const notB64 = await a.call("all", "POST", "/v1/vms", {
        name: "refused",
        securityMode: "sev-snp",
        spec: { ...linuxSpec, snp: { hostData: "not base64!" } },
      });
      assert.equal(notB64.statusCode, 400, notB64.body);
    }));
});
