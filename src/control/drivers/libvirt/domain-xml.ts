/**
 * A LaunchSpec as libvirt domain XML (docs/product-behaviour.md §3.2): a q35 KVM guest with OVMF, its memory, vCPUs and
 * devices, and for SEV/SEV-ES `<launchSecurity type='sev'>` with the policy, the host's C-bit position and
 * reducedPhysBits, and the guest owner's GODH certificate and session (base64) when the owner set them. SEV-ES is
 * SEV with the ES policy bit, as libvirt and QEMU express it. Every text and attribute is escaped.
 *
 * ciphervisor's own facts that libvirt has no element for (guest OS profile, hardware version, attestation) ride
 * in `<metadata>` under a ciphervisor namespace, so a later `dumpxml` gives back what the requirement checks need.
 */
import { CiphervisorError } from "../../../errors.ts";
import type { DeviceSpec, LaunchSpec } from "../../../hypervisor/types.ts";
import { effectivePolicy, validateVmSpec } from "../../../hypervisor/vm-spec.ts";
import { PolicyBit } from "../../../sev/policy.ts";

/** The XML namespace of ciphervisor's `<metadata>` element. */
export const METADATA_NS = "https://ciphervisor.dev/xmlns/libvirt/vm/1";

/** Host-side facts the XML needs, from the host's domain capabilities and its OVMF install. */
export interface DomainXmlOptions {
  /** C-bit position (`domcapabilities <sev><cbitpos>`). */
  readonly cbitpos: number;
  /** Physical address bits lost to encryption (`<reducedPhysBits>`). */
  readonly reducedPhysBits: number;
  /** OVMF code image on the host; a spec whose firmware names an absolute path uses that instead. */
  readonly ovmfPath: string;
  /** Where disk images live on the host (`<dir>/<vm>-<n>.qcow2`). */
  readonly imageDir: string;
}

/** Debian's OVMF (package `ovmf`) and libvirt's image pool: the defaults of a stock Debian KVM host. */
export const DEFAULT_DOMAIN_XML_OPTIONS: DomainXmlOptions = {
  cbitpos: 47,
  reducedPhysBits: 1,
  ovmfPath: "/usr/share/OVMF/OVMF_CODE_4M.fd",
  imageDir: "/var/lib/libvirt/images",
};

/** Escapes text and attribute values (both quote kinds, so either attribute quoting is safe). */
export function escapeXml(value: string | number): string {
  return String(value)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** `0x0007`: libvirt's own spelling of a policy (at least four hex digits). */
export function policyHex(policy: number): string {
  return `0x${policy.toString(16).padStart(4, "0")}`;
}

function bad(field: string, message: string): never {
  throw new CiphervisorError("INVALID_INPUT", `${field}: ${message}`, { details: { field } });
}

/** A PCI address `[dddd:]bb:ss.f` as libvirt's `<address>`; INVALID_INPUT otherwise. */
function pciAddress(detail: string | undefined): string {
  const m = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i.exec(detail ?? "");
  if (!m) bad("devices", `pci-passthrough needs a host PCI address like 0000:3b:00.0, got '${detail ?? ""}'`);
  const [, domain = "0000", bus = "", slot = "", fn = ""] = m;
  return `<address domain='0x${domain}' bus='0x${bus}' slot='0x${slot}' function='0x${fn}'/>`;
}

/**
 * One device. Encrypted guests need `iommu='on'` on virtio devices: the device then uses the DMA API, i.e.
 * bounce buffers in shared (unencrypted) pages, as libvirt's launch-security documentation requires.
 */
function deviceXml(vm: string, d: DeviceSpec, i: number, encrypted: boolean, o: DomainXmlOptions): string {
  const iommu = encrypted ? "<driver iommu='on'/>" : "";
  const image = escapeXml(`${o.imageDir}/${vm}-${i}.qcow2`);
  switch (d.kind) {
    case "virtio-disk":
      return `<disk type='file' device='disk'><driver name='qemu' type='qcow2'${encrypted ? " iommu='on'" : ""}/><source file='${image}'/><target dev='vd${String.fromCharCode(97 + i)}' bus='virtio'/></disk>`;
    case "sata-disk":
      return `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${image}'/><target dev='sd${String.fromCharCode(97 + i)}' bus='sata'/></disk>`;
    case "virtio-net":
      return `<interface type='network'><source network='default'/><model type='virtio'/>${iommu}</interface>`;
    case "usb-controller":
      return "<controller type='usb' model='qemu-xhci'/>";
    case "pci-passthrough":
      return `<hostdev mode='subsystem' type='pci' managed='yes'><source>${pciAddress(d.detail)}</source></hostdev>`;
    default:
      return bad("devices", `unknown device kind '${String((d as { kind: unknown }).kind)}'`);
  }
}

/**
 * Where the boot images a spec carries as bytes were placed on the host (`boot-files.ts`): libvirt boots files, so
 * the loader, kernel and initrd are paths, each named by its SHA-256 — the file the domain boots is the one hashed.
 */
export interface BootFiles {
  readonly loader?: string;
  readonly kernel?: string;
  readonly initrd?: string;
}

function launchSecurityXml(spec: LaunchSpec, o: DomainXmlOptions): string {
  let policy = effectivePolicy(spec);
  if (spec.security === "sev-es") policy |= PolicyBit.ES;
  else if ((policy & PolicyBit.ES) !== 0)
    bad("policy", `${policyHex(policy)} has the ES bit; use security sev-es`);
  const parts = [
    `<cbitpos>${escapeXml(o.cbitpos)}</cbitpos>`,
    `<reducedPhysBits>${escapeXml(o.reducedPhysBits)}</reducedPhysBits>`,
    `<policy>${policyHex(policy)}</policy>`,
  ];
  if (spec.session) {
    parts.push(`<dhCert>${Buffer.from(spec.session.godhCert).toString("base64")}</dhCert>`);
    parts.push(`<session>${Buffer.from(spec.session.session).toString("base64")}</session>`);
  }
  // kernelHashes='yes' (libvirt ≥ 8.0): QEMU adds the kernel-hashes table to the launch digest (docs/sev-interface.md §8.3).
  const hashes = spec.directBoot ? " kernelHashes='yes'" : "";
  return `<launchSecurity type='sev'${hashes}>${parts.join("")}</launchSecurity>`;
}

/**
 * The loader for EFI firmware — the placed image, else the spec's absolute image path when it names one, else the
 * host's OVMF — and for a direct boot `<kernel>`, `<initrd>` and `<cmdline>`.
 */
function osXml(spec: LaunchSpec, o: DomainXmlOptions, files: BootFiles): string {
  const type = "<type arch='x86_64' machine='q35'>hvm</type>";
  if (spec.firmware.kind !== "efi") return `<os>${type}<boot dev='hd'/></os>`;
  const path =
    files.loader ?? (spec.firmware.imageName?.startsWith("/") ? spec.firmware.imageName : o.ovmfPath);
  const parts = [type, `<loader readonly='yes' type='pflash'>${escapeXml(path)}</loader>`];
  if (spec.directBoot) {
    if (!files.kernel) bad("directBoot", "a direct boot needs its kernel placed on the host");
    parts.push(`<kernel>${escapeXml(files.kernel)}</kernel>`);
    if (spec.directBoot.initrd) {
      if (!files.initrd) bad("directBoot", "a direct boot needs its initrd placed on the host");
      parts.push(`<initrd>${escapeXml(files.initrd)}</initrd>`);
    }
    if (spec.directBoot.cmdline !== undefined)
      parts.push(`<cmdline>${escapeXml(spec.directBoot.cmdline)}</cmdline>`);
  } else {
    parts.push("<boot dev='hd'/>");
  }
  return `<os>${parts.join("")}</os>`;
}

/**
 * The `<domain>` for `spec`; validates the spec first (INVALID_INPUT naming the field). Images the spec carries as
 * bytes must have been placed on the host first (`files`): libvirt takes the loader, kernel and initrd as paths.
 *
 * @example
 * ```ts
 * const xml = domainXml({ ...spec, security: "sev-es" }, { ...DEFAULT_DOMAIN_XML_OPTIONS, cbitpos: 51 });
 * ```
 */
export function domainXml(
  input: LaunchSpec,
  options: DomainXmlOptions = DEFAULT_DOMAIN_XML_OPTIONS,
  files: BootFiles = {},
): string {
  const spec = validateVmSpec(input);
  if (spec.firmware.kind === "efi" && spec.firmware.image && !files.loader) {
    bad("firmware.image", "a firmware image must be placed on the host before it is booted");
  }
  const encrypted = spec.security !== "none";
  const devices = spec.devices.map((d, i) => deviceXml(spec.name, d, i, encrypted, options));
  devices.push("<serial type='pty'/>", "<console type='pty'/>");
  // The balloon rewrites guest memory behind its back; with encryption it cannot, so it is left out.
  devices.push(encrypted ? "<memballoon model='none'/>" : "<memballoon model='virtio'/>");
  const meta =
    `<cv:vm xmlns:cv='${METADATA_NS}' security='${escapeXml(spec.security)}' guestOs='${escapeXml(spec.guestOs)}'` +
    ` hardwareVersion='${escapeXml(spec.hardwareVersion)}' attestation='${spec.attestation ? "yes" : "no"}'/>`;
  return [
    "<domain type='kvm'>",
    `  <name>${escapeXml(spec.name)}</name>`,
    `  <metadata>${meta}</metadata>`,
    `  <memory unit='MiB'>${escapeXml(spec.memoryMiB)}</memory>`,
    `  <vcpu>${escapeXml(spec.vcpus)}</vcpu>`,
    `  ${osXml(spec, options, files)}`,
    "  <features><acpi/><apic/></features>",
    "  <cpu mode='host-passthrough'/>",
    `  <devices>${devices.join("")}</devices>`,
    ...(encrypted ? [`  ${launchSecurityXml(spec, options)}`] : []),
    "</domain>",
    "",
  ].join("\n");
}
