import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../../../errors.ts";
import type { LaunchSpec } from "../../../hypervisor/types.ts";
import { domainFacts } from "./domain-state.ts";
import { DEFAULT_DOMAIN_XML_OPTIONS, domainXml, escapeXml, policyHex } from "./domain-xml.ts";

const base: LaunchSpec = {
  name: "vm_01",
  vcpus: 2,
  memoryMiB: 2048,
  firmware: { kind: "efi" },
  hardwareVersion: 19,
  guestOs: "linux-5.19",
  devices: [{ kind: "virtio-disk" }, { kind: "virtio-net" }],
  security: "sev",
};

describe("libvirt domain XML", () => {
  it("escapes text and both attribute quotes", () => {
    assert.equal(escapeXml(`a<b>&"c'`), "a&lt;b&gt;&amp;&quot;c&apos;");
    assert.equal(policyHex(3), "0x0003");
    assert.equal(policyHex(0x10007), "0x10007");
  });

  it("builds an SEV domain exactly: q35, OVMF, iommu on virtio, no balloon, launchSecurity", () => {
    const xml = domainXml(base, { ...DEFAULT_DOMAIN_XML_OPTIONS, ovmfPath: "/fw/OVMF & <co>.fd" });
    const ns = "https://ciphervisor.dev/xmlns/libvirt/vm/1";
    assert.equal(
      xml,
      [
        "<domain type='kvm'>",
        "  <name>vm_01</name>",
        `  <metadata><cv:vm xmlns:cv='${ns}' security='sev' guestOs='linux-5.19' hardwareVersion='19' attestation='no'/></metadata>`,
        "  <memory unit='MiB'>2048</memory>",
        "  <vcpu>2</vcpu>",
        "  <os><type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/fw/OVMF &amp; &lt;co&gt;.fd</loader><boot dev='hd'/></os>",
        "  <features><acpi/><apic/></features>",
        "  <cpu mode='host-passthrough'/>",
        "  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2' iommu='on'/><source file='/var/lib/libvirt/images/vm_01-0.qcow2'/><target dev='vda' bus='virtio'/></disk><interface type='network'><source network='default'/><model type='virtio'/><driver iommu='on'/></interface><serial type='pty'/><console type='pty'/><memballoon model='none'/></devices>",
        "  <launchSecurity type='sev'><cbitpos>47</cbitpos><reducedPhysBits>1</reducedPhysBits><policy>0x0003</policy></launchSecurity>",
        "</domain>",
        "",
      ].join("\n"),
    );
  });

  it("SEV-ES is the ES policy bit; host cbitpos and the owner's session are carried in base64", () => {
    const session = { godhCert: new Uint8Array([1, 2, 3]), session: new Uint8Array([0xff, 0xfe]) };
    const xml = domainXml(
      { ...base, security: "sev-es", policy: 0x5, session, attestation: true },
      { ...DEFAULT_DOMAIN_XML_OPTIONS, cbitpos: 51, reducedPhysBits: 5 },
    );
    assert.match(
      xml,
      /<launchSecurity type='sev'><cbitpos>51<\/cbitpos><reducedPhysBits>5<\/reducedPhysBits><policy>0x0005<\/policy><dhCert>AQID<\/dhCert><session>\/\/4=<\/session><\/launchSecurity>/,
    );
    const facts = domainFacts("vm_01", xml);
    assert.equal(facts.security, "sev-es");
    assert.equal(facts.policy, 5);
    assert.equal(facts.attestation, true);
    assert.equal(facts.spec?.guestOs, "linux-5.19");
    assert.equal(facts.spec?.memoryMiB, 2048);
    assert.deepEqual(
      facts.spec?.devices.map((d) => d.kind),
      ["virtio-disk", "virtio-net"],
    );
  });

  it("an ordinary VM has no launchSecurity, a balloon and no iommu", () => {
    const xml = domainXml({ ...base, security: "none", firmware: { kind: "bios" } });
    assert.doesNotMatch(xml, /launchSecurity|iommu|<loader/);
    assert.match(xml, /<memballoon model='virtio'\/>/);
    assert.equal(domainFacts("vm_01", xml).security, "none");
  });

  it("passes a PCI address through and rejects bad input with stable codes", () => {
    const xml = domainXml({
      ...base,
      security: "none",
      devices: [{ kind: "pci-passthrough", detail: "0000:3b:00.1" }],
    });
    assert.match(xml, /<address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'\/>/);
    const bad = (s: Partial<LaunchSpec>, field: string) =>
      assert.throws(
        () => domainXml({ ...base, ...s }),
        (e) => isCiphervisorError(e, "INVALID_INPUT") && e.details?.field === field,
      );
    bad({ name: "a'b" }, "name");
    bad({ security: "none", devices: [{ kind: "pci-passthrough", detail: "x'><evil/>" }] }, "devices");
    bad({ policy: 0x7 }, "policy");
    bad({ directBoot: { kernel: new Uint8Array(1) } }, "directBoot");
  });

  it("maps a placed firmware image and a direct boot to <loader>, <kernel>, <initrd>, <cmdline> and kernelHashes='yes'", () => {
    const spec: LaunchSpec = {
      ...base,
      security: "sev-es",
      firmware: { kind: "efi", image: new Uint8Array(16), imageName: "ovmf" },
      directBoot: { kernel: new Uint8Array(1), initrd: new Uint8Array(2), cmdline: "console=ttyS0 a<b" },
    };
    const files = { loader: "/img/aa.fd", kernel: "/img/bb.kernel", initrd: "/img/cc.initrd" };
    const xml = domainXml(spec, DEFAULT_DOMAIN_XML_OPTIONS, files);
    assert.match(
      xml,
      /<os><type arch='x86_64' machine='q35'>hvm<\/type><loader readonly='yes' type='pflash'>\/img\/aa\.fd<\/loader><kernel>\/img\/bb\.kernel<\/kernel><initrd>\/img\/cc\.initrd<\/initrd><cmdline>console=ttyS0 a&lt;b<\/cmdline><\/os>/,
    );
    assert.match(xml, /<launchSecurity type='sev' kernelHashes='yes'><cbitpos>/);
    assert.doesNotMatch(domainXml(base), /kernelHashes/);
    // Bytes that were not placed cannot be booted: refused, never silently swapped for the host's OVMF.
    assert.throws(
      () => domainXml({ ...base, firmware: spec.firmware }),
      (e) => isCiphervisorError(e, "INVALID_INPUT") && e.details?.field === "firmware.image",
    );
    assert.throws(
      () =>
        domainXml(
          { ...spec, directBoot: { kernel: new Uint8Array(1), initrd: new Uint8Array(1) } },
          DEFAULT_DOMAIN_XML_OPTIONS,
          { loader: "/x.fd", kernel: "/k" },
        ),
      (e) => isCiphervisorError(e, "INVALID_INPUT") && e.details?.field === "directBoot",
    );
  });
});
