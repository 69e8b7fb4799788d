/**
 * One libvirt host as a DriverHost: each call becomes virsh commands on the host's one session. The operation
 * table is applied before anything is sent, and `start` runs the hypervisor's requirement checks against the
 * capabilities libvirt reported. A host whose connection driver does not report domain capabilities (libvirt's
 * test driver) has no SEV facts to check against; there libvirt itself is the judge at start.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CiphervisorError, isCiphervisorError } from "../../../errors.ts";
import { assertAllowed, type Operation, policyAllowsDebug } from "../../../hypervisor/operation-rules.ts";
import {
  assertRequirements,
  type RequirementFinding,
  requirementFindings,
} from "../../../hypervisor/requirements.ts";
import type { LaunchSpec, StartResult, VmStatus } from "../../../hypervisor/types.ts";
import { validateVmSpec } from "../../../hypervisor/vm-spec.ts";
import { CPU_MODELS } from "../../../machine/cpu-models.ts";
import type { DriverCapabilities, DriverFinding, DriverHost, LaunchSecret, PerformArgs } from "../driver.ts";
import { hashBootFiles, placeBootFiles } from "./boot-files.ts";
import { type DomainFacts, domainFacts, powerState } from "./domain-state.ts";
import { DEFAULT_DOMAIN_XML_OPTIONS, type DomainXmlOptions, domainXml } from "./domain-xml.ts";
import {
  type NodeSevInfo,
  parseDomCapabilities,
  parseNodeSevInfo,
  type SevDomainCapabilities,
  toHostCapabilities,
} from "./domcapabilities.ts";
import type { VirshSession } from "./virsh.ts";
import { LIBVIRT_UNSUPPORTED, unsupported } from "./virsh-errors.ts";

const NO_DOMCAPS = "this libvirt connection does not report domain capabilities, so SEV support is unknown";

/** Writes files into a private temporary directory for one call, and removes it after. */
async function withTempFiles<T>(
  files: Record<string, string>,
  fn: (paths: Record<string, string>) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "ciphervisor-virsh-"));
  try {
    const paths: Record<string, string> = {};
    for (const [name, content] of Object.entries(files)) {
      paths[name] = join(dir, name);
      await writeFile(join(dir, name), content, { mode: 0o600 });
    }
    return await fn(paths);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export class LibvirtHost implements DriverHost {
  readonly address: string;
  readonly #virsh: VirshSession;
  readonly #xml: DomainXmlOptions;

  constructor(session: VirshSession, xml: Partial<DomainXmlOptions> = {}) {
    this.#virsh = session;
    this.address = session.uri;
    this.#xml = { ...DEFAULT_DOMAIN_XML_OPTIONS, ...xml };
  }

  /** Ends the host's virsh session. */
  close(): void {
    this.#virsh.close();
  }

  get alive(): boolean {
    return this.#virsh.alive;
  }

  /** `<sev>` from domcapabilities, or undefined when this connection cannot report it. */
  async #sevCaps(): Promise<SevDomainCapabilities | undefined> {
    try {
      return parseDomCapabilities(await this.#virsh.run(["domcapabilities"]));
    } catch (e) {
      if (isCiphervisorError(e, LIBVIRT_UNSUPPORTED)) return undefined;
      throw e;
    }
  }

  async #usage(): Promise<{ sev: number; sevEs: number }> {
    const usage = { sev: 0, sevEs: 0 };
    for (const name of this.#names(await this.#virsh.run(["list", "--name"]))) {
      const f = await this.#facts(name);
      if (f.security === "sev") usage.sev++;
      if (f.security === "sev-es") usage.sevEs++;
    }
    return usage;
  }

  async #nodeSevInfo(): Promise<NodeSevInfo | undefined> {
    try {
      return parseNodeSevInfo(await this.#virsh.run(["nodesevinfo"]));
    } catch (e) {
      if (isCiphervisorError(e, LIBVIRT_UNSUPPORTED) || isCiphervisorError(e, "IO")) return undefined;
      throw e;
    }
  }

  async capabilities(): Promise<DriverCapabilities> {
    const name = (await this.#virsh.run(["hostname"])).trim() || this.address;
    const sev = await this.#sevCaps();
    if (!sev) {
      const none = {
        supported: false,
        reason: NO_DOMCAPS,
        cbitpos: 0,
        reducedPhysBits: 0,
        maxGuests: 0,
        maxESGuests: 0,
      };
      return toHostCapabilities(name, none, { sev: 0, sevEs: 0 });
    }
    const node = sev.supported ? await this.#nodeSevInfo() : undefined;
    return toHostCapabilities(name, sev, await this.#usage(), node);
  }

  async requirementFindings(spec: LaunchSpec): Promise<DriverFinding[]> {
    return this.#findings(spec, await this.capabilities());
  }

  #findings(spec: LaunchSpec, caps: DriverCapabilities): RequirementFinding[] {
    // Without SEV the generation is unknown and there is no CPU model: the checks refuse SEV_UNSUPPORTED, with
    // libvirt's reason ("not initialized" or a CPU generation would mislead).
    const model =
      caps.sevSupported && caps.generation !== "unknown"
        ? { ...CPU_MODELS[caps.generation], sevEs: caps.sevEsSupported }
        : undefined;
    const noSev = model ? {} : { noSevReason: caps.sevEsUnavailableReason ?? NO_DOMCAPS };
    return requirementFindings({ name: caps.name, model, ...noSev, capabilities: caps }, spec);
  }

  #names(text: string): string[] {
    return text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
  }

  async #facts(name: string): Promise<DomainFacts> {
    return domainFacts(name, await this.#virsh.run(["dumpxml", "--inactive", name]));
  }

  async #status(name: string, facts?: DomainFacts): Promise<VmStatus> {
    const f = facts ?? (await this.#facts(name));
    const p = powerState(await this.#virsh.run(["domstate", "--reason", name]));
    // Only a launch waiting for its owner needs the hashes, so a list of running VMs reads no images.
    const bootImages =
      p.power === "paused" && f.security !== "none" && f.boot ? await hashBootFiles(f.boot) : undefined;
    return {
      name,
      security: f.security,
      power: p.power,
      ...(f.policy === undefined ? {} : { policy: f.policy }),
      ...(p.reason ? { reason: p.reason } : {}),
      ...(bootImages ? { bootImages } : {}),
    };
  }

  async define(spec: LaunchSpec): Promise<VmStatus> {
    const valid = validateVmSpec(spec);
    // `virsh define` on an existing name silently redefines it; a duplicate must be a CONFLICT instead.
    if ((await this.status(valid.name)) !== undefined) {
      throw new CiphervisorError(
        "CONFLICT",
        `a VM named '${valid.name}' is already defined on ${this.address}`,
      );
    }
    let options = this.#xml;
    if (valid.security !== "none") {
      const sev = await this.#sevCaps();
      if (sev?.supported)
        options = { ...options, cbitpos: sev.cbitpos, reducedPhysBits: sev.reducedPhysBits };
    }
    // Images given as bytes become files the domain boots, under the host's image directory.
    const files = await placeBootFiles(join(options.imageDir, "ciphervisor-boot"), valid);
    const xml = domainXml(valid, options, files);
    await withTempFiles({ "domain.xml": xml }, (p) => this.#virsh.run(["define", p["domain.xml"] ?? ""]));
    return this.#status(valid.name);
  }

  async undefine(name: string): Promise<void> {
    const s = await this.#require(name);
    if (s.power === "running" || s.power === "paused") {
      throw new CiphervisorError("CONFLICT", `VM '${name}' is ${s.power}; power it off before removing it`);
    }
    await this.#virsh.run(["undefine", name]);
  }

  async #require(name: string): Promise<VmStatus> {
    const s = await this.status(name);
    if (!s) throw new CiphervisorError("NOT_FOUND", `no VM '${name}' on libvirt host ${this.address}`);
    return s;
  }

  async start(name: string): Promise<StartResult> {
    const f = await this.#facts(name);
    assertAllowed(name, f.security, "power-on");
    const sev = f.security === "none" ? undefined : await this.#sevCaps();
    if (f.spec && (f.security === "none" || sev)) {
      const findings = this.#findings(f.spec, await this.capabilities());
      assertRequirements(name, findings);
    }
    const attest = f.attestation && f.security !== "none";
    await this.#virsh.run(attest ? ["start", "--paused", name] : ["start", name]);
    if (!attest) return { status: await this.#status(name, f) };
    try {
      return { status: await this.#status(name, f), launchMeasurement: await this.launchMeasurement(name) };
    } catch (e) {
      // A launch nobody can attest would wait forever: end it, and say why.
      await this.#virsh.run(["destroy", name]).catch(() => undefined);
      throw e;
    }
  }

  /** This driver defines no SEV-SNP domains (`<launchSecurity type='sev-snp'>`), so none has a report to give. */
  async attestationReport(name: string, _reportData: Uint8Array): Promise<Uint8Array> {
    await this.#require(name);
    throw unsupported(this.address, "an SEV-SNP attestation report (SNP guests through the libvirt driver)");
  }

  async launchMeasurement(name: string): Promise<string> {
    const s = await this.#require(name);
    if (s.power !== "paused") {
      throw new CiphervisorError("CONFLICT", `VM '${name}' is ${s.power}, not paused for attestation`);
    }
    const out = await this.#virsh.run(["domlaunchsecinfo", name]);
    const m = /sev-measurement\s*:\s*(\S+)/.exec(out);
    if (!m?.[1])
      throw unsupported(
        this.address,
        "reading the launch measurement",
        "no sev-measurement in domlaunchsecinfo",
      );
    return m[1];
  }

  async finishLaunch(name: string, secret?: LaunchSecret): Promise<VmStatus> {
    const s = await this.#require(name);
    if (s.power !== "paused") {
      throw new CiphervisorError("CONFLICT", `VM '${name}' is ${s.power}, not paused for attestation`);
    }
    if (secret) {
      const files = {
        hdr: Buffer.from(secret.header).toString("base64"),
        secret: Buffer.from(secret.payload).toString("base64"),
      };
      await withTempFiles(files, (p) =>
        this.#virsh.run([
          "domsetlaunchsecstate",
          name,
          "--secrethdr",
          p.hdr ?? "",
          "--secret",
          p.secret ?? "",
        ]),
      );
    }
    await this.#virsh.run(["resume", name]);
    return this.#status(name);
  }

  async stop(name: string): Promise<VmStatus> {
    const f = await this.#facts(name);
    assertAllowed(name, f.security, "power-off");
    await this.#virsh.run(["destroy", name]);
    return this.#status(name, f);
  }

  async reset(name: string): Promise<VmStatus> {
    const f = await this.#facts(name);
    assertAllowed(name, f.security, "reset");
    const s = await this.#status(name, f);
    if (s.power !== "running")
      throw new CiphervisorError("CONFLICT", `VM '${name}' is ${s.power}, not running`);
    if (f.security === "sev-es") {
      // The encrypted register state (VMSA) cannot be rewritten to the reset vector: relaunch instead.
      await this.#virsh.run(["destroy", name]);
      await this.#virsh.run(["start", name]);
    } else {
      await this.#virsh.run(["reset", name]);
    }
    return this.#status(name, f);
  }

  async status(name: string): Promise<VmStatus | undefined> {
    try {
      return await this.#status(name);
    } catch (e) {
      if (isCiphervisorError(e, "NOT_FOUND")) return undefined;
      throw e;
    }
  }

  async list(): Promise<VmStatus[]> {
    const out: VmStatus[] = [];
    for (const name of this.#names(await this.#virsh.run(["list", "--all", "--name"]))) {
      const s = await this.status(name);
      if (s) out.push(s);
    }
    return out;
  }

  async perform(name: string, operation: Operation, args: PerformArgs = {}): Promise<VmStatus> {
    const f = await this.#facts(name);
    assertAllowed(
      name,
      f.security,
      operation,
      f.policy !== undefined && policyAllowsDebug(f.security, f.policy),
    );
    switch (operation) {
      case "power-on":
        return (await this.start(name)).status;
      case "power-off":
        return this.stop(name);
      case "reset":
        return this.reset(name);
      case "suspend":
        await this.#virsh.run(["managedsave", name]);
        return this.#status(name, f);
      case "resume":
        await this.#virsh.run(["start", name]);
        return this.#status(name, f);
      case "disk-snapshot":
      case "memory-snapshot": {
        const snap = args.snapshot ?? `${operation}-${Date.now()}`;
        const disk = operation === "disk-snapshot" ? ["--disk-only"] : [];
        await this.#virsh.run(["snapshot-create-as", name, snap, ...disk]);
        return this.#status(name, f);
      }
      default:
        throw unsupported(this.address, `${operation} through the libvirt driver`);
    }
  }

  async liveMigrate(name: string, _target: DriverHost): Promise<VmStatus> {
    const f = await this.#facts(name);
    assertAllowed(name, f.security, "live-migrate");
    throw unsupported(this.address, "live migration");
  }

  async coldMigrate(name: string, _target: DriverHost): Promise<VmStatus> {
    const f = await this.#facts(name);
    assertAllowed(name, f.security, "cold-migrate");
    throw unsupported(this.address, "cold migration (the VM's disks would have to move with it)");
  }
}
