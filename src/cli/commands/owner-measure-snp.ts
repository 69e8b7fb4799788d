/**
 * `owner measure --mode snp`: the expected SEV-SNP launch digest (48 bytes, printed as 96 hex digits), with the
 * inputs and defaults of virtee/sev-snp-measure's `--mode snp` (docs/sev-interface.md §14.1). The computation is
 * `measure/snp-launch-digest.ts`; this file parses the flags strictly and reads the files.
 *
 * SNP has no LAUNCH_MEASURE MAC (the digest is the attestation report's MEASUREMENT, checked with
 * `owner verify-report`), so the MAC flags, `--policy` and `--launch-digest` are usage errors here, as are the
 * SNP-only flags in the other modes.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { toHex } from "../../lib/bytes.ts";
import {
  DEFAULT_SNP_GUEST_FEATURES,
  expectedSnpLaunch,
  SNP_LAUNCH_DIGEST_SIZE,
  SNP_VMM_TYPES,
} from "../../measure/snp-launch-digest.ts";
import { vcpuSignatureOf } from "../../measure/vcpu-types.ts";
import { parseChoice, parseHexFlag, parseIntFlag, readInputFile } from "../args.ts";
import type { CliIo } from "../io.ts";

/** The flags `owner measure` reads in SNP mode (its other flags are refused there). */
export interface SnpMeasureFlags {
  firmware?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  vcpus?: string;
  vcpuType?: string;
  vcpuSig?: string;
  vmmType?: string;
  guestFeatures?: string;
  snpOvmfHash?: string;
  json?: boolean;
}

/** `--mode snp` flags that no other mode takes. */
const SNP_ONLY_FLAGS = [
  ["--vmm-type", "vmmType"],
  ["--guest-features", "guestFeatures"],
  ["--snp-ovmf-hash", "snpOvmfHash"],
] as const;

function usage(message: string): CiphervisorError {
  return new CiphervisorError("USAGE", message);
}

/** Adds the SNP-only flags to `owner measure`. */
export function addSnpMeasureFlags(cmd: Command): Command {
  return cmd
    .option(
      "--vmm-type <type>",
      `SNP: sev-snp-measure's VMM type: ${SNP_VMM_TYPES.join(" | ")} (default QEMU)`,
    )
    .option(
      "--guest-features <hex>",
      `SNP: sev_features of every VMSA, e.g. 0x21 (default 0x${DEFAULT_SNP_GUEST_FEATURES.toString(16)}, SNPActive)`,
    )
    .option(
      "--snp-ovmf-hash <hex>",
      "SNP: precomputed 48-byte digest of the firmware pages, used instead of hashing them",
    );
}

/** In the SEV and SEV-ES modes, the SNP-only flags are usage errors. */
export function refuseSnpOnlyFlags(f: Partial<Record<(typeof SNP_ONLY_FLAGS)[number][1], string>>): void {
  const given = SNP_ONLY_FLAGS.filter(([, k]) => f[k] !== undefined).map(([n]) => n);
  if (given.length > 0) {
    throw usage(`${given.join(", ")} only ${given.length === 1 ? "applies" : "apply"} to --mode snp`);
  }
}

/** A u64 in 0x-hex or decimal (sev-snp-measure reads `--guest-features` with base auto-detection). */
function parseU64Flag(value: string, flag: string): bigint {
  const t = value.trim();
  const n = /^(0x[0-9a-f]+|\d+)$/i.test(t) ? BigInt(t) : -1n;
  if (n < 0n || n >= 1n << 64n) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `${flag} must be a 64-bit number (0x-hex or decimal), got '${value}'`,
    );
  }
  return n;
}

/**
 * Computes and prints the SNP launch digest. `others` are the flags of the SEV modes that were given; SNP refuses
 * them by name.
 */
export function runSnpMeasure(f: SnpMeasureFlags, others: readonly string[], io: CliIo): void {
  if (others.length > 0) {
    throw usage(
      `${others.join(", ")} ${others.length === 1 ? "does" : "do"} not apply to --mode snp: SEV-SNP has no LAUNCH_MEASURE MAC (its digest is the attestation report's MEASUREMENT; see owner verify-report), and it takes --vmm-type, not --vmm`,
    );
  }
  if (f.firmware === undefined) {
    throw usage("--mode snp needs --firmware: the OVMF image's SEV metadata says which pages are measured");
  }
  if (f.kernel === undefined && (f.initrd !== undefined || f.append !== undefined)) {
    throw usage("--initrd and --append are measured only with --kernel (QEMU's kernel-hashes table)");
  }
  if (f.vcpuType !== undefined && f.vcpuSig !== undefined) {
    throw usage("give --vcpu-type or --vcpu-sig, not both");
  }
  const vmmType = f.vmmType === undefined ? "QEMU" : parseChoice(f.vmmType, "--vmm-type", SNP_VMM_TYPES);
  const vcpuSignature =
    f.vcpuSig !== undefined
      ? parseIntFlag(f.vcpuSig, "--vcpu-sig", 0, 0xffffffff)
      : f.vcpuType !== undefined
        ? vcpuSignatureOf(f.vcpuType)
        : undefined;
  if (vmmType === "QEMU" && vcpuSignature === undefined) {
    throw usage(
      "--mode snp with --vmm-type QEMU needs --vcpu-type or --vcpu-sig: the guest CPU signature is part of the measured VMSA",
    );
  }
  const vcpus = f.vcpus === undefined ? undefined : parseIntFlag(f.vcpus, "--vcpus", 1, 4096);
  const guestFeatures =
    f.guestFeatures === undefined ? undefined : parseU64Flag(f.guestFeatures, "--guest-features");
  const ovmfHash =
    f.snpOvmfHash === undefined
      ? undefined
      : parseHexFlag(f.snpOvmfHash, "--snp-ovmf-hash", SNP_LAUNCH_DIGEST_SIZE);

  const firmware = readInputFile(f.firmware, "--firmware");
  const kernel = f.kernel === undefined ? undefined : readInputFile(f.kernel, "--kernel");
  const initrd = f.initrd === undefined ? undefined : readInputFile(f.initrd, "--initrd");
  const r = expectedSnpLaunch({
    firmware,
    ovmfHash,
    directBoot: kernel ? { kernel, initrd, cmdline: f.append } : undefined,
    vcpus,
    vcpuSignature,
    vmmType,
    guestFeatures,
  });
  if (f.json) {
    io.out(`${JSON.stringify({ launchDigest: toHex(r.launchDigest), ovmfHash: toHex(r.ovmfHash) })}\n`);
  } else {
    io.out(`${toHex(r.launchDigest)}\n`);
  }
}
