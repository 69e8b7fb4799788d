/**
 * Interoperability with libvirt's own verifier: `virt-qemu-sev-validate` (Debian package `libvirt-clients-qemu`,
 * which needs `python3-lxml`) checks, offline, the launch measurement of SEV and SEV-ES VMs on an emulated
 * `qemu-legacy` host — from what `GET /v1/vms/{id}/launch-measurement` reports, the owner's TIK and TEK and their
 * copy of the firmware. The tool always rebuilds VMSAs the way QEMU's default `sev-guest` does (legacy
 * KVM_SEV_ES_INIT: MXCSR and FCW 0, docs/sev-interface.md §8.5), so on a `qemu` (KVM_SEV_INIT2) host it must refuse
 * the SEV-ES measurement: that is the check failing when it should.
 *
 * Without the tool (or its Python modules) the test fails under CI=true and is skipped loudly elsewhere.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, describe, it } from "node:test";
import { type ApiFixture, json, withApi } from "../../src/api/testing/api-fixture.ts";
import { seededRandom } from "../../src/crypto/random.ts";
import { builtinUefiImage } from "../../src/hypervisor/builtin-uefi.ts";
import type { HostVmmProfile } from "../../src/measure/vmsa.ts";
import { createLaunchSession } from "../../src/owner/session.ts";

const TOOL = "virt-qemu-sev-validate";

/** The tool's path, and the Python that has its modules (Debian's own python3 first: pyenv shims may lack them). */
function locate(): { tool: string; python: string } | string {
  const tool = (process.env.PATH ?? "")
    .split(delimiter)
    .map((d) => join(d, TOOL))
    .find((p) => existsSync(p));
  if (!tool) return `${TOOL} is not installed (Debian package libvirt-clients-qemu)`;
  const pythons = ["/usr/bin/python3", "python3"];
  for (const python of pythons) {
    const r = spawnSync(python, ["-c", "import lxml, libvirt, cryptography"], { encoding: "utf8" });
    if (r.status === 0) return { tool, python };
  }
  return `${TOOL} is installed but no python3 can import lxml, libvirt and cryptography (Debian package python3-lxml)`;
}

const found = locate();
if (typeof found === "string") {
  const msg = `${found}: the libvirt interoperability test of the launch measurement cannot run`;
  if (process.env.CI === "true") throw new Error(msg);
  console.error(`\n*** ${msg} ***\n`);
}

const dir = mkdtempSync(join(tmpdir(), "cv-sev-validate-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const firmwareFile = join(dir, "builtin-uefi.fd");
writeFileSync(firmwareFile, builtinUefiImage());

const spec = {
  vcpus: 2,
  memoryMiB: 32,
  guestOs: "linux-5.19",
  firmware: "efi",
  hardwareVersion: 19,
} as const;
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** An attested launch on a Rome host of `vmm`, and `virt-qemu-sev-validate` run on what the API reported. */
async function validate(a: ApiFixture, vmm: HostVmmProfile, mode: "sev" | "sev-es") {
  const name = `${mode}-${vmm}`;
  const reg = await a.call("admin", "POST", "/v1/hosts", {
    name: `rome-${name}`,
    emulated: { generation: "rome", vmmProfile: vmm },
  });
  assert.equal(reg.statusCode, 201, reg.body);
  const hostId = String(json(reg).id);
  const vm = await a.vm(name, mode, { hostId, spec });
  const info = json(await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`));
  const pdh = new Uint8Array(Buffer.from(String(info.pdh), "base64"));
  const session = createLaunchSession(pdh, vm.policy, seededRandom(`validate-${name}`));
  const put = await a.call("attestation-admin", "PUT", `/v1/vms/${vm.id}/launch-session`, {
    godhCert: b64(session.godhCert),
    session: b64(session.session),
  });
  assert.equal(put.statusCode, 200, put.body);
  assert.equal((await a.call("operator", "POST", `/v1/vms/${vm.id}/power-on`)).statusCode, 200);
  const m = json(await a.call("attestation-reader", "GET", `/v1/vms/${vm.id}/launch-measurement`));
  const tik = join(dir, `${name}.tik`);
  const tek = join(dir, `${name}.tek`);
  writeFileSync(tik, session.keys.tik);
  writeFileSync(tek, session.keys.tek);
  const args = [
    "--measurement",
    String(m.measurement),
    "--api-major",
    String(m.apiMajor),
    "--api-minor",
    String(m.apiMinor),
    "--build-id",
    String(m.build),
    "--policy",
    String(m.policy),
    "--firmware",
    firmwareFile,
    "--tik",
    tik,
    "--tek",
    tek,
  ];
  if (m.securityMode === "sev-es") {
    const cpu = m.cpuSignature as { family: number; model: number; stepping: number };
    args.push(
      "--num-cpus",
      String(m.vcpus),
      "--cpu-family",
      String(cpu.family),
      "--cpu-model",
      String(cpu.model),
      "--cpu-stepping",
      String(cpu.stepping),
    );
  }
  const { tool, python } = found as { tool: string; python: string };
  return spawnSync(python, [tool, ...args], { encoding: "utf8", timeout: 60_000 });
}

describe(`libvirt's ${TOOL} validates our launch measurements offline`, {
  skip: typeof found === "string" ? found : false,
}, () => {
  for (const mode of ["sev", "sev-es"] as const) {
    it(`${mode} on a qemu-legacy host: "Looks good to me"`, () =>
      withApi(async (a) => {
        const r = await validate(a, "qemu-legacy", mode);
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /OK: Looks good to me/);
      }));
  }

  it("sev-es on a qemu (KVM_SEV_INIT2) host: refused, since the tool rebuilds the legacy VMSAs", () =>
    withApi(async (a) => {
      const r = await validate(a, "qemu", "sev-es");
      assert.equal(r.status, 1, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /ERROR: Measurement does not match/);
    }));
});
