/**
 * `owner measure`, `owner session`, `owner verify-measurement`, `owner secret build`: the guest owner's launch
 * toolkit in sevctl's shapes (docs/sev-interface.md §8–§10). The computations live in `measure/` and `owner/`; this file
 * parses flags strictly, reads and writes files, and prints. TEK and TIK are written to files, never printed.
 * What `session` and `secret build` write is opened 0600 from the start, never through a symlink and never over an
 * existing file without `--force`; every target is checked before the first is written (`output-files.ts`).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { toHex } from "../../lib/bytes.ts";
import { expectedLaunch, LAUNCH_MODES, type LaunchMode } from "../../measure/launch-digest.ts";
import { measurementMac } from "../../measure/measurement.ts";
import { vcpuSignatureOf } from "../../measure/vcpu-types.ts";
import { VMM_PROFILE_SPECS, VMM_PROFILES, type VmmProfile } from "../../measure/vmsa.ts";
import { buildLaunchSecret, type SecretEntry } from "../../owner/secret.ts";
import { createLaunchSession, sessionFiles } from "../../owner/session.ts";
import { assertLaunchMeasurement } from "../../owner/verify-measurement.ts";
import { parseBase64Flag, parseChoice, parseHexFlag, parseIntFlag, readInputFile } from "../args.ts";
import type { CliIo } from "../io.ts";
import { checkOutputFile, type OutputFileOptions, writeOutputFile } from "../output-files.ts";
import {
  addSnpMeasureFlags,
  refuseSnpOnlyFlags,
  runSnpMeasure,
  type SnpMeasureFlags,
} from "./owner-measure-snp.ts";

/** Guest policy bit 2: SEV-ES required (docs/sev-interface.md §6). */
const POLICY_ES = 0x04;

interface ImageFlags {
  firmware?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  mode?: string;
  vcpus?: string;
  vcpuType?: string;
  vcpuSig?: string;
  vmm?: string;
  launchDigest?: string;
}

function usage(message: string): CiphervisorError {
  return new CiphervisorError("USAGE", message);
}

function addImageFlags(cmd: Command, modes: readonly string[] = LAUNCH_MODES): Command {
  return cmd
    .option("--firmware <file>", "the OVMF image the VMM loads")
    .option("--kernel <file>", "direct-boot kernel (QEMU -kernel with kernel-hashes=on)")
    .option("--initrd <file>", "direct-boot initrd (needs --kernel)")
    .option("--append <cmdline>", "kernel command line (needs --kernel)")
    .option(
      "--mode <mode>",
      `launch mode: ${modes.join(" | ")} (default: from the policy's ES bit, else sev)`,
    )
    .option("--vcpus <n>", "SEV-ES: number of vCPUs (default 1)")
    .option("--vcpu-type <name>", "SEV-ES: QEMU CPU model, e.g. EPYC-v4, EPYC-Milan")
    .option("--vcpu-sig <sig>", "SEV-ES: CPUID(1).EAX signature instead of --vcpu-type, e.g. 0x800f12")
    .option(
      "--vmm <profile>",
      `SEV-ES: host stack that builds the VMSAs: ${VMM_PROFILES.join(" | ")} (default qemu)`,
    )
    .option("--launch-digest <hex>", "the 32-byte launch digest, instead of the image flags");
}

/** The expected launch digest from either `--launch-digest` or the image flags (§8.1). */
function launchDigestFrom(f: ImageFlags, policy: number | undefined): Uint8Array {
  const imageFlags = (
    [
      ["--firmware", f.firmware],
      ["--kernel", f.kernel],
      ["--initrd", f.initrd],
      ["--append", f.append],
      ["--mode", f.mode],
      ["--vcpus", f.vcpus],
      ["--vcpu-type", f.vcpuType],
      ["--vcpu-sig", f.vcpuSig],
      ["--vmm", f.vmm],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (f.launchDigest !== undefined) {
    if (imageFlags.length > 0) {
      throw usage(
        `--launch-digest replaces the image flags; drop ${imageFlags.map(([n]) => n).join(", ")} or --launch-digest`,
      );
    }
    return parseHexFlag(f.launchDigest, "--launch-digest", 32);
  }
  if (f.firmware === undefined) {
    throw usage("give --firmware (with optional --kernel, --initrd, --append) or --launch-digest");
  }
  if (f.kernel === undefined && (f.initrd !== undefined || f.append !== undefined)) {
    throw usage("--initrd and --append are measured only with --kernel (QEMU's kernel-hashes table)");
  }
  if (f.vcpuType !== undefined && f.vcpuSig !== undefined) {
    throw usage("give --vcpu-type or --vcpu-sig, not both");
  }

  const policyMode: LaunchMode | undefined =
    policy === undefined ? undefined : policy & POLICY_ES ? "sev-es" : "sev";
  const mode: LaunchMode =
    f.mode === undefined ? (policyMode ?? "sev") : parseChoice(f.mode, "--mode", LAUNCH_MODES);
  if (policyMode !== undefined && policyMode !== mode) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `--mode ${mode} contradicts --policy 0x${(policy ?? 0).toString(16)}, whose ES bit (0x4) is ${policyMode === "sev-es" ? "set" : "clear"}`,
    );
  }
  const esOnly = imageFlags.filter(([n]) => ["--vcpus", "--vcpu-type", "--vcpu-sig", "--vmm"].includes(n));
  if (mode === "sev" && esOnly.length > 0) {
    throw usage(
      `${esOnly.map(([n]) => n).join(", ")} only apply to --mode sev-es (plain SEV measures no VMSA)`,
    );
  }
  const vmm: VmmProfile = f.vmm === undefined ? "qemu" : parseChoice(f.vmm, "--vmm", VMM_PROFILES);
  const vcpuSignature =
    f.vcpuSig !== undefined
      ? parseIntFlag(f.vcpuSig, "--vcpu-sig", 0, 0xffffffff)
      : f.vcpuType !== undefined
        ? vcpuSignatureOf(f.vcpuType)
        : undefined;
  if (mode === "sev-es" && vcpuSignature === undefined && VMM_PROFILE_SPECS[vmm].rdx === "vcpu-signature") {
    throw usage(
      "--mode sev-es needs --vcpu-type or --vcpu-sig: the guest CPU signature is part of the measured VMSA",
    );
  }

  const read = (path: string | undefined, flag: string) =>
    path === undefined ? undefined : readInputFile(path, flag);
  const firmware = readInputFile(f.firmware, "--firmware");
  const kernel = read(f.kernel, "--kernel");
  return expectedLaunch({
    mode,
    firmware,
    directBoot: kernel ? { kernel, initrd: read(f.initrd, "--initrd"), cmdline: f.append } : undefined,
    vcpus: f.vcpus === undefined ? undefined : parseIntFlag(f.vcpus, "--vcpus", 1, 4096),
    vcpuSignature,
    vmm,
  }).launchDigest;
}

/** A 16-byte raw key file (TEK or TIK, as sevctl writes them). */
function readKeyFile(path: string, flag: string, what: string): Uint8Array {
  const key = readInputFile(path, flag);
  if (key.length !== 16) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${flag} ${path} holds ${key.length} bytes; a ${what} file is 16 raw bytes`,
    );
  }
  return key;
}

/** Checks every target, then writes them in order: a refusal leaves nothing written. */
function writeOutputs(
  files: readonly { path: string; data: Uint8Array | string; flag: string }[],
  force: boolean,
) {
  const options = (flag: string): OutputFileOptions => ({ mode: 0o600, force, flag });
  if (new Set(files.map((f) => f.path)).size !== files.length) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${files.map((f) => f.flag).join(" and ")} name the same file`,
    );
  }
  for (const f of files) checkOutputFile(f.path, options(f.flag));
  for (const f of files) writeOutputFile(f.path, f.data, options(f.flag));
}

const u8 = (v: string, flag: string) => parseIntFlag(v, flag, 0, 0xff);
const u32 = (v: string, flag: string) => parseIntFlag(v, flag, 0, 0xffffffff);

/** `owner measure` also computes the SEV-SNP digest (owner-measure-snp.ts). */
const MEASURE_MODES = [...LAUNCH_MODES, "snp"] as const;

interface MeasureFlags extends ImageFlags, SnpMeasureFlags {
  tik?: string;
  apiMajor?: string;
  apiMinor?: string;
  build?: string;
  policy?: string;
  mnonce?: string;
  json?: boolean;
}

function registerMeasure(owner: Command, io: CliIo): void {
  addSnpMeasureFlags(
    addImageFlags(
      owner
        .command("measure")
        .description(
          "compute the expected launch digest (hex; 48 bytes for --mode snp); with --tik … --mnonce, the 32-byte launch measurement instead",
        ),
      MEASURE_MODES,
    ),
  )
    .option("--tik <file>", "TIK file from `owner session` (16 bytes)")
    .option("--api-major <n>", "platform SEV API major (PLATFORM_STATUS)")
    .option("--api-minor <n>", "platform SEV API minor")
    .option("--build <n>", "platform firmware build")
    .option("--policy <policy>", "guest policy, e.g. 0x5")
    .option("--mnonce <hex>", "the 16-byte MNONCE from LAUNCH_MEASURE")
    .option(
      "--json",
      'print {"launchDigest": hex, "measurement": hex} (--mode snp: {"launchDigest", "ovmfHash"})',
    )
    .action((f: MeasureFlags) => {
      if (f.mode !== undefined && parseChoice(f.mode, "--mode", MEASURE_MODES) === "snp") {
        const sevOnly = (
          [
            ["--vmm", f.vmm],
            ["--launch-digest", f.launchDigest],
            ["--tik", f.tik],
            ["--api-major", f.apiMajor],
            ["--api-minor", f.apiMinor],
            ["--build", f.build],
            ["--policy", f.policy],
            ["--mnonce", f.mnonce],
          ] as const
        ).filter(([, v]) => v !== undefined);
        runSnpMeasure(
          f,
          sevOnly.map(([n]) => n),
          io,
        );
        return;
      }
      refuseSnpOnlyFlags(f);
      const macFlags = [
        ["--tik", f.tik],
        ["--api-major", f.apiMajor],
        ["--api-minor", f.apiMinor],
        ["--build", f.build],
        ["--mnonce", f.mnonce],
      ] as const;
      const given = macFlags.filter(([, v]) => v !== undefined);
      const policy = f.policy === undefined ? undefined : u32(f.policy, "--policy");
      // Parse and read every measurement input before hashing any image, so a typo fails fast.
      let mac: ((launchDigest: Uint8Array) => Uint8Array) | undefined;
      if (given.length > 0) {
        const missing = [...macFlags, ["--policy", f.policy] as const].filter(([, v]) => v === undefined);
        if (missing.length > 0) {
          throw usage(
            `the measurement needs --tik, --api-major, --api-minor, --build, --policy and --mnonce; missing ${missing.map(([n]) => n).join(", ")}`,
          );
        }
        const input = {
          apiMajor: u8(f.apiMajor ?? "", "--api-major"),
          apiMinor: u8(f.apiMinor ?? "", "--api-minor"),
          build: u8(f.build ?? "", "--build"),
          policy: policy ?? 0,
          mnonce: parseHexFlag(f.mnonce ?? "", "--mnonce", 16),
        };
        const tik = readKeyFile(f.tik ?? "", "--tik", "TIK");
        mac = (launchDigest) => measurementMac(tik, { ...input, launchDigest });
      }
      const launchDigest = launchDigestFrom(f, policy);
      const measurement = mac?.(launchDigest);
      if (f.json) {
        const out: Record<string, string> = { launchDigest: toHex(launchDigest) };
        if (measurement) out.measurement = toHex(measurement);
        io.out(`${JSON.stringify(out)}\n`);
      } else {
        io.out(`${toHex(measurement ?? launchDigest)}\n`);
      }
    });
}

interface VerifyFlags extends ImageFlags {
  tik: string;
  launchMeasureBlob: string;
  apiMajor: string;
  apiMinor: string;
  build: string;
  policy: string;
  json?: boolean;
}

function registerVerifyMeasurement(owner: Command, io: CliIo): void {
  addImageFlags(
    owner
      .command("verify-measurement")
      .description(
        "check a LAUNCH_MEASURE blob against the expected launch (exit 0 on a match, 1 with MEASUREMENT_MISMATCH otherwise)",
      ),
  )
    .requiredOption("--tik <file>", "TIK file from `owner session` (16 bytes)")
    .requiredOption("--launch-measure-blob <base64>", "MEASURE ‖ MNONCE as QEMU/libvirt report it (48 bytes)")
    .requiredOption("--api-major <n>", "platform SEV API major (PLATFORM_STATUS)")
    .requiredOption("--api-minor <n>", "platform SEV API minor")
    .requiredOption("--build <n>", "platform firmware build")
    .requiredOption("--policy <policy>", "guest policy the VM was launched with")
    .option("--json", "print the result as JSON")
    .action((f: VerifyFlags) => {
      const blob = parseBase64Flag(f.launchMeasureBlob, "--launch-measure-blob", 48);
      const apiMajor = u8(f.apiMajor, "--api-major");
      const apiMinor = u8(f.apiMinor, "--api-minor");
      const build = u8(f.build, "--build");
      const policy = u32(f.policy, "--policy");
      const tik = readKeyFile(f.tik, "--tik", "TIK");
      const launchDigest = launchDigestFrom(f, policy);
      const r = assertLaunchMeasurement({
        tik,
        launchMeasureBlob: blob,
        apiMajor,
        apiMinor,
        build,
        policy,
        launchDigest,
      });
      if (f.json) {
        io.out(
          `${JSON.stringify({ match: true, measurement: toHex(r.reported), launchDigest: toHex(launchDigest) })}\n`,
        );
      } else {
        io.out(`launch measurement matches: ${toHex(r.reported)} (launch digest ${toHex(launchDigest)})\n`);
      }
    });
}

interface SessionFlags {
  pdh: string;
  policy: string;
  name: string;
  out?: string;
  force?: boolean;
}

function registerSession(owner: Command, io: CliIo): void {
  owner
    .command("session")
    .description(
      "create a launch session for a platform PDH: NAME_godh.b64, NAME_session.b64, NAME_tek.bin, NAME_tik.bin",
    )
    .requiredOption(
      "--pdh <file>",
      "the platform's PDH certificate (verify its chain first with owner verify-chain)",
    )
    .requiredOption("--policy <policy>", "guest policy to bind the session to, e.g. 0x5")
    .requiredOption("--name <name>", "file-name prefix, e.g. vm1")
    .option("--out <dir>", "directory for the four files (default: current directory)")
    .option("--force", "replace files of these names that exist (never a symlink)")
    .action((f: SessionFlags) => {
      const policy = u32(f.policy, "--policy");
      const pdh = readInputFile(f.pdh, "--pdh");
      const files = sessionFiles(f.name, createLaunchSession(pdh, policy));
      const dir = f.out ?? ".";
      try {
        mkdirSync(dir, { recursive: true });
      } catch (e) {
        throw new CiphervisorError("IO", `--out ${dir}: ${(e as Error).message}`, { cause: e });
      }
      // Owner-only, all four: the TEK and TIK are the owner's secrets, and the session files belong with them.
      const written = [files.godh, files.session, files.tek, files.tik].map((file) => ({
        path: join(dir, file.name),
        data: file.contents,
        flag: "--out",
      }));
      writeOutputs(written, f.force === true);
      for (const w of written) io.out(`wrote ${w.path}\n`);
    });
}

interface SecretFlags {
  tik: string;
  tek: string;
  launchMeasureBlob: string;
  secret: string[];
  iv?: string;
  apiMajor?: string;
  apiMinor?: string;
  outHeader: string;
  outSecret: string;
  format: string;
  force?: boolean;
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parseSecretFlag(value: string): SecretEntry {
  const at = value.indexOf(":");
  const guid = at < 0 ? value : value.slice(0, at);
  if (at < 0 || at === value.length - 1) {
    throw new CiphervisorError("INVALID_INPUT", `--secret must be GUID:FILE, got '${value}'`);
  }
  if (!GUID_RE.test(guid)) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `--secret: '${guid}' is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`,
    );
  }
  return { guid: guid.toLowerCase(), data: readInputFile(value.slice(at + 1), "--secret") };
}

function registerSecretBuild(owner: Command, io: CliIo): void {
  owner
    .command("secret")
    .description("LAUNCH_SECRET packets")
    .command("build")
    .description(
      "build the secret header and encrypted payload for LAUNCH_SECRET (EFI secret table, docs/sev-interface.md §10)",
    )
    .requiredOption("--tik <file>", "TIK file from `owner session` (16 bytes)")
    .requiredOption("--tek <file>", "TEK file from `owner session` (16 bytes)")
    .requiredOption("--launch-measure-blob <base64>", "MEASURE ‖ MNONCE as QEMU/libvirt report it (48 bytes)")
    .option(
      "--secret <guid:file>",
      "a secret to inject (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option("--iv <hex>", "16-byte IV (default: random; for reproducible tests only)")
    .option("--api-major <n>", "platform SEV API major; below 0.17 MEASURE is left out of the MAC")
    .option("--api-minor <n>", "platform SEV API minor")
    .requiredOption("--out-header <file>", "where to write the packet header")
    .requiredOption("--out-secret <file>", "where to write the encrypted payload")
    .option(
      "--format <format>",
      "file contents: base64 (what virsh domsetlaunchsecstate reads) or binary (sevctl's raw files)",
      "base64",
    )
    .option("--force", "replace the output files if they exist (never a symlink)")
    .action((f: SecretFlags) => {
      const format = parseChoice(f.format, "--format", ["base64", "binary"] as const);
      if (f.secret.length === 0) throw usage("give at least one --secret GUID:FILE");
      if ((f.apiMajor === undefined) !== (f.apiMinor === undefined)) {
        throw usage("give --api-major and --api-minor together");
      }
      const api =
        f.apiMajor !== undefined && f.apiMinor !== undefined
          ? { major: u8(f.apiMajor, "--api-major"), minor: u8(f.apiMinor, "--api-minor") }
          : undefined;
      const blob = parseBase64Flag(f.launchMeasureBlob, "--launch-measure-blob", 48);
      const iv = f.iv === undefined ? undefined : parseHexFlag(f.iv, "--iv", 16);
      const tik = readKeyFile(f.tik, "--tik", "TIK");
      const tek = readKeyFile(f.tek, "--tek", "TEK");
      const entries = f.secret.map(parseSecretFlag);
      const p = buildLaunchSecret({ tek, tik, entries, measure: blob.slice(0, 32), api, iv });
      const encode = (b: Uint8Array) => (format === "base64" ? Buffer.from(b).toString("base64") : b);
      writeOutputs(
        [
          { path: f.outHeader, data: encode(p.header), flag: "--out-header" },
          { path: f.outSecret, data: encode(p.payload), flag: "--out-secret" },
        ],
        f.force === true,
      );
      io.out(`wrote header to ${f.outHeader}\n`);
      io.out(`wrote payload to ${f.outSecret}\n`);
    });
}

export function registerOwnerLaunchCommands(owner: Command, io: CliIo): void {
  const before = new Set(owner.commands);
  registerMeasure(owner, io);
  registerSession(owner, io);
  registerVerifyMeasurement(owner, io);
  registerSecretBuild(owner, io);
  // Bad input ends as one line: commander's "(Did you mean …?)" would add a second one.
  const quiet = (c: Command): void => {
    c.showSuggestionAfterError(false);
    c.commands.forEach(quiet);
  };
  owner.commands.filter((c) => !before.has(c)).forEach(quiet);
}
