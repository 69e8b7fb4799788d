/**
 * What a defined domain is, read back from libvirt: `domstate --reason` as a RunState, and `dumpxml` as the
 * facts the operation table and requirement checks need (security mode, policy, and the LaunchSpec fields
 * ciphervisor keeps in its `<metadata>`). All state lives in libvirt, so a restarted control plane reads it again.
 */
import type { SecurityMode } from "../../../hypervisor/operation-rules.ts";
import type { DeviceSpec, LaunchSpec, RunState } from "../../../hypervisor/types.ts";
import { PolicyBit } from "../../../sev/policy.ts";
import { METADATA_NS } from "./domain-xml.ts";
import { elementText, findElement } from "./xml-read.ts";

/** A domain's security facts, and its LaunchSpec when ciphervisor defined it (the metadata is there). */
export interface DomainFacts {
  readonly name: string;
  readonly security: SecurityMode;
  readonly policy?: number;
  readonly attestation: boolean;
  readonly spec?: LaunchSpec;
  /** The files the domain boots (`<os>`: loader, kernel, initrd) and its kernel command line, as libvirt has them. */
  readonly boot?: DomainBoot;
}

export interface DomainBoot {
  readonly loader?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
}

/** The boot files of `<os>`, absent when it names none. */
function domainBoot(xml: string): DomainBoot | undefined {
  const os = findElement(xml, "os")?.inner ?? "";
  const out: Record<string, string> = {};
  for (const tag of ["loader", "kernel", "initrd", "cmdline"] as const) {
    const v = elementText(os, tag);
    if (v !== undefined && v !== "") out[tag] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * `domstate --reason` → RunState. A domain shut off for an unknown reason was never started (defined);
 * `saved` is a managed save (suspended).
 */
export function powerState(line: string): { power: RunState; reason?: string } {
  const m = /^([a-z ]+?)\s*(?:\(([^)]*)\))?\s*$/.exec(line.trim());
  const state = m?.[1] ?? line.trim();
  const why = m?.[2];
  const reason = why && why !== "unknown" ? `libvirt: ${state} (${why})` : undefined;
  const r = (power: RunState) => ({ power, ...(reason ? { reason } : {}) });
  switch (state) {
    case "running":
    case "idle":
    case "blocked":
    case "in shutdown":
      return r("running");
    case "paused":
      return r("paused");
    case "pmsuspended":
      return r("suspended");
    case "crashed":
      return r("crashed");
    case "shut off":
      if (why === "saved") return r("suspended");
      if (why === "crashed" || why === "failed") return r("crashed");
      return why === undefined || why === "unknown" ? { power: "defined" } : r("stopped");
    default:
      return { power: "crashed", reason: `libvirt reports an unknown state '${line.trim().slice(0, 60)}'` };
  }
}

function devices(xml: string): DeviceSpec[] {
  const out: DeviceSpec[] = [];
  for (const m of xml.matchAll(
    /<(disk|interface|hostdev|controller)\b([^>]*)>([\s\S]*?)<\/\1>|<controller\b([^>]*)\/>/g,
  )) {
    const [, tag, , inner = ""] = m;
    if (tag === "hostdev") out.push({ kind: "pci-passthrough" });
    else if (tag === "interface") out.push({ kind: "virtio-net" });
    else if (tag === "disk") out.push({ kind: /bus=['"]sata/.test(inner) ? "sata-disk" : "virtio-disk" });
    else if (/type=['"]usb/.test(m[2] ?? m[4] ?? "")) out.push({ kind: "usb-controller" });
  }
  return out;
}

/** Memory in MiB from `<memory unit='KiB'>` (libvirt's dumpxml always answers in KiB). */
function memoryMiB(xml: string): number {
  const e = findElement(xml, "memory");
  const n = Number(elementText(xml, "memory") ?? 0);
  const unit = (e?.attrs.unit ?? "KiB").toLowerCase();
  const factor: Record<string, number> = { kib: 1 / 1024, k: 1 / 1024, mib: 1, m: 1, gib: 1024, g: 1024 };
  return Math.round(n * (factor[unit] ?? 1 / 1024));
}

/** The facts of a domain from its `dumpxml --inactive`. */
export function domainFacts(name: string, xml: string): DomainFacts {
  const ls = findElement(xml, "launchSecurity");
  const policyText = ls ? elementText(ls.inner, "policy") : undefined;
  const policy =
    policyText !== undefined && /^(0x)?[0-9a-f]+$/i.test(policyText)
      ? Number.parseInt(policyText, 16)
      : undefined;
  const security: SecurityMode =
    ls?.attrs.type !== "sev"
      ? "none"
      : policy !== undefined && (policy & PolicyBit.ES) !== 0
        ? "sev-es"
        : "sev";
  const metaRe = new RegExp(
    `<([A-Za-z_][\\w.-]*):vm\\b[^>]*xmlns:\\1=['"]${METADATA_NS.replace(/[.]/g, "\\.")}['"]`,
  );
  const prefix = metaRe.exec(xml)?.[1];
  const meta = prefix ? findElement(xml, `${prefix}:vm`) : undefined;
  const attestation = meta?.attrs.attestation === "yes";
  const boot = domainBoot(xml);
  const base = {
    name,
    security,
    attestation,
    ...(policy === undefined ? {} : { policy }),
    ...(boot ? { boot } : {}),
  };
  if (!meta) return base;
  const spec: LaunchSpec = {
    name,
    vcpus: Number(elementText(xml, "vcpu") ?? 1),
    memoryMiB: memoryMiB(xml),
    firmware: findElement(xml, "loader") ? { kind: "efi" } : { kind: "bios" },
    hardwareVersion: Number(meta.attrs.hardwareVersion ?? 0),
    guestOs: meta.attrs.guestOs ?? "",
    devices: devices(findElement(xml, "devices")?.inner ?? ""),
    security,
    ...(policy === undefined ? {} : { policy }),
    attestation,
  };
  return { ...base, spec };
}
