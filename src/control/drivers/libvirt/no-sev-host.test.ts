/**
 * A libvirt host that reports no SEV, through the control plane: registered (libvirt's test driver,
 * `test:///default`) with an unknown CPU generation and empty SEV and SEV-ES pools — never as "naples" — shown so by
 * the API's host view, refused for SEV and SEV-ES VMs with SEV_UNSUPPORTED naming that the host reports no SEV, and
 * placeable for ordinary VMs. The placement part also runs without virsh, on an inventory record alone.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hostView } from "../../../api/views.ts";
import { hostFindings, type VmShape } from "../../compat.ts";
import type { Host, SecurityMode } from "../../inventory/types.ts";
import { choosePlacement, noValidHost } from "../../placement.ts";
import { planRegisterHost } from "../../plan/host.ts";
import { hostReports, registerHost } from "../../services/hosts.ts";
import { linuxSpec, TEST_ACTOR, withFixture } from "../../testing/control-fixture.ts";
import { DriverRegistry } from "../driver.ts";
import { emulatedDriver } from "../emulated-hosts.ts";
import { LibvirtDriver, virshOnPath } from "./driver.ts";

const vm = (mode: SecurityMode): VmShape => ({
  id: `vm_${mode}`,
  name: `vm-${mode}`,
  spec: linuxSpec,
  securityMode: mode,
  policy: mode === "sev-es" ? 0x7 : mode === "sev" ? 0x3 : 0,
});

/** What `hostFromCapabilities` records for a libvirt host without SEV. */
const noSevHost: Host = {
  id: "host_intel",
  name: "intel-1",
  clusterId: null,
  driver: "libvirt",
  address: "qemu+ssh://intel-1/system",
  cpuGeneration: "unknown",
  sevState: "uninitialized",
  esMode: "sev-es",
  vmmProfile: "qemu-legacy",
  sevAsids: 0,
  esAsids: 0,
  snpAsids: 0,
  maintenance: "none",
  connection: "connected",
  firmware: null,
  createdAt: "",
  updatedAt: "",
  version: 1,
};

describe("a host that reports no SEV (unknown CPU generation)", () => {
  it("refuses SEV and SEV-ES VMs with SEV_UNSUPPORTED only, and places ordinary VMs", () => {
    const view = { host: noSevHost, used: { sev: 0, sevEs: 0, snp: 0 }, active: 0 };
    for (const mode of ["sev", "sev-es"] as const) {
      const findings = hostFindings(noSevHost, view.used, vm(mode), { needSlot: true });
      assert.deepEqual(
        findings.map((f) => f.code),
        ["SEV_UNSUPPORTED"],
      );
      assert.equal(
        findings[0]?.message,
        "host intel-1 reports no SEV (CPU generation unknown); it runs ordinary VMs only",
      );
      const d = choosePlacement(vm(mode), [view]);
      assert.equal(d.chosen, undefined);
      assert.match(noValidHost(vm(mode), d.verdicts).message, /intel-1: host intel-1 reports no SEV/);
    }
    assert.equal(choosePlacement(vm("none"), [view]).chosen?.host.id, "host_intel");
  });

  it("still checks the VM's own configuration there (a legacy-BIOS SEV VM is told both)", () => {
    const bios: VmShape = { ...vm("sev"), spec: { ...linuxSpec, firmware: "bios" } };
    assert.deepEqual(
      hostFindings(noSevHost, { sev: 0, sevEs: 0, snp: 0 }, bios, { needSlot: true }).map((f) => f.code),
      ["SEV_UNSUPPORTED", "EFI_REQUIRED"],
    );
  });
});

describe("host add of libvirt's test driver (test:///default)", {
  skip: virshOnPath() ? false : "virsh is not installed",
}, () => {
  it("is recorded and shown as unknown with no SEV; SEV-ES power-on is refused, an ordinary VM placed", async () => {
    const libvirt = new LibvirtDriver({ timeoutMs: 10_000 });
    try {
      await withFixture(
        async (f) => {
          const c = f.cp.context;
          const req = { name: "lv-test", driver: "libvirt" as const, address: "test:///default" };
          const plan = await planRegisterHost(c, req);
          assert.match(JSON.stringify(plan), /register \(libvirt, unknown CPU generation, no SEV/);
          const h = await registerHost(c, TEST_ACTOR, req);
          assert.equal(h.cpuGeneration, "unknown");
          assert.deepEqual([h.sevAsids, h.esAsids, h.sevState], [0, 0, "uninitialized"]);
          // Read back from the store (its validation accepts the value) and as the API shows it.
          const stored = await f.inventory.hosts.getByName("lv-test");
          assert.equal(stored?.cpuGeneration, "unknown");
          const [report] = await hostReports(c, [h]);
          assert.ok(report);
          const shown = hostView(report);
          assert.equal(shown.cpuGeneration, "unknown");
          assert.deepEqual([shown.pools.sev.size, shown.pools.sevEs.size], [0, 0]);

          const es = await f.vm("es-1", "sev-es");
          const r = await f.run("vm.power-on", { vmId: es.id }, es.id);
          assert.equal(r.op.status, "failed");
          assert.equal(r.items[0]?.code, "NO_VALID_HOST");
          assert.match(r.items[0]?.reason ?? "", /lv-test reports no SEV \(CPU generation unknown\)/);
          assert.doesNotMatch(r.items[0]?.reason ?? "", /naples|not initialized/);

          const plain = await f.vm("plain-1", "none");
          const ok = await f.run("vm.power-on", { vmId: plain.id }, plain.id);
          assert.equal(ok.op.status, "succeeded", JSON.stringify(ok.items));
          const placed = await f.inventory.vms.get(plain.id);
          assert.equal(placed?.hostId, h.id);
          assert.equal(placed?.powerState, "running");
          assert.equal((await f.run("vm.power-off", { vmId: plain.id }, plain.id)).op.status, "succeeded");
        },
        { drivers: new DriverRegistry([emulatedDriver(), libvirt]) },
      );
    } finally {
      await libvirt.close();
    }
  });
});
