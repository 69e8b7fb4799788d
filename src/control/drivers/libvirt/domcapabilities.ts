/**
 * `virsh domcapabilities` and `virsh nodesevinfo` as the host's SEV facts (docs/product-behaviour.md §3.2). libvirt
 * reports `<sev supported='yes'>` with cbitpos, reducedPhysBits, maxGuests and maxESGuests; ciphervisor's
 * `HostCapabilities` wants the hypervisor's vocabulary (generation, pools, min_sev_asid), derived here.
 *
 * libvirt counts like the kernel: maxESGuests = min_sev_asid − 1 (ASIDs 1..min−1 are SEV-ES only) and maxGuests
 * is the SEV-only pool, min_sev_asid..max ASID. So min_sev_asid = maxESGuests + 1.
 */
import { CiphervisorError } from "../../../errors.ts";
import type { PoolReport } from "../../../hypervisor/types.ts";
import { CPU_MODELS } from "../../../machine/cpu-models.ts";
import { DEFAULT_HOST_VMM_PROFILE } from "../../../measure/vmsa.ts";
import type { HostGeneration } from "../../inventory/types.ts";
import type { DriverCapabilities } from "../driver.ts";
import { elementText, findElement } from "./xml-read.ts";

/** What `<sev>` says. `reason` is set when SEV is unsupported. */
export interface SevDomainCapabilities {
  readonly supported: boolean;
  readonly reason?: string;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
  readonly maxGuests: number;
  readonly maxESGuests: number;
  /** The host-model CPU libvirt names (`EPYC-Rome`, …), when given. */
  readonly cpuModel?: string;
}

/** `nodesevinfo`'s fields that HostCapabilities carries. */
export interface NodeSevInfo {
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly build: number;
  readonly pdh: string;
  readonly certChain: string;
  readonly cpu0Id: string;
}

function malformed(message: string): never {
  throw new CiphervisorError("MALFORMED", `domcapabilities: ${message}`);
}

function count(sev: string, tag: string, required: boolean): number {
  const t = elementText(sev, tag);
  if (t === undefined) {
    if (required) malformed(`<sev supported='yes'> has no <${tag}>`);
    return 0;
  }
  if (!/^\d{1,7}$/.test(t)) malformed(`<${tag}> must be a non-negative integer, got '${t.slice(0, 40)}'`);
  return Number(t);
}

/**
 * Parses `virsh domcapabilities` output. Without a `<sev>` element (an Intel host, an old QEMU, SEV off in the
 * BIOS), SEV is unsupported with that reason. MALFORMED when it is not domain capabilities at all.
 */
export function parseDomCapabilities(xml: string): SevDomainCapabilities {
  if (!findElement(xml, "domainCapabilities")) malformed("no <domainCapabilities> element");
  const hostModel = /<mode\s+name=['"]host-model['"][^>]*>([\s\S]*?)<\/mode>/.exec(xml)?.[1];
  const cpuModel = hostModel === undefined ? undefined : elementText(hostModel, "model");
  const base = {
    cbitpos: 0,
    reducedPhysBits: 0,
    maxGuests: 0,
    maxESGuests: 0,
    ...(cpuModel ? { cpuModel } : {}),
  };
  const sev = findElement(xml, "sev");
  if (!sev) {
    return {
      ...base,
      supported: false,
      reason: "libvirt reports no <sev> feature (QEMU, KVM or the BIOS lacks SEV)",
    };
  }
  if (sev.attrs.supported !== "yes") {
    return { ...base, supported: false, reason: "libvirt reports <sev supported='no'>" };
  }
  return {
    ...base,
    supported: true,
    cbitpos: count(sev.inner, "cbitpos", true),
    reducedPhysBits: count(sev.inner, "reducedPhysBits", true),
    maxGuests: count(sev.inner, "maxGuests", false),
    maxESGuests: count(sev.inner, "maxESGuests", false),
  };
}

/** Parses `virsh nodesevinfo` (`name : value` lines); missing fields are zero or empty. */
export function parseNodeSevInfo(text: string): NodeSevInfo {
  const f = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([\w-]+)\s*:\s*(.*?)\s*$/.exec(line);
    if (m?.[1]) f.set(m[1], m[2] ?? "");
  }
  const num = (k: string) => (/^\d+$/.test(f.get(k) ?? "") ? Number(f.get(k)) : 0);
  return {
    apiMajor: num("api-major"),
    apiMinor: num("api-minor"),
    build: num("build-id"),
    pdh: f.get("pdh") ?? "",
    certChain: f.get("cert-chain") ?? "",
    cpu0Id: f.get("cpu0-id") ?? "",
  };
}

/**
 * The EPYC generation: from libvirt's CPU model name when it gives one, else from the SEV numbers (C-bit 47 is
 * Naples/Rome, 51 Milan/Genoa/Turin; Naples has no SEV-ES pool; Genoa has more than 509 ASIDs). `unknown` when libvirt
 * reports no SEV (no `<sev>`, `supported='no'`, or no domain capabilities at all): an Intel host, SEV off in the BIOS
 * or KVM, libvirt's test driver. The generations are SEV parts; without SEV the numbers that tell them apart are
 * absent, and a host model such as `EPYC-Rome` is only libvirt's nearest named CPU, so nothing is guessed.
 */
export function inferGeneration(c: SevDomainCapabilities): HostGeneration {
  if (!c.supported) return "unknown";
  const m = c.cpuModel?.toLowerCase() ?? "";
  // QEMU names each part (EPYC-Rome … EPYC-Turin). Turin's SEV numbers equal Genoa's (C-bit 51, 1006 ASIDs), so
  // only the name tells them apart; without it a Turin host is taken for the Genoa it resembles.
  for (const g of ["turin", "genoa", "milan", "rome"] as const) if (m.includes(g)) return g;
  if (m === "epyc" || m.startsWith("epyc-v") || m === "epyc-ibpb") return "naples";
  const total = c.maxGuests + c.maxESGuests;
  if (c.cbitpos === 51) return total > CPU_MODELS.milan.maxAsid ? "genoa" : "milan";
  return c.maxESGuests > 0 || total > CPU_MODELS.naples.maxAsid ? "rome" : "naples";
}

/** Live usage of the two pools: running encrypted guests counted by mode. */
export interface PoolUsage {
  readonly sev: number;
  readonly sevEs: number;
}

function pool(first: number, size: number, used: number): PoolReport {
  return {
    first: size > 0 ? first : 0,
    last: size > 0 ? first + size - 1 : 0,
    size,
    used,
    free: Math.max(0, size - used),
  };
}

/** The host's capabilities from what libvirt reported (and nodesevinfo when the host answered it). */
export function toHostCapabilities(
  name: string,
  c: SevDomainCapabilities,
  usage: PoolUsage,
  node?: NodeSevInfo,
): DriverCapabilities {
  const generation = inferGeneration(c);
  const family = generation === "unknown" ? "unknown CPU generation, no SEV" : CPU_MODELS[generation].family;
  const minSevAsid = c.maxESGuests + 1;
  const esReason = !c.supported
    ? c.reason
    : c.maxESGuests === 0
      ? "libvirt reports maxESGuests 0 (no SEV-ES ASIDs: BIOS min_sev_asid = 1, or the CPU has no SEV-ES)"
      : undefined;
  return {
    name,
    generation,
    family: c.cpuModel ? `${family}; libvirt CPU model ${c.cpuModel}` : family,
    sevSupported: c.supported,
    sevEsSupported: c.supported && c.maxESGuests > 0,
    ...(esReason ? { sevEsUnavailableReason: esReason } : {}),
    sevState: c.supported ? (usage.sev + usage.sevEs > 0 ? "working" : "initialized") : "uninitialized",
    firmware: { apiMajor: node?.apiMajor ?? 0, apiMinor: node?.apiMinor ?? 0, build: node?.build ?? 0 },
    cBit: c.cbitpos,
    reducedPhysBits: c.reducedPhysBits,
    minSevAsid,
    maxSevGuests: c.maxGuests,
    maxSevEsGuests: c.maxESGuests,
    // libvirt's <sev> reports no SNP pool of its own: SNP guests share the ES range (this driver launches none).
    pools: {
      sev: pool(minSevAsid, c.maxGuests, usage.sev),
      sevEs: pool(1, c.maxESGuests, usage.sevEs),
      snp: pool(1, 0, 0),
    },
    sevSnpSupported: false,
    ciphertextHidingAsids: 0,
    pdh: node?.pdh ?? "",
    certChain: node?.certChain ?? "",
    cpu0Id: node?.cpu0Id ?? "",
    // libvirt's <launchSecurity type='sev'> gives QEMU a default `sev-guest`, which takes the legacy
    // KVM_SEV_INIT / KVM_SEV_ES_INIT path (docs/sev-interface.md §8.5). The guest CPU is host-passthrough: its
    // signature is the host's own, which domcapabilities does not report, so `guestCpu` stays unknown.
    vmmProfile: DEFAULT_HOST_VMM_PROFILE,
  };
}
