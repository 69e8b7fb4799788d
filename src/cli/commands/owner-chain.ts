/**
 * `owner verify-chain` and `owner verify-report`: the guest owner's checks that a platform's keys come from AMD
 * (or, for the emulated fleet, from ciphervisor's emulated root) before any secret goes near them
 * (docs/sev-interface.md §11.3, §14).
 *
 * ```
 * ciphervisor owner verify-chain --dir DIR [--generation rome] [--json]
 * ciphervisor owner verify-chain --cek F --oca F --pek F --pdh F [--ark F --ask F] [--generation emulated]
 * ciphervisor owner verify-report --report F --vcek F [--chain PEM] [--trust amd|emulated] [--json]
 *     [--measurement HEX] [--host-data HEX] [--min-tcb bl=N,tee=N,snp=N,ucode=N] [--allow-debug]
 *     [--vmpl N|any] [--crl DER]
 * ```
 *
 * verify-report always applies the owner's policy (src/owner/verify-report.ts): debug refused and VMPL 0 unless
 * `--allow-debug` / `--vmpl` say otherwise; expected measurement, host_data, minimum TCB and the ASK's revocation
 * (AMD's CRL from `/vcek/v1/{product}/crl`) when given. Each failure names its check (`details.link`).
 *
 * Success prints `chain ok` / `report ok` (exit 0). A broken chain is one line naming the link, code
 * CHAIN_INVALID (exit 1); a rejected report REPORT_INVALID (exit 1); unreadable or malformed input IO or
 * CERT_INVALID (exit 1), bad flags INVALID_INPUT or USAGE (exit 2). With `--json` the per-link results go to stdout
 * as JSON, even when a link fails (the exit code and the one-line error still tell the outcome).
 */
import type { Command } from "commander";
import type { AmdCert } from "../../certs/amd-cert.ts";
import {
  checkSevChain,
  parseSevChain,
  type SevChain,
  type SevChainBytes,
  type SevChainReport,
  type SevChainRole,
  sevChainError,
} from "../../certs/chain.ts";
import {
  type CertDescription,
  describeAmdCert,
  describeSevCert,
  formatCertDescription,
} from "../../certs/print.ts";
import {
  GENERATIONS,
  loadBuiltinRoot,
  loadBuiltinRoots,
  TRUST_SETS,
  type TrustedRoot,
} from "../../certs/roots.ts";
import { decodeSnpReportInput } from "../../certs/snp-report.ts";
import { CiphervisorError } from "../../errors.ts";
import { toHex } from "../../lib/bytes.ts";
import {
  readAskArkFile,
  readChainFile,
  readSevChainDir,
  readSevctlChainFile,
} from "../../owner/chain-files.ts";
import {
  checkSnpReport,
  type SnpMinimumTcb,
  type SnpReportPolicy,
  type SnpReportVerification,
  snpReportError,
} from "../../owner/verify-report.ts";
import { parseChoice, parseHexFlag, parseIntFlag } from "../args.ts";
import type { CliIo } from "../io.ts";

const GENERATION_CHOICES = [...GENERATIONS, "emulated"] as const;
type GenerationChoice = (typeof GENERATION_CHOICES)[number];

interface VerifyChainFlags {
  dir?: string;
  chain?: string;
  ca?: string;
  ark?: string;
  ask?: string;
  cek?: string;
  oca?: string;
  pek?: string;
  pdh?: string;
  generation?: string;
  json?: boolean;
  verbose?: boolean;
}

const ROLES: readonly SevChainRole[] = ["ark", "ask", "cek", "oca", "pek", "pdh"];

/**
 * Gathers the chain's files: a directory or sevctl chain file first, then an ASK ‖ ARK bundle, then single-file
 * flags, each overriding the one before (e.g. `--dir d --cek kds-cek.cert` splices in the ASK-signed CEK from
 * AMD KDS, docs/sev-interface.md §15 pitfall 18).
 */
function gatherChain(flags: VerifyChainFlags): {
  bytes: SevChainBytes;
  names: Partial<Record<SevChainRole, string>>;
} {
  if (flags.dir !== undefined && flags.chain !== undefined) {
    throw new CiphervisorError("INVALID_INPUT", "use either --dir or --chain, not both");
  }
  const base =
    flags.dir !== undefined
      ? readSevChainDir(flags.dir)
      : flags.chain !== undefined
        ? readSevctlChainFile(flags.chain)
        : undefined;
  const bytes: Partial<SevChainBytes> = { ...(base?.bytes ?? {}) };
  const names: Partial<Record<SevChainRole, string>> = { ...(base?.names ?? {}) };
  if (flags.ca !== undefined) {
    const { ask, ark } = readAskArkFile(flags.ca);
    Object.assign(bytes, { ask, ark });
    names.ask = `${flags.ca} (ASK)`;
    names.ark = `${flags.ca} (ARK)`;
  }
  for (const role of ROLES) {
    const path = flags[role];
    if (path === undefined) continue;
    bytes[role] = readChainFile(path, `--${role}`);
    names[role] = path;
  }
  for (const role of ["cek", "oca", "pek", "pdh"] as const) {
    if (!bytes[role]) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `missing the ${role.toUpperCase()}: pass --${role} FILE, --dir DIR or --chain FILE`,
      );
    }
  }
  return { bytes: bytes as SevChainBytes, names };
}

/** The roots to trust: one AMD generation, every emulated root, or every AMD root (chosen by the ARK key id). */
function trustedRoots(choice: GenerationChoice | undefined, chain: SevChain): TrustedRoot[] {
  if (choice !== undefined && choice !== "emulated") return [loadBuiltinRoot("amd", choice)];
  if (!chain.ark && !chain.ask) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      choice === "emulated"
        ? "with --generation emulated, include the chain's ASK or ARK (--ask, --ark, --ca or --dir) to choose among the emulated roots"
        : "the chain has no ARK or ASK to tell its generation: pass --generation (or --ark/--ask, --ca)",
    );
  }
  return loadBuiltinRoots(choice === "emulated" ? "emulated" : "amd");
}

function describeChain(chain: SevChain): Partial<Record<SevChainRole, CertDescription>> {
  const out: Partial<Record<SevChainRole, CertDescription>> = {};
  const amd = (c: AmdCert | undefined) => (c ? describeAmdCert(c) : undefined);
  const ark = amd(chain.ark);
  const ask = amd(chain.ask);
  if (ark) out.ark = ark;
  if (ask) out.ask = ask;
  for (const role of ["cek", "oca", "pek", "pdh"] as const) out[role] = describeSevCert(chain[role]);
  return out;
}

function chainJson(report: SevChainReport, chain: SevChain): string {
  return `${JSON.stringify({ ok: report.ok, root: report.root ?? null, links: report.links, certificates: describeChain(chain) }, null, 2)}\n`;
}

function verifyChain(flags: VerifyChainFlags, io: CliIo): void {
  const choice =
    flags.generation === undefined
      ? undefined
      : parseChoice(flags.generation, "--generation", GENERATION_CHOICES);
  const { bytes, names } = gatherChain(flags);
  const chain = parseSevChain(bytes, names);
  const report = checkSevChain(chain, { roots: trustedRoots(choice, chain) });
  if (flags.json) io.out(chainJson(report, chain));
  const error = sevChainError(report);
  if (error) throw error;
  if (flags.json) return;
  io.out("chain ok\n");
  if (flags.verbose) {
    if (report.root) io.out(`root: ${report.root.description}\n`);
    for (const l of report.links) io.out(`  ${l.link.padEnd(10)} ${l.detail}\n`);
    const certs = describeChain(chain);
    for (const role of ROLES) {
      const d = certs[role];
      if (d) io.out(`  ${formatCertDescription(d)}\n`);
    }
  }
}

interface VerifyReportFlags {
  report: string;
  vcek: string;
  chain?: string;
  trust?: string;
  measurement?: string;
  hostData?: string;
  minTcb?: string;
  allowDebug?: boolean;
  vmpl?: string;
  crl?: string;
  json?: boolean;
}

const MIN_TCB_KEYS: Readonly<Record<string, keyof SnpMinimumTcb>> = {
  bl: "bootloader",
  tee: "tee",
  snp: "snp",
  ucode: "microcode",
  fmc: "fmc",
};

/** `bl=3,tee=0,snp=8,ucode=115` (any subset; decimal or 0x-hex) → the minimum SPLs. */
function parseMinTcb(value: string): SnpMinimumTcb {
  const out: SnpMinimumTcb = {};
  for (const part of value.split(",")) {
    const m = /^\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(part);
    const key = m ? MIN_TCB_KEYS[m[1]!] : undefined;
    if (!m || !key || out[key] !== undefined) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `--min-tcb must be a list like bl=3,tee=0,snp=8,ucode=115 (keys ${Object.keys(MIN_TCB_KEYS).join(", ")}, each once), got '${value}'`,
      );
    }
    out[key] = parseIntFlag(m[2]!, `--min-tcb ${m[1]}`, 0, 255);
  }
  return out;
}

function reportPolicy(flags: VerifyReportFlags): SnpReportPolicy {
  return {
    ...(flags.measurement === undefined
      ? {}
      : { measurement: parseHexFlag(flags.measurement, "--measurement", 48) }),
    ...(flags.hostData === undefined ? {} : { hostData: parseHexFlag(flags.hostData, "--host-data", 32) }),
    ...(flags.minTcb === undefined ? {} : { minimumTcb: parseMinTcb(flags.minTcb) }),
    allowDebug: flags.allowDebug === true,
    vmpl: flags.vmpl === "any" ? "any" : parseIntFlag(flags.vmpl ?? "0", "--vmpl", 0, 3),
    ...(flags.crl === undefined ? {} : { crl: readChainFile(flags.crl, "--crl") }),
  };
}

function reportJson(v: SnpReportVerification): string {
  const r = v.report;
  const hex = (n: bigint) => `0x${n.toString(16).padStart(16, "0")}`;
  const body = {
    ok: v.ok,
    generation: v.generation,
    productName: v.productName ?? null,
    chain: v.chainSource,
    trust: v.trust,
    links: v.links,
    report: {
      version: r.version,
      guestSvn: r.guestSvn,
      policy: `0x${r.policy.toString(16)}`,
      vmpl: r.vmpl,
      measurement: toHex(r.measurement),
      reportData: toHex(r.reportData),
      hostData: toHex(r.hostData),
      familyId: toHex(r.familyId),
      imageId: toHex(r.imageId),
      idKeyDigest: toHex(r.idKeyDigest),
      authorKeyDigest: toHex(r.authorKeyDigest),
      reportId: toHex(r.reportId),
      chipId: toHex(r.chipId),
      platformInfo: hex(r.platformInfo),
      currentTcb: hex(r.currentTcb),
      reportedTcb: { ...v.reportedTcb, raw: hex(r.reportedTcb) },
      committedTcb: hex(r.committedTcb),
      launchTcb: hex(r.launchTcb),
      currentVersion: `${r.currentVersion.major}.${r.currentVersion.minor}.${r.currentVersion.build}`,
    },
    vcekTcb: v.vcekTcb,
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}

function verifyReport(flags: VerifyReportFlags, io: CliIo): void {
  const report = decodeSnpReportInput(readChainFile(flags.report, "--report"), flags.report);
  const vcek = readChainFile(flags.vcek, "--vcek");
  const chain = flags.chain === undefined ? undefined : readChainFile(flags.chain, "--chain");
  const trust = flags.trust === undefined ? "amd" : parseChoice(flags.trust, "--trust", TRUST_SETS);
  const policy = reportPolicy(flags);
  const v = checkSnpReport({ report, vcek, ...(chain ? { chain } : {}), trust, policy });
  if (flags.json) io.out(reportJson(v));
  const error = snpReportError(v);
  if (error) throw error;
  if (flags.json) return;
  const r = v.report;
  const t = v.reportedTcb;
  io.out("report ok\n");
  io.out(
    `  product      ${v.productName ?? v.generation} (chain: ${v.chainSource === "pem" ? flags.chain : `built-in ${trust === "amd" ? "AMD" : "emulated"} roots`})\n`,
  );
  io.out(`  measurement  ${toHex(r.measurement)}\n`);
  io.out(`  report_data  ${toHex(r.reportData)}\n`);
  io.out(`  policy       0x${r.policy.toString(16)}  vmpl ${r.vmpl}  version ${r.version}\n`);
  io.out(
    `  reported_tcb 0x${r.reportedTcb.toString(16).padStart(16, "0")} (bl ${t.bootloader}, tee ${t.tee}, snp ${t.snp}, ucode ${t.microcode}${t.fmc === undefined ? "" : `, fmc ${t.fmc}`})\n`,
  );
}

export function registerOwnerChainCommands(owner: Command, io: CliIo): void {
  owner
    .command("verify-chain")
    .description(
      "verify a SEV certificate chain: pinned ARK → ASK → CEK → PEK ← OCA, PEK → PDH (docs/sev-interface.md §11.3)",
    )
    .option(
      "--dir <dir>",
      "directory with ark.cert ask.cert cek.cert oca.cert pek.cert pdh.cert (sevctl export --full)",
    )
    .option("--chain <file>", "sevctl's concatenated chain: PDH ‖ PEK ‖ OCA ‖ CEK [‖ ASK ‖ ARK]")
    .option("--ca <file>", "AMD's ask_ark_<generation>.cert bundle (ASK ‖ ARK)")
    .option("--ark <file>", "ARK certificate (must equal the trusted root)")
    .option("--ask <file>", "ASK certificate (default: the trusted root's)")
    .option("--cek <file>", "CEK certificate, signed by the ASK (from AMD KDS)")
    .option("--oca <file>", "OCA certificate")
    .option("--pek <file>", "PEK certificate")
    .option("--pdh <file>", "PDH certificate")
    .option(
      "--generation <generation>",
      `trusted root: ${GENERATION_CHOICES.join("|")} (default: the AMD root matching the chain's ARK key id)`,
    )
    .option("--json", "print per-link results as JSON")
    .option("--verbose", "print each link and certificate")
    .action((flags: VerifyChainFlags) => verifyChain(flags, io));

  owner
    .command("verify-report")
    .description(
      "verify an SEV-SNP attestation report against its VCEK and AMD's ASK/ARK (docs/sev-interface.md §14)",
    )
    .requiredOption("--report <file>", "attestation report: 0x4A0 bytes, or hex text")
    .requiredOption("--vcek <file>", "VCEK certificate (DER or PEM)")
    .option("--chain <file>", "PEM with the ASK and ARK (KDS cert_chain); default: the built-in roots")
    .option(
      "--trust <set>",
      `roots to pin: ${TRUST_SETS.join("|")} (emulated: the emulated fleet's, served by ciphervisor's KDS)`,
      "amd",
    )
    .option("--measurement <hex>", "expected launch measurement (48 bytes, 96 hex digits)")
    .option("--host-data <hex>", "expected host_data (32 bytes, 64 hex digits)")
    .option("--min-tcb <list>", "minimum reported_tcb SPLs, e.g. bl=3,tee=0,snp=8,ucode=115 (fmc= on Turin)")
    .option("--allow-debug", "accept a guest whose policy allows debugging (bit 19); refused by default")
    .option("--vmpl <n>", "the VMPL the report must come from: 0-3 or any", "0")
    .option("--crl <file>", "AMD's CRL for the product (DER, KDS /vcek/v1/{product}/crl); needs --chain")
    .option("--json", "print the checks and report fields as JSON")
    .action((flags: VerifyReportFlags) => verifyReport(flags, io));
}
